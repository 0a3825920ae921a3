package logwire

import (
	"encoding/binary"
	"fmt"
)

// Ack flags.
const (
	// AckDurable marks an ack from a logger that stored the records on
	// stable storage (fsync) before acknowledging. Only durable acks let a
	// publisher delete its journal.
	AckDurable uint8 = 1 << iota
	// AckSync asks every publisher to retransmit what this logger lacks:
	// from Next for each listed stream, and everything still retained for
	// publishers not listed. Loggers set it when they start and after a
	// view change in the log group.
	AckSync
)

// AckEntry is a logger's position in one publisher epoch.
type AckEntry struct {
	// Publisher and Epoch name the stream.
	Publisher string
	Epoch     uint64
	// Next is one more than the highest sequence number below which the
	// logger holds every record of the stream.
	Next uint64
	// Resend asks the publisher to retransmit the stream from Next (the
	// logger saw a gap).
	Resend bool
	// End, with Resend, bounds the retransmission: the logger holds the
	// record End (the first one above the hole), so the publisher resends
	// only the records in [Next, End). Zero means everything from Next
	// (a lost tail). Version 1 acks have no End.
	End uint64
}

// Ack is a logger's acknowledgement message.
type Ack struct {
	// Logger names the logger. It is stable across restarts (a host name
	// and a path, say): a publisher counts the acks of one name once
	// towards its quorum.
	Logger string
	// Flags is a combination of AckDurable and AckSync.
	Flags   uint8
	Entries []AckEntry
}

// MaxAckEntries bounds the entries of one Ack.
const MaxAckEntries = 1 << 16

// AppendAck appends an ack encoded in AckVersion to dst.
func AppendAck(dst []byte, a *Ack) []byte {
	dst = append(dst, AckVersion, byte(KindAck), a.Flags)
	dst = appendString(dst, a.Logger)
	dst = binary.AppendUvarint(dst, uint64(len(a.Entries)))
	for i := range a.Entries {
		e := &a.Entries[i]
		dst = appendString(dst, e.Publisher)
		dst = binary.AppendUvarint(dst, e.Epoch)
		dst = binary.AppendUvarint(dst, e.Next)
		var f byte
		if e.Resend {
			f = 1
		}
		dst = append(dst, f)
		if e.Resend {
			dst = binary.AppendUvarint(dst, e.End)
		}
	}
	return dst
}

// DecodeAck decodes an ack message.
func DecodeAck(b []byte) (*Ack, error) {
	k, err := MessageKind(b)
	if err != nil {
		return nil, err
	}
	if k != KindAck {
		return nil, fmt.Errorf("%w: %d, want ack", ErrKind, k)
	}
	if len(b) < 3 {
		return nil, ErrShort
	}
	a := &Ack{Flags: b[2]}
	if a.Flags&^(AckDurable|AckSync) != 0 {
		return nil, fmt.Errorf("%w: ack flags %#x", ErrCorrupt, a.Flags)
	}
	d := decoder{b: b[3:]}
	a.Logger = d.string()
	n := d.uvarint()
	if d.err != nil {
		return nil, fmt.Errorf("logwire: ack: %w", d.err)
	}
	// An entry takes at least 4 bytes.
	if n > MaxAckEntries || n*4 > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: %d ack entries in %d bytes", ErrCorrupt, n, len(d.b))
	}
	if n > 0 {
		a.Entries = make([]AckEntry, n)
	}
	for i := range a.Entries {
		e := &a.Entries[i]
		e.Publisher = d.string()
		e.Epoch = d.uvarint()
		e.Next = d.uvarint()
		f := d.bytes1()
		if d.err != nil {
			return nil, fmt.Errorf("logwire: ack entry %d: %w", i, d.err)
		}
		if f > 1 {
			return nil, fmt.Errorf("%w: ack entry flags %#x", ErrCorrupt, f)
		}
		e.Resend = f == 1
		if e.Resend && b[0] >= 2 {
			e.End = d.uvarint()
			if d.err != nil {
				return nil, fmt.Errorf("logwire: ack entry %d: %w", i, d.err)
			}
			if e.End != 0 && e.End <= e.Next {
				return nil, fmt.Errorf("%w: ack entry %d: resend [%d, %d)", ErrCorrupt, i, e.Next, e.End)
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the ack", ErrCorrupt, len(d.b))
	}
	return a, nil
}

func (d *decoder) bytes1() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = ErrShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}
