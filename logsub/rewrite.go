package logsub

import (
	"bytes"
	"regexp"
	"time"

	"github.com/peerscale/peerscale/internal/strftime"
)

// TimeRewriter replaces the first bracketed field of a line ("[...]", the
// %t of Apache's common and combined formats) with the time the logger
// received the record, so that a log merged from servers with skewed clocks
// stays in time order (spreadlogd's RewriteTimestamp). A nil *TimeRewriter
// leaves lines unchanged.
type TimeRewriter struct {
	layout *Strftime // nil: Apache's %t
}

// NewTimeRewriter returns a rewriter for format: "CommonLogFormat" (or
// "CLF") prints Apache's %t, [02/Jan/2006:15:04:05 -0700]; anything else is
// a strftime(3) format printed between the brackets. The empty format
// returns nil (no rewriting).
func NewTimeRewriter(format string) *TimeRewriter {
	switch format {
	case "":
		return nil
	case "CommonLogFormat", "CLF", "clf":
		return &TimeRewriter{}
	}
	return &TimeRewriter{layout: CompileStrftime(format)}
}

// Append appends line to dst with its first [...] field replaced by t. A
// line without a closed bracket pair is appended unchanged.
func (r *TimeRewriter) Append(dst, line []byte, t time.Time) []byte {
	if r == nil {
		return append(dst, line...)
	}
	i := bytes.IndexByte(line, '[')
	if i < 0 {
		return append(dst, line...)
	}
	j := bytes.IndexByte(line[i:], ']')
	if j < 0 {
		return append(dst, line...)
	}
	dst = append(dst, line[:i]...)
	if r.layout == nil {
		dst = strftime.AppendCLF(dst, t)
	} else {
		dst = append(dst, '[')
		dst = r.layout.Append(dst, t)
		dst = append(dst, ']')
	}
	return append(dst, line[i+j+1:]...)
}

// Filter selects the records an output writes. The zero Filter selects
// every record.
type Filter struct {
	// Match, if not nil, keeps only lines it matches.
	Match *regexp.Regexp
	// Exclude, if not nil, drops lines it matches.
	Exclude *regexp.Regexp
}

// Keep reports whether the filter selects line.
func (f Filter) Keep(line []byte) bool {
	if f.Match != nil && !f.Match.Match(line) {
		return false
	}
	return f.Exclude == nil || !f.Exclude.Match(line)
}
