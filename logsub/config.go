package logsub

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// maxConfigSize bounds the configuration files ParseSetup reads.
const maxConfigSize = 1 << 20

// Setup is a logger's configuration as read from a configuration file in
// the spirit of spreadlogd.conf:
//
//	# comments run to the end of the line
//	Name = "www-logger-1"          # acknowledgement name
//	StateFile = /var/lib/spreadlogd/state
//	FsyncInterval = 100ms
//	GapTimeout = 10s
//	MaxVhostFiles = 256
//	Log {
//	    Group = www                 # repeatable
//	    File = "/var/log/www/access.%Y%m%d"
//	    RotateInterval = 24h
//	    RotateSize = 1G             # K, M, G: powers of 1024
//	    Location = Local            # time zone of names and periods (UTC)
//	    RewriteTimestamp = CommonLogFormat
//	    Match = "\" [45][0-9][0-9] "
//	    Exclude = "^10\\."
//	}
//	Log {
//	    Group = www
//	    Pipe = "/usr/bin/logger -t www"
//	}
//
// Keys are case-insensitive; values are bare words (which end at a space,
// '#', '=' or '"') or double-quoted strings with \" and \\ escapes; { and }
// stand alone.
type Setup struct {
	// Groups lists every group a Log block names, in order of appearance.
	Groups []string
	// Outputs are the Log blocks.
	Outputs []Output
	// Config holds the top-level settings (Name, StateFile, FsyncInterval,
	// GapTimeout, MaxVhostFiles).
	Config Config
}

// ConfigError reports an error in a configuration file, with its line.
type ConfigError struct {
	Line int
	Msg  string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("logsub: config line %d: %s", e.Line, e.Msg) }

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

type cfgTok struct {
	s      string
	quoted bool
	line   int
}

func lexConfig(src []byte) ([]cfgTok, error) {
	var toks []cfgTok
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			toks = append(toks, cfgTok{s: "\n", line: line})
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == '=':
			toks = append(toks, cfgTok{s: string(c), line: line})
			i++
		case c == '"':
			var b strings.Builder
			i++
			for {
				if i >= len(src) || src[i] == '\n' {
					return nil, &ConfigError{line, "unterminated string"}
				}
				if src[i] == '"' {
					i++
					break
				}
				if src[i] == '\\' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\\') {
					i++
				}
				b.WriteByte(src[i])
				i++
			}
			toks = append(toks, cfgTok{s: b.String(), quoted: true, line: line})
		default:
			j := i
			for j < len(src) && !bytes.ContainsRune([]byte(" \t\r\n#=\""), rune(src[j])) {
				j++
			}
			toks = append(toks, cfgTok{s: string(src[i:j]), line: line})
			i = j
		}
	}
	return toks, nil
}

// ParseSetup parses a configuration file. Errors are *ConfigError values
// naming the line.
func ParseSetup(src []byte) (*Setup, error) {
	if len(src) > maxConfigSize {
		return nil, &ConfigError{0, fmt.Sprintf("file larger than %d bytes", maxConfigSize)}
	}
	toks, err := lexConfig(src)
	if err != nil {
		return nil, err
	}
	st := &Setup{}
	var cur *Output
	curLine := 0
	seen := map[string]bool{}
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case t.s == "\n" && !t.quoted:
			i++
			continue
		case t.s == "}" && !t.quoted:
			if cur == nil {
				return nil, &ConfigError{t.line, "unexpected }"}
			}
			if err := finishOutput(cur, curLine); err != nil {
				return nil, err
			}
			st.Outputs = append(st.Outputs, *cur)
			for _, g := range cur.Groups {
				if !seen[g] {
					seen[g] = true
					st.Groups = append(st.Groups, g)
				}
			}
			cur = nil
			i++
			continue
		case t.quoted || t.s == "{" || t.s == "=":
			return nil, &ConfigError{t.line, fmt.Sprintf("expected a key, found %q", t.s)}
		}
		key := strings.ToLower(t.s)
		if key == "log" {
			if cur != nil {
				return nil, &ConfigError{t.line, "Log blocks do not nest"}
			}
			if i+1 >= len(toks) || toks[i+1].s != "{" || toks[i+1].quoted {
				return nil, &ConfigError{t.line, "expected { after Log"}
			}
			cur, curLine = &Output{}, t.line
			i += 2
			continue
		}
		if i+2 >= len(toks) || toks[i+1].s != "=" || toks[i+1].quoted {
			return nil, &ConfigError{t.line, fmt.Sprintf("expected = after %s", t.s)}
		}
		v := toks[i+2]
		if (v.s == "\n" || v.s == "{" || v.s == "}" || v.s == "=") && !v.quoted {
			return nil, &ConfigError{t.line, fmt.Sprintf("missing value for %s", t.s)}
		}
		if i+3 < len(toks) && toks[i+3].s != "\n" && !(toks[i+3].s == "}" && !toks[i+3].quoted) {
			return nil, &ConfigError{t.line, fmt.Sprintf("extra text after the value of %s", t.s)}
		}
		i += 3
		var err error
		if cur != nil {
			err = setOutput(cur, key, v.s)
		} else {
			err = setTop(st, key, v.s)
		}
		if err != nil {
			return nil, &ConfigError{t.line, err.Error()}
		}
	}
	if cur != nil {
		return nil, &ConfigError{curLine, "Log block not closed"}
	}
	if len(st.Outputs) == 0 {
		return nil, &ConfigError{0, "no Log block"}
	}
	return st, nil
}

