package online

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// ErrProtocol is wrapped by errors reading a malformed RESP request. The
// server answers it with "-ERR Protocol error: ..." and closes the
// connection, as Redis does.
var ErrProtocol = errors.New("online: protocol error")

// maxArgs bounds the number of arguments in one request.
const maxArgs = 64

// reqReader reads RESP2 requests: arrays of bulk strings (what clients
// send) and inline commands (space-separated words on one line, for telnet).
type reqReader struct {
	r        *bufio.Reader
	maxBytes int      // bound on the bytes of one request's arguments
	buf      []byte   // argument bytes of the current request
	offs     []int    // argument boundaries in buf
	args     [][]byte // the current request's arguments
}

func newReqReader(r *bufio.Reader, maxBytes int) *reqReader {
	return &reqReader{r: r, maxBytes: maxBytes}
}

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// line returns the next line without its line ending. The slice is valid
// until the next read.
func (p *reqReader) line() ([]byte, error) {
	l, err := p.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, protoErr("too big inline request")
		}
		if errors.Is(err, io.EOF) && len(l) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	l = l[:len(l)-1]
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	return l, nil
}

// parseLen parses the decimal count after a '*' or '$'.
func parseLen(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// next reads one request and returns its arguments, which stay valid
// until the next call. An empty request (a blank inline line, "*0") gives
// no arguments and no error. A malformed request gives an error wrapping
// ErrProtocol; the connection cannot be read further after it.
func (p *reqReader) next() ([][]byte, error) {
	p.args = p.args[:0]
	p.buf = p.buf[:0]
	p.offs = p.offs[:0]
	l, err := p.line()
	if err != nil {
		return nil, err
	}
	if len(l) == 0 || l[0] != '*' {
		return p.inline(l)
	}
	n, ok := parseLen(l[1:])
	if !ok || n > maxArgs {
		return nil, protoErr("invalid multibulk length")
	}
	for range n {
		l, err := p.line()
		if err != nil {
			return nil, err
		}
		if len(l) == 0 || l[0] != '$' {
			return nil, protoErr("expected '$', got '%s'", printable(l))
		}
		m, ok := parseLen(l[1:])
		if !ok || m < 0 || m > p.maxBytes-len(p.buf) {
			return nil, protoErr("invalid bulk length")
		}
		start := len(p.buf)
		p.buf = slices.Grow(p.buf, m+2)[:start+m+2]
		if _, err := io.ReadFull(p.r, p.buf[start:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if p.buf[start+m] != '\r' || p.buf[start+m+1] != '\n' {
			return nil, protoErr("bulk string not terminated by CRLF")
		}
		p.buf = p.buf[:start+m]
		p.offs = append(p.offs, start)
	}
	for i, o := range p.offs {
		end := len(p.buf)
		if i+1 < len(p.offs) {
			end = p.offs[i+1]
		}
		p.args = append(p.args, p.buf[o:end:end])
	}
	return p.args, nil
}

// inline splits an inline command on spaces and tabs.
func (p *reqReader) inline(l []byte) ([][]byte, error) {
	if len(l) > p.maxBytes {
		return nil, protoErr("too big inline request")
	}
	p.buf = append(p.buf, l...)
	for f := range bytes.FieldsSeq(p.buf) {
		if len(p.args) == maxArgs {
			return nil, protoErr("too many arguments")
		}
		p.args = append(p.args, f)
	}
	return p.args, nil
}

// printable returns at most 16 bytes of b with control bytes replaced, for
// error messages.
func printable(b []byte) []byte {
	if len(b) > 16 {
		b = b[:16]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < ' ' || c >= 0x7f || c == '\'' {
			c = '?'
		}
		out[i] = c
	}
	return out
}

// appendCommand encodes args as a RESP2 array of bulk strings.
func appendCommand(dst []byte, args ...[]byte) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = appendBulk(dst, a)
	}
	return dst
}

func appendBulk(dst, b []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(b)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, b...)
	return append(dst, '\r', '\n')
}

func appendBulkString(dst []byte, s string) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, '\r', '\n')
}

func appendArrayLen(dst []byte, n int) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\r', '\n')
}

// appendError appends a RESP error; msg must not contain CR or LF.
func appendError(dst []byte, msg string) []byte {
	dst = append(dst, '-')
	dst = append(dst, msg...)
	return append(dst, '\r', '\n')
}
