package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pair(t testing.TB, sealed bool) (*Writer, *Reader, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, 4096)
	r := NewReader(&buf, 4096, 1<<16)
	if sealed {
		d, a, err := Keys([]byte("secret"), []byte("transcript"))
		require.NoError(t, err)
		w.Seal(d)
		r.Seal(d)
		_ = a
	}
	return w, r, &buf
}

func TestRoundTrip(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		w, r, _ := pair(t, sealed)
		msgs := [][]byte{[]byte("a"), bytes.Repeat([]byte("x"), 10000), []byte("last")}
		for _, m := range msgs {
			w.SetBody(append(w.Body(), m...))
			require.NoError(t, w.End())
		}
		require.NoError(t, w.End()) // empty body writes nothing
		require.NoError(t, w.Flush())
		for _, m := range msgs {
			got, err := r.Read()
			require.NoError(t, err)
			assert.Equal(t, m, got)
		}
		_, err := r.Read()
		assert.ErrorIs(t, err, io.EOF)
	}
}

func TestTooLarge(t *testing.T) {
	w, r, _ := pair(t, false)
	require.NoError(t, w.Write(make([]byte, 1<<16+1)))
	require.NoError(t, w.Flush())
	_, err := r.Read()
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestTamperAndWrongKey(t *testing.T) {
	w, _, buf := pair(t, true)
	require.NoError(t, w.Write([]byte("hello")))
	require.NoError(t, w.Flush())
	raw := bytes.Clone(buf.Bytes())

	// Flipped bit.
	bad := bytes.Clone(raw)
	bad[len(bad)-1] ^= 1
	r := NewReader(bytes.NewReader(bad), 4096, 1<<16)
	d, _, _ := Keys([]byte("secret"), []byte("transcript"))
	r.Seal(d)
	_, err := r.Read()
	assert.ErrorIs(t, err, ErrAuth)

	// Other transcript: other keys.
	r = NewReader(bytes.NewReader(raw), 4096, 1<<16)
	d2, _, _ := Keys([]byte("secret"), []byte("other"))
	r.Seal(d2)
	_, err = r.Read()
	assert.ErrorIs(t, err, ErrAuth)

	// Replay: the same record twice fails the second time (nonce counter).
	r = NewReader(bytes.NewReader(append(bytes.Clone(raw), raw...)), 4096, 1<<16)
	r.Seal(d)
	_, err = r.Read()
	require.NoError(t, err)
	_, err = r.Read()
	assert.ErrorIs(t, err, ErrAuth)

	// Unsealed reader of a truncated record.
	r = NewReader(bytes.NewReader(raw[:len(raw)-3]), 4096, 1<<16)
	_, err = r.Read()
	assert.True(t, errors.Is(err, io.ErrUnexpectedEOF))
}

func TestKeysDiffer(t *testing.T) {
	d, a, err := Keys([]byte("k"), []byte("t"))
	require.NoError(t, err)
	nonce := make([]byte, 12)
	assert.NotEqual(t, d.Seal(nil, nonce, []byte("x"), nil), a.Seal(nil, nonce, []byte("x"), nil))
	_, _, err = Keys(nil, nil)
	assert.Error(t, err)
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 'a'}, false)
	f.Add([]byte{0, 0, 0, 17, 1, 2, 3}, true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, false)
	d, _, _ := Keys([]byte("secret"), []byte("t"))
	f.Fuzz(func(t *testing.T, in []byte, sealed bool) {
		r := NewReader(bytes.NewReader(in), 64, 1024)
		if sealed {
			r.Seal(d)
		}
		for range 100 {
			b, err := r.Read()
			if err != nil {
				return
			}
			if len(b) > 1024 {
				t.Fatalf("record of %d bytes over the limit", len(b))
			}
		}
	})
}
