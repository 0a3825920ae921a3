package logwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// Version is the encoding version of batches, the version this package
// writes them in and the only one it reads them in.
const Version = 1

// AckVersion is the encoding version this package writes acks in. It reads
// acks of version 1 (entries without End) and 2.
const AckVersion = 2

// Kind tells what a message carries; it is the second byte of every message.
type Kind uint8

const (
	// KindBatch is a batch of access-log records, publisher to log group.
	KindBatch Kind = 1
	// KindAck is an acknowledgement, logger to ack group.
	KindAck Kind = 2
)

// Errors returned by the decoders; each error they return wraps one.
var (
	// ErrShort reports a message cut off before its end.
	ErrShort = errors.New("logwire: message truncated")
	// ErrVersion reports a message of an encoding version this package does
	// not read.
	ErrVersion = errors.New("logwire: unsupported version")
	// ErrKind reports a message of another kind than the decoder reads.
	ErrKind = errors.New("logwire: unexpected message kind")
	// ErrCorrupt reports a field that is out of range.
	ErrCorrupt = errors.New("logwire: corrupt message")
)

// BatchHeaderSize is the length of the fixed part of a batch header, before
// the publisher id.
const BatchHeaderSize = 2 + 8 + 8 + 8 + 4

// Where a batch's first sequence number and record count sit.
const (
	firstSeqOffset = 2 + 8
	countOffset    = 2 + 8 + 8 + 8
)

// MaxStringLen bounds every string field.
const MaxStringLen = 1 << 24

// BatchHeader is the header of a batch message.
type BatchHeader struct {
	// Publisher is the publisher's stable id (a host name, say).
	Publisher string
	// Epoch changes each time the publisher starts; sequence numbers
	// start again at 1 in each epoch.
	Epoch uint64
	// FirstSeq is the sequence number of the first record; the records of
	// a batch have consecutive numbers.
	FirstSeq uint64
	// Dropped counts the records the publisher dropped in this epoch before
	// this batch (memory and journal full). Dropped records have no
	// sequence number, so they leave no hole.
	Dropped uint64
	// Count is the number of records.
	Count uint32
}

// Record is one access-log record: the fields subscribers read without
// parsing text, and the formatted line.
type Record struct {
	// Seq is the record's sequence number (set by the decoders from the
	// batch header; not encoded per record).
	Seq uint64
	// Time is when the request started.
	Time time.Time
	// Duration is how long the request took.
	Duration time.Duration
	// Status is the final HTTP status; Bytes the response body bytes.
	Status int
	Bytes  int64
	// VHost is the host name the request was for, Remote the client
	// address, User the authenticated user ("" for none).
	VHost, Remote, User string
	// Method, URL (the request target as sent) and Proto.
	Method, URL, Proto string
	// Referer and UserAgent are the request headers ("" when absent).
	Referer, UserAgent string
	// Line is the formatted log line without its newline.
	Line []byte
}

// Batch is a decoded batch message.
type Batch struct {
	BatchHeader
	Records []Record
}

// AppendBatchHeader appends a batch header to dst. Records follow it; the
// count can be patched later with SetCount.
func AppendBatchHeader(dst []byte, h *BatchHeader) []byte {
	dst = append(dst, Version, byte(KindBatch))
	dst = binary.BigEndian.AppendUint64(dst, h.Epoch)
	dst = binary.BigEndian.AppendUint64(dst, h.FirstSeq)
	dst = binary.BigEndian.AppendUint64(dst, h.Dropped)
	dst = binary.BigEndian.AppendUint32(dst, h.Count)
	return appendString(dst, h.Publisher)
}

// SetFirstSeq patches the first sequence number of the batch encoded in b
// (to send the same records again under new numbers, say).
func SetFirstSeq(b []byte, seq uint64) {
	binary.BigEndian.PutUint64(b[firstSeqOffset:], seq)
}

// SetCount patches the record count of the batch encoded in b.
func SetCount(b []byte, n uint32) {
	binary.BigEndian.PutUint32(b[countOffset:], n)
}

