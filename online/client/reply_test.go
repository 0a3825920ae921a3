package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appendReply encodes v as readReply decodes it. Strings become bulk
// strings.
func appendReply(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "$-1\r\n"...)
	case int64:
		dst = append(dst, ':')
		dst = strconv.AppendInt(dst, v, 10)
		return append(dst, '\r', '\n')
	case string:
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(v)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, v...)
		return append(dst, '\r', '\n')
	case *Error:
		dst = append(dst, '-')
		dst = append(dst, v.Msg...)
		return append(dst, '\r', '\n')
	case []any:
		dst = append(dst, '*')
		dst = strconv.AppendInt(dst, int64(len(v)), 10)
		dst = append(dst, '\r', '\n')
		for _, e := range v {
			dst = appendReply(dst, e)
		}
		return dst
	}
	panic(fmt.Sprintf("client: cannot encode %T", v))
}

func TestReadReply(t *testing.T) {
	ok := map[string]any{
		"+PONG\r\n":               "PONG",
		"-ERR bad\r\n":            &Error{Msg: "ERR bad"},
		":-42\r\n":                int64(-42),
		"$5\r\nhe\r\no\r\n":       "he\r\no",
		"$0\r\n\r\n":              "",
		"$-1\r\n":                 nil,
		"*-1\r\n":                 nil,
		"*0\r\n":                  []any{},
		"*2\r\n$1\r\na\r\n:7\r\n": []any{"a", int64(7)},
		"*1\r\n*1\r\n+x\r\n":      []any{[]any{"x"}},
	}
	for in, want := range ok {
		got, err := readReply(bufio.NewReader(strings.NewReader(in)), 100, 0)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
	bad := []string{
		"PONG\r\n", "+PONG\n", ":x\r\n", "$101\r\n", "$-2\r\n", "$3\r\nabcd\r\n",
		"*x\r\n", "*2000000\r\n", strings.Repeat("*1\r\n", 9) + ":1\r\n", "?\r\n",
	}
	for _, in := range bad {
		_, err := readReply(bufio.NewReader(strings.NewReader(in)), 100, 0)
		assert.ErrorIs(t, err, ErrProtocol, "%q", in)
	}
	for _, in := range []string{"", "+PO", "$3\r\nab", "*2\r\n:1\r\n"} {
		_, err := readReply(bufio.NewReader(strings.NewReader(in)), 100, 0)
		assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), "%q: %v", in, err)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n",
		"*2\r\n$1\r\na\r\n:1\r\n", "*1\r\n*0\r\n", "*-1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			v, err := readReply(r, 1<<10, 0)
			if err != nil {
				return
			}
			enc := appendReply(nil, v)
			w, err := readReply(bufio.NewReader(bytes.NewReader(enc)), 1<<10, 0)
			if err != nil {
				t.Fatalf("re-reading %q: %v", enc, err)
			}
			if fmt.Sprint(v) != fmt.Sprint(w) {
				t.Fatalf("round trip: %#v became %#v", v, w)
			}
		}
	})
}
