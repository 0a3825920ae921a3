package online

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readAll(t testing.TB, in string, maxBytes int) ([][]string, error) {
	t.Helper()
	p := newReqReader(bufio.NewReaderSize(strings.NewReader(in), 64), maxBytes)
	var out [][]string
	for {
		args, err := p.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out, err
		}
		var a []string
		for _, b := range args {
			a = append(a, string(b))
		}
		out = append(out, a)
	}
}

func TestReqReader(t *testing.T) {
	got, err := readAll(t, "*3\r\n$3\r\nHIT\r\n$1\r\na\r\n$0\r\n\r\nping\r\n  count  extra\t x \n\r\n*0\r\n*-1\r\n", 100)
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"HIT", "a", ""}, {"ping"}, {"count", "extra", "x"}, nil, nil, nil}, got)

	_, err = readAll(t, "*2\r\n$60\r\n"+strings.Repeat("x", 60)+"\r\n$41\r\n", 100)
	assert.ErrorIs(t, err, ErrProtocol, "arguments over maxBytes in total")
	_, err = readAll(t, "*1\r\n$3\r\nab", 100)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	_, err = readAll(t, "PING", 100)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "inline request without a newline")
	_, err = readAll(t, strings.Repeat("a ", 65)+"\r\n", 1000)
	assert.ErrorIs(t, err, ErrProtocol, "too many inline arguments")
	_, err = readAll(t, strings.Repeat("a", 101)+"\r\n", 100)
	assert.ErrorIs(t, err, ErrProtocol, "inline request over maxBytes")
}

func FuzzReqReader(f *testing.F) {
	for _, s := range []string{
		"*3\r\n$3\r\nHIT\r\n$5\r\nalice\r\n$2\r\n/a\r\n",
		"PING\r\nCOUNT\r\n",
		"*2\r\n$5\r\nONURL\r\n$2\r\n/a\r\n*1\r\n$5\r\nCOUNT\r\n",
		"*1\r\n$-1\r\n", "*-1\r\n", "\r\n", "*1\r\n$3\r\nabcXY",
	} {
		f.Add([]byte(s))
	}
	const maxBytes = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		p := newReqReader(bufio.NewReaderSize(bytes.NewReader(data), 64), maxBytes)
		for {
			args, err := p.next()
			if err != nil {
				return
			}
			total := 0
			for _, a := range args {
				total += len(a)
			}
			if total > maxBytes || len(args) > maxArgs {
				t.Fatalf("request of %d args, %d bytes passed the limits", len(args), total)
			}
			enc := appendCommand(nil, args...)
			q := newReqReader(bufio.NewReader(bytes.NewReader(enc)), maxBytes)
			again, err := q.next()
			if err != nil {
				t.Fatalf("re-reading %q: %v", enc, err)
			}
			if len(again) != len(args) {
				t.Fatalf("round trip: %q became %q", args, again)
			}
			for i := range args {
				if !bytes.Equal(args[i], again[i]) {
					t.Fatalf("round trip: %q became %q", args, again)
				}
			}
		}
	})
}
