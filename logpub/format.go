package logpub

import (
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	"github.com/peerscale/peerscale/internal/strftime"
)

// ErrBadFormat is wrapped by every error Compile returns.
var ErrBadFormat = errors.New("logpub: bad log format")

// FormatError reports where Compile stopped in a LogFormat string.
type FormatError struct {
	// Offset is the byte offset in the format string of the directive
	// (its '%') that could not be compiled.
	Offset int
	// Msg describes the problem.
	Msg string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("logpub: log format: offset %d: %s", e.Offset, e.Msg)
}

// Unwrap returns ErrBadFormat.
func (e *FormatError) Unwrap() error { return ErrBadFormat }

// The named formats of Apache's default configuration (the vhost_combined,
// referer and agent formats are Debian's).
const (
	CommonFormat        = `%h %l %u %t "%r" %>s %b`
	CombinedFormat      = `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`
	VhostCombinedFormat = `%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"`
	RefererFormat       = `%{Referer}i -> %U`
	AgentFormat         = `%{User-agent}i`
)

// NamedFormat returns the format string of one of Apache's named formats:
// common, combined, vhost_combined, referer or agent.
func NamedFormat(name string) (string, bool) {
	switch name {
	case "common":
		return CommonFormat, true
	case "combined":
		return CombinedFormat, true
	case "vhost_combined":
		return VhostCombinedFormat, true
	case "referer":
		return RefererFormat, true
	case "agent":
		return AgentFormat, true
	}
	return "", false
}

type opKind uint8

const (
	opLiteral opKind = iota
	opRemoteIP
	opLocalIP
	opBodyCLF
	opBody
	opCookie
	opMicros
	opEnv
	opFilename
	opRemoteHost
	opProto
	opHeaderIn
	opKeepAlives
	opLogname
	opLogID
	opMethod
	opNote
	opHeaderOut
	opPortCanonical
	opPortLocal
	opPortRemote
	opPid
	opTid
	opHexTid
	opQuery
	opRequestLine
	opHandler
	opStatus
	opTimeCLF
	opTimeSec
	opTimeMsec
	opTimeUsec
	opTimeMsecFrac
	opTimeUsecFrac
	opTimeStrftime
	opDurSec
	opDurMsec
	opDurUsec
	opUser
	opPath
	opServerName
	opHostName
	opConnStatus
	opBytesIn
	opBytesOut
	opBytesBoth
	opFirstByte
	opTrailerIn
	opTrailerOut
)

type op struct {
	kind   opKind
	end    bool   // times: the end of the request instead of its start
	negate bool   // conditions: print only when the status is not listed
	conds  []int  // status conditions; empty means always
	arg    string // literal text, header/cookie/note name
	key    string // canonical header key
	tfmt   *strftime.Layout
}

// Format is a compiled LogFormat. It is immutable and safe for concurrent
// use.
type Format struct {
	src     string
	ops     []op
	needs   needs
	literal int
}

// needs records which Entry fields a Format reads, so the middleware
// collects only those.
type needs struct {
	respHeader bool
	keepAlives bool
	firstByte  bool
	end        bool // durations or end times
}

func (n needs) union(o needs) needs {
	return needs{
		respHeader: n.respHeader || o.respHeader,
		keepAlives: n.keepAlives || o.keepAlives,
		firstByte:  n.firstByte || o.firstByte,
		end:        n.end || o.end,
	}
}

// String returns the format string Compile was given.
func (f *Format) String() string { return f.src }

// MustCompile is Compile for formats known to be valid; it panics on error.
func MustCompile(format string) *Format {
	f, err := Compile(format)
	if err != nil {
		panic(err)
	}
	return f
}

// Compile compiles an Apache LogFormat string (as it reads after Apache's
// configuration parser removed the quoting: `"%r"`, not `\"%r\"`).
// Literal text keeps Apache's escapes \n, \r, \t and \\. An unknown
// directive or a directive cut off by the end of the string is an error
// that names its offset.
func Compile(format string) (*Format, error) {
	f := &Format{src: format}
	s := format
	i := 0
	for i < len(s) {
		if s[i] != '%' {
			j := i
			var lit []byte
			for j < len(s) && s[j] != '%' {
				c := s[j]
				if c == '\\' && j+1 < len(s) {
					switch s[j+1] {
					case '\\':
						lit = append(lit, '\\')
						j += 2
						continue
					case 'r':
						lit = append(lit, '\r')
						j += 2
						continue
					case 'n':
						lit = append(lit, '\n')
						j += 2
						continue
					case 't':
						lit = append(lit, '\t')
						j += 2
						continue
					}
				}
				lit = append(lit, c)
				j++
			}
			f.addLiteral(string(lit))
			i = j
			continue
		}
		start := i
		i++
		if i < len(s) && s[i] == '%' {
			f.addLiteral("%")
			i++
			continue
		}
		o := op{}
		var arg string
		done := false
		for i < len(s) && !done {
			c := s[i]
			switch {
			case c == '!':
				o.negate = !o.negate
				i++
			case c == '<' || c == '>' || c == ',':
				i++
			case c == '{':
				end := strings.IndexByte(s[i+1:], '}')
				if end < 0 {
					arg = s[i+1:]
					i = len(s)
				} else {
					arg = s[i+1 : i+1+end]
					i += end + 2
				}
			case c >= '0' && c <= '9':
				n := 0
				for i < len(s) && s[i] >= '0' && s[i] <= '9' {
					n = n*10 + int(s[i]-'0')
					if n > 1e6 {
						return nil, &FormatError{Offset: start, Msg: "status condition out of range"}
					}
					i++
				}
				o.conds = append(o.conds, n)
			default:
				name := s[i : i+1]
				if c == '^' && i+2 < len(s) {
					name = s[i : i+3]
				}
				if err := o.bind(name, arg); err != nil {
					if c == '^' {
						return nil, &FormatError{Offset: start, Msg: "unknown directive %" + s[i:min(i+3, len(s))]}
					}
					return nil, &FormatError{Offset: start, Msg: err.Error()}
				}
				i += len(name)
				done = true
			}
		}
		if !done {
			return nil, &FormatError{Offset: start, Msg: "directive cut off by the end of the format"}
		}
		f.add(o)
	}
	return f, nil
}

