package client

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// readReply reads one RESP2 reply: simple string and bulk string as
// string, integer as int64, error as *Error, array as []any, null bulk
// string and null array as nil.
func readReply(r *bufio.Reader, maxBytes, depth int) (any, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, protoErr("line too long")
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, protoErr("line not terminated by CRLF")
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return string(body), nil
	case '-':
		return &Error{Msg: string(body)}, nil
	case ':':
		n, err := strconv.ParseInt(string(body), 10, 64)
		if err != nil {
			return nil, protoErr("bad integer %q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < -1 || n > maxBytes {
			return nil, protoErr("bad bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b[n] != '\r' || b[n+1] != '\n' {
			return nil, protoErr("bulk string not terminated by CRLF")
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(string(body))
		if err != nil || n < -1 || n > maxArrayLen {
			return nil, protoErr("bad array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		if depth >= maxDepth {
			return nil, protoErr("arrays nested too deep")
		}
		a := make([]any, 0, min(n, 1024))
		for range n {
			v, err := readReply(r, maxBytes, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	default:
		return nil, protoErr("unknown reply type %q", kind)
	}
}
