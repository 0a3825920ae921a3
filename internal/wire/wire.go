// Package wire frames a byte stream into length-prefixed records and, when
// given a key, seals every record with an AEAD keyed per direction from a
// shared secret and the handshake transcript (HKDF-SHA256).
//
// A record is a 4-byte big-endian length followed by that many bytes of
// body. With sealing, the body is AES-256-GCM ciphertext whose nonce is an
// implicit per-direction record counter, so a replayed, reordered,
// truncated or forged record fails to open.
package wire

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors returned by Reader.
var (
	// ErrTooLarge is returned for a record longer than the reader's limit.
	ErrTooLarge = errors.New("wire: record too large")
	// ErrAuth is returned for a sealed record that fails to open.
	ErrAuth = errors.New("wire: record authentication failed")
)

// HeaderLen is the length of a record header.
const HeaderLen = 4

// Overhead is the number of bytes sealing adds to a record body.
const Overhead = 16

// Keys derives the two AEADs of one connection from secret and the
// handshake transcript: the first seals what the dialer sends, the second
// what the acceptor sends. Both ends must pass the same transcript.
func Keys(secret, transcript []byte) (dialer, acceptor cipher.AEAD, err error) {
	if len(secret) == 0 {
		return nil, nil, errors.New("wire: empty secret")
	}
	prk, err := hkdf.Extract(sha256.New, secret, transcript)
	if err != nil {
		return nil, nil, fmt.Errorf("wire: %w", err)
	}
	mk := func(info string) (cipher.AEAD, error) {
		k, err := hkdf.Expand(sha256.New, prk, info, 32)
		if err != nil {
			return nil, err
		}
		blk, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(blk)
	}
	if dialer, err = mk("peerscale link dialer"); err != nil {
		return nil, nil, fmt.Errorf("wire: %w", err)
	}
	if acceptor, err = mk("peerscale link acceptor"); err != nil {
		return nil, nil, fmt.Errorf("wire: %w", err)
	}
	return dialer, acceptor, nil
}

// Writer writes records. It is not safe for concurrent use.
type Writer struct {
	w     *bufio.Writer
	aead  cipher.AEAD
	ctr   uint64
	nonce [12]byte
	body  []byte
}

// NewWriter returns a Writer buffering size bytes on w.
func NewWriter(w io.Writer, size int) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, size)}
}

// Seal makes every following record sealed with aead.
func (w *Writer) Seal(aead cipher.AEAD) { w.aead = aead }

// Body returns the body being built, to append to, and SetBody stores it
// back; End writes it as one record.
func (w *Writer) Body() []byte { return w.body }

// SetBody replaces the body being built.
func (w *Writer) SetBody(b []byte) { w.body = b }

// End writes the body built so far as one record (nothing when it is
// empty) and starts a new body.
func (w *Writer) End() error {
	if len(w.body) == 0 {
		return nil
	}
	err := w.Write(w.body)
	w.body = w.body[:0]
	return err
}

// Write writes p as one record.
func (w *Writer) Write(p []byte) error {
	n := len(p)
	if w.aead != nil {
		n += w.aead.Overhead()
	}
	var hdr [HeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(n))
	if _, err := w.w.Write(hdr[:]); err != nil {
		return err
	}
	if w.aead == nil {
		_, err := w.w.Write(p)
		return err
	}
	binary.BigEndian.PutUint64(w.nonce[4:], w.ctr)
	w.ctr++
	if w.w.Available() >= n {
		out := w.aead.Seal(w.w.AvailableBuffer(), w.nonce[:], p, nil)
		_, err := w.w.Write(out)
		return err
	}
	out := w.aead.Seal(make([]byte, 0, n), w.nonce[:], p, nil)
	_, err := w.w.Write(out)
	return err
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error { return w.w.Flush() }

// Reader reads records. It is not safe for concurrent use.
type Reader struct {
	r     *bufio.Reader
	max   int
	aead  cipher.AEAD
	ctr   uint64
	nonce [12]byte
	buf   []byte
}

// NewReader returns a Reader that accepts record bodies of at most max
// bytes (before sealing overhead), buffering size bytes of r.
func NewReader(r io.Reader, size, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size), max: max}
}

// Seal makes every following record expected sealed with aead.
func (r *Reader) Seal(aead cipher.AEAD) { r.aead = aead }

// Buffered reports how many bytes are buffered and can be read without
// blocking on the underlying reader.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Read returns the next record's body. The slice is valid until the next
// call. A record over the limit returns ErrTooLarge without reading it; a
// sealed record that does not open returns ErrAuth.
func (r *Reader) Read() ([]byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	limit := r.max
	if r.aead != nil {
		limit += r.aead.Overhead()
		if n < r.aead.Overhead() {
			return nil, ErrAuth
		}
	}
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, limit)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n, max(n, 4096))
	}
	buf := r.buf[:n]
	if _, err := io.ReadFull(r.r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if r.aead == nil {
		return buf, nil
	}
	binary.BigEndian.PutUint64(r.nonce[4:], r.ctr)
	r.ctr++
	out, err := r.aead.Open(buf[:0], r.nonce[:], buf, nil)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