func finishOutput(o *Output, line int) error {
	if len(o.Groups) == 0 {
		return &ConfigError{line, "Log block without Group"}
	}
	for _, g := range o.Groups {
		if err := bus.ValidateGroup(g); err != nil {
			return &ConfigError{line, err.Error()}
		}
	}
	if (o.File == "") == (o.Pipe == "") {
		return &ConfigError{line, "a Log block needs exactly one of File and Pipe"}
	}
	if _, err := newOutput(*o); err != nil {
		return &ConfigError{line, err.Error()}
	}
	return nil
}

func setTop(st *Setup, key, v string) error {
	var err error
	switch key {
	case "name":
		st.Config.Name = v
	case "statefile":
		st.Config.Store.StateFile = v
	case "fsyncinterval":
		st.Config.FsyncInterval, err = parseDuration(v)
	case "gaptimeout":
		st.Config.GapTimeout, err = parseDuration(v)
	case "maxvhostfiles":
		var n int
		n, err = strconv.Atoi(v)
		if err == nil && n <= 0 {
			err = fmt.Errorf("must be positive")
		}
		st.Config.Store.MaxVhostFiles = n
	default:
		return fmt.Errorf("unknown key %q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func setOutput(o *Output, key, v string) error {
	var err error
	switch key {
	case "group":
		o.Groups = append(o.Groups, v)
	case "file":
		o.File = v
	case "pipe":
		o.Pipe = v
	case "rotateinterval":
		o.Rotate.Interval, err = parseDuration(v)
		if err == nil && o.Rotate.Interval%time.Second != 0 {
			err = fmt.Errorf("not a whole number of seconds")
		}
	case "rotatesize":
		o.Rotate.MaxSize, err = parseSize(v)
	case "location":
		o.Rotate.Location, err = time.LoadLocation(v)
	case "rewritetimestamp":
		o.RewriteTimestamp = v
	case "match":
		o.Match = v
	case "exclude":
		o.Exclude = v
	default:
		return fmt.Errorf("unknown key %q in Log", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = fmt.Errorf("must be positive")
	}
	return d, err
}

func parseSize(v string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "K"), strings.HasSuffix(v, "k"):
		mult = 1 << 10
	case strings.HasSuffix(v, "M"), strings.HasSuffix(v, "m"):
		mult = 1 << 20
	case strings.HasSuffix(v, "G"), strings.HasSuffix(v, "g"):
		mult = 1 << 30
	}
	if mult > 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return n * mult, nil
}

// Format returns st as a configuration file that ParseSetup reads back to
// an equal Setup.
func (st *Setup) Format() []byte {
	var b bytes.Buffer
	kv := func(indent, k, v string) {
		fmt.Fprintf(&b, "%s%s = %s\n", indent, k, quoteConfig(v))
	}
	c := st.Config
	if c.Name != "" {
		kv("", "Name", c.Name)
	}
	if c.Store.StateFile != "" {
		kv("", "StateFile", c.Store.StateFile)
	}
	if c.FsyncInterval != 0 {
		kv("", "FsyncInterval", c.FsyncInterval.String())
	}
	if c.GapTimeout != 0 {
		kv("", "GapTimeout", c.GapTimeout.String())
	}
	if c.Store.MaxVhostFiles != 0 {
		kv("", "MaxVhostFiles", strconv.Itoa(c.Store.MaxVhostFiles))
	}
	for _, o := range st.Outputs {
		b.WriteString("Log {\n")
		for _, g := range o.Groups {
			kv("    ", "Group", g)
		}
		if o.File != "" {
			kv("    ", "File", o.File)
		}
		if o.Pipe != "" {
			kv("    ", "Pipe", o.Pipe)
		}
		if o.Rotate.Interval != 0 {
			kv("    ", "RotateInterval", o.Rotate.Interval.String())
		}
		if o.Rotate.MaxSize != 0 {
			kv("    ", "RotateSize", strconv.FormatInt(o.Rotate.MaxSize, 10))
		}
		if o.Rotate.Location != nil {
			kv("    ", "Location", o.Rotate.Location.String())
		}
		if o.RewriteTimestamp != "" {
			kv("    ", "RewriteTimestamp", o.RewriteTimestamp)
		}
		if o.Match != "" {
			kv("    ", "Match", o.Match)
		}
		if o.Exclude != "" {
			kv("    ", "Exclude", o.Exclude)
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

func quoteConfig(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
	return b.String()
}