func (f *Format) addLiteral(s string) {
	if s == "" {
		return
	}
	f.literal += len(s)
	if n := len(f.ops); n > 0 && f.ops[n-1].kind == opLiteral {
		f.ops[n-1].arg += s
		return
	}
	f.ops = append(f.ops, op{kind: opLiteral, arg: s})
}

func (f *Format) add(o op) {
	switch o.kind {
	case opHeaderOut, opTrailerOut:
		f.needs.respHeader = true
	case opKeepAlives:
		f.needs.keepAlives = true
	case opFirstByte:
		f.needs.firstByte = true
	case opMicros, opDurSec, opDurMsec, opDurUsec:
		f.needs.end = true
	case opTimeCLF, opTimeSec, opTimeMsec, opTimeUsec, opTimeMsecFrac, opTimeUsecFrac, opTimeStrftime:
		f.needs.end = f.needs.end || o.end
	}
	f.ops = append(f.ops, o)
}

// bind sets the op's kind from the directive name and its {argument}.
func (o *op) bind(name, arg string) error {
	o.arg = arg
	switch name {
	case "a":
		o.kind = opRemoteIP
	case "A":
		o.kind = opLocalIP
	case "b":
		o.kind = opBodyCLF
	case "B":
		o.kind = opBody
	case "C":
		o.kind = opCookie
	case "D":
		o.kind = opMicros
	case "e":
		o.kind = opEnv
	case "f":
		o.kind = opFilename
	case "h":
		o.kind = opRemoteHost
	case "H":
		o.kind = opProto
	case "i":
		o.kind = opHeaderIn
		o.key = textproto.CanonicalMIMEHeaderKey(arg)
	case "k":
		o.kind = opKeepAlives
	case "l":
		o.kind = opLogname
	case "L":
		o.kind = opLogID
	case "m":
		o.kind = opMethod
	case "n":
		o.kind = opNote
	case "o":
		o.kind = opHeaderOut
		o.key = textproto.CanonicalMIMEHeaderKey(arg)
	case "p":
		switch strings.ToLower(arg) {
		case "", "canonical":
			o.kind = opPortCanonical
		case "local":
			o.kind = opPortLocal
		case "remote":
			o.kind = opPortRemote
		default:
			o.kind = opLiteral // Apache prints a bogus argument itself
		}
	case "P":
		switch strings.ToLower(arg) {
		case "", "pid":
			o.kind = opPid
		case "tid":
			o.kind = opTid
		case "hextid":
			o.kind = opHexTid
		default:
			o.kind = opLiteral
		}
	case "q":
		o.kind = opQuery
	case "r":
		o.kind = opRequestLine
	case "R":
		o.kind = opHandler
	case "s":
		o.kind = opStatus
	case "t":
		o.bindTime(arg)
	case "T":
		switch strings.ToLower(arg) {
		case "", "s":
			o.kind = opDurSec
		case "ms":
			o.kind = opDurMsec
		case "us":
			o.kind = opDurUsec
		default:
			o.kind = opLiteral
		}
	case "u":
		o.kind = opUser
	case "U":
		o.kind = opPath
	case "v":
		o.kind = opServerName
	case "V":
		o.kind = opHostName
	case "X":
		o.kind = opConnStatus
	case "I":
		o.kind = opBytesIn
	case "O":
		o.kind = opBytesOut
	case "S":
		o.kind = opBytesBoth
	case "^FB":
		o.kind = opFirstByte
	case "^ti":
		o.kind = opTrailerIn
		o.key = textproto.CanonicalMIMEHeaderKey(arg)
	case "^to":
		o.kind = opTrailerOut
		o.key = textproto.CanonicalMIMEHeaderKey(arg)
	default:
		return fmt.Errorf("unknown directive %%%s", name)
	}
	return nil
}

func (o *op) bindTime(arg string) {
	fmtStr := arg
	if rest, ok := strings.CutPrefix(fmtStr, "begin:"); ok {
		fmtStr = rest
	} else if rest, ok := strings.CutPrefix(fmtStr, "end:"); ok {
		fmtStr = rest
		o.end = true
	}
	switch {
	case arg == "" || fmtStr == "":
		o.kind = opTimeCLF
	case fmtStr == "sec":
		o.kind = opTimeSec
	case fmtStr == "msec":
		o.kind = opTimeMsec
	case fmtStr == "usec":
		o.kind = opTimeUsec
	case fmtStr == "msec_frac":
		o.kind = opTimeMsecFrac
	case fmtStr == "usec_frac":
		o.kind = opTimeUsecFrac
	default:
		o.kind = opTimeStrftime
		o.tfmt = strftime.Compile(fmtStr)
	}
}

// hasCond reports whether the op should print for status.
func (o *op) show(status int) bool {
	if len(o.conds) == 0 {
		return true
	}
	in := slices.Contains(o.conds, status)
	return in != o.negate
}