// AppendRecord appends one record to dst (after a batch header and the
// records before it).
func AppendRecord(dst []byte, r *Record) []byte {
	at := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	var t int64
	if !r.Time.IsZero() {
		t = r.Time.UnixNano()
	}
	dst = binary.AppendVarint(dst, t)
	dst = binary.AppendUvarint(dst, uint64(max(r.Duration, 0)))
	dst = binary.AppendUvarint(dst, uint64(max(r.Status, 0)))
	dst = binary.AppendVarint(dst, r.Bytes)
	for _, s := range [...]string{r.VHost, r.Remote, r.User, r.Method, r.URL, r.Proto, r.Referer, r.UserAgent} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Line)))
	dst = append(dst, r.Line...)
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return dst
}

// RecordSize returns an upper bound of the bytes AppendRecord appends for r.
func RecordSize(r *Record) int {
	n := 4 + 3*binary.MaxVarintLen64 + 9*binary.MaxVarintLen64 + len(r.Line)
	n += len(r.VHost) + len(r.Remote) + len(r.User) + len(r.Method) + len(r.URL) +
		len(r.Proto) + len(r.Referer) + len(r.UserAgent)
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// MessageKind returns the kind of an encoded message after checking its
// version.
func MessageKind(b []byte) (Kind, error) {
	if len(b) < 2 {
		return 0, ErrShort
	}
	if b[0] < 1 || b[0] > AckVersion {
		return 0, fmt.Errorf("%w: %d", ErrVersion, b[0])
	}
	switch k := Kind(b[1]); k {
	case KindBatch:
		if b[0] != Version {
			return 0, fmt.Errorf("%w: batch version %d", ErrVersion, b[0])
		}
		return k, nil
	case KindAck:
		return k, nil
	}
	return 0, fmt.Errorf("%w: %d", ErrKind, b[1])
}

// DecodeBatchHeader decodes the header of a batch and returns it with the
// encoded records that follow.
func DecodeBatchHeader(b []byte) (BatchHeader, []byte, error) {
	var h BatchHeader
	k, err := MessageKind(b)
	if err != nil {
		return h, nil, err
	}
	if k != KindBatch {
		return h, nil, fmt.Errorf("%w: %d, want batch", ErrKind, k)
	}
	if len(b) < BatchHeaderSize {
		return h, nil, ErrShort
	}
	h.Epoch = binary.BigEndian.Uint64(b[2:])
	h.FirstSeq = binary.BigEndian.Uint64(b[firstSeqOffset:])
	h.Dropped = binary.BigEndian.Uint64(b[18:])
	h.Count = binary.BigEndian.Uint32(b[countOffset:])
	d := decoder{b: b[BatchHeaderSize:]}
	h.Publisher = d.string()
	if d.err != nil {
		return h, nil, fmt.Errorf("logwire: batch header: %w", d.err)
	}
	if h.Publisher == "" {
		return h, nil, fmt.Errorf("%w: empty publisher id", ErrCorrupt)
	}
	if h.FirstSeq == 0 && h.Count > 0 {
		return h, nil, fmt.Errorf("%w: sequence numbers start at 1", ErrCorrupt)
	}
	if h.FirstSeq+uint64(h.Count) < h.FirstSeq {
		return h, nil, fmt.Errorf("%w: sequence overflow", ErrCorrupt)
	}
	// Each record takes at least 4 bytes, which bounds Count by the input.
	if uint64(h.Count)*4 > uint64(len(d.b)) {
		return h, nil, fmt.Errorf("%w: %d records in %d bytes", ErrShort, h.Count, len(d.b))
	}
	return h, d.b, nil
}

// DecodeBatch decodes a whole batch message. The records' strings are
// copies; Line aliases b.
func DecodeBatch(b []byte) (*Batch, error) {
	it, err := IterRecords(b)
	if err != nil {
		return nil, err
	}
	bt := &Batch{BatchHeader: it.Header, Records: make([]Record, it.Header.Count)}
	for i := 0; i < len(bt.Records) && it.Next(&bt.Records[i]); i++ {
		r := &bt.Records[i]
		for _, f := range [...]*string{&r.VHost, &r.Remote, &r.User, &r.Method, &r.URL, &r.Proto, &r.Referer, &r.UserAgent} {
			*f = strings.Clone(*f)
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	return bt, nil
}

// RecordIter reads the records of a batch message one by one without
// allocating: the strings and Line of the records it fills alias the
// message. Use it where records are consumed as they are read (a logger
// writing lines, a monitor counting them) and DecodeBatch where they are
// kept.
//
//	it, err := logwire.IterRecords(msg)
//	...
//	var r logwire.Record
//	for it.Next(&r) {
//		// use r; clone what outlives msg
//	}
//	if err := it.Err(); err != nil { ... }
//
// A RecordIter is not safe for concurrent use.
type RecordIter struct {
	// Header is the batch header.
	Header BatchHeader

	rest []byte
	i    uint32
	err  error
}

// IterRecords decodes the header of the batch message b and returns an
// iterator over its records. It allocates only the publisher id.
func IterRecords(b []byte) (RecordIter, error) {
	h, rest, err := DecodeBatchHeader(b)
	if err != nil {
		return RecordIter{Header: h}, err
	}
	return RecordIter{Header: h, rest: rest}, nil
}

// Next decodes the next record into r, its Seq included, and reports
// whether there was one. The strings and Line of r alias the message: they
// are valid while the message's bytes are. Next returns false after the
// last record or at the first malformed one (see Err).
func (it *RecordIter) Next(r *Record) bool {
	if it.err != nil || it.i >= it.Header.Count {
		return false
	}
	rest, err := decodeRecord(it.rest, r)
	if err != nil {
		it.err = fmt.Errorf("logwire: record %d of %d: %w", it.i, it.Header.Count, err)
		return false
	}
	r.Seq = it.Header.FirstSeq + uint64(it.i)
	it.rest = rest
	it.i++
	return true
}

// Err returns the error that stopped Next, or, once every record has been
// read, an error if bytes follow the last record; nil otherwise. A batch
// that DecodeBatch rejects makes Err return an error wrapping the same
// sentinel.
func (it *RecordIter) Err() error {
	if it.err == nil && it.i == it.Header.Count && len(it.rest) != 0 {
		it.err = fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(it.rest))
	}
	return it.err
}

// decodeRecord decodes one record into r, its strings aliasing b, and
// returns the bytes after it.
func decodeRecord(b []byte, r *Record) ([]byte, error) {
	if len(b) < 4 {
		return nil, ErrShort
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, ErrShort
	}
	d := decoder{b: b[4 : 4+n]}
	r.Time = time.Time{}
	if t := d.varint(); t != 0 {
		r.Time = time.Unix(0, t).UTC()
	}
	dur := d.uvarint()
	status := d.uvarint()
	r.Bytes = d.varint()
	if d.err == nil && (dur > 1<<62 || status > 999) {
		return nil, fmt.Errorf("%w: duration or status out of range", ErrCorrupt)
	}
	r.Duration = time.Duration(dur)
	r.Status = int(status)
	r.VHost = d.view()
	r.Remote = d.view()
	r.User = d.view()
	r.Method = d.view()
	r.URL = d.view()
	r.Proto = d.view()
	r.Referer = d.view()
	r.UserAgent = d.view()
	r.Line = d.bytes()
	if d.err != nil {
		return nil, d.err
	}
	// Bytes left in d.b are fields of a later minor revision: skipped.
	return b[4+n:], nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(n)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(n)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fail(n int) {
	if n == 0 {
		d.err = ErrShort
	} else {
		d.err = fmt.Errorf("%w: varint overflow", ErrCorrupt)
	}
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > MaxStringLen {
		d.err = fmt.Errorf("%w: field of %d bytes", ErrCorrupt, n)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// string returns a copy of the next string field.
func (d *decoder) string() string { return string(d.bytes()) }

// view returns the next string field aliasing the message.
func (d *decoder) view() string {
	if d.err == nil && len(d.b) > 0 && d.b[0] < 0x80 && int(d.b[0]) < len(d.b) {
		// Fast path: a length below 128 is a one-byte uvarint.
		n := int(d.b[0])
		if n == 0 {
			d.b = d.b[1:]
			return ""
		}
		s := unsafe.String(&d.b[1], n)
		d.b = d.b[1+n:]
		return s
	}
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
