package logsub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/peerscale/peerscale/internal/logwire"
)

// errRecord reports a malformed record in a batch.
var errRecord = errors.New("logsub: malformed record")

// eachRecord decodes a logwire batch message and calls fn with each of its
// records, without allocating: the strings and Line of the Record fn gets
// alias data and are valid only until fn returns (code that keeps one
// clones it). It returns the batch header, or the first decoding error (the
// records before it have been passed to fn) or fn's first error.
//
// The layout is logwire's, version 1: after the batch header, each record is
// a big-endian u32 length, then time (varint Unix ns), duration (uvarint ns),
// status (uvarint), bytes (varint), eight strings (uvarint length + bytes:
// vhost, remote, user, method, url, proto, referer, user agent) and the
// line (uvarint length + bytes); bytes after those within the length belong
// to later revisions and are skipped.
func eachRecord(data []byte, group string, fn func(*Record) error) (logwire.BatchHeader, error) {
	h, rest, err := logwire.DecodeBatchHeader(data)
	if err != nil {
		return h, err
	}
	var r Record
	for i := range h.Count {
		if len(rest) < 4 {
			return h, fmt.Errorf("%w %d: %w", errRecord, i, logwire.ErrShort)
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return h, fmt.Errorf("%w %d: %w", errRecord, i, logwire.ErrShort)
		}
		body := rest[4 : 4+n]
		rest = rest[4+n:]
		r = Record{Group: group, Publisher: h.Publisher, Epoch: h.Epoch, Seq: h.FirstSeq + uint64(i), Server: h.Publisher}
		if err := decodeRecordInto(body, &r); err != nil {
			return h, fmt.Errorf("%w %d: %w", errRecord, i, err)
		}
		if err := fn(&r); err != nil {
			return h, err
		}
	}
	if len(rest) != 0 {
		return h, fmt.Errorf("%w: %d bytes after the last record", logwire.ErrCorrupt, len(rest))
	}
	return h, nil
}

// wireReader reads the fields of one record.
type wireReader struct {
	b   []byte
	err error
}

func (d *wireReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = logwire.ErrShort
		if n < 0 {
			d.err = logwire.ErrCorrupt
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *wireReader) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = logwire.ErrShort
		if n < 0 {
			d.err = logwire.ErrCorrupt
		}
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *wireReader) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > logwire.MaxStringLen {
		d.err = logwire.ErrCorrupt
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = logwire.ErrShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// str returns the next string field aliasing the record's bytes.
func (d *wireReader) str() string {
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func decodeRecordInto(b []byte, r *Record) error {
	d := wireReader{b: b}
	if t := d.varint(); t != 0 {
		r.Time = time.Unix(0, t).UTC()
	}
	dur := d.uvarint()
	status := d.uvarint()
	r.Bytes = d.varint()
	if d.err == nil && (dur > 1<<62 || status > 999) {
		return fmt.Errorf("%w: duration or status out of range", logwire.ErrCorrupt)
	}
	r.Duration, r.Status = time.Duration(dur), int(status)
	r.Vhost = d.str()
	r.Remote = d.str()
	r.User = d.str()
	r.Method = d.str()
	r.URL = d.str()
	r.Proto = d.str()
	r.Referer = d.str()
	r.UserAgent = d.str()
	r.Line = d.bytes()
	return d.err
}
