package proxycache

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// Catching up on missed purges.
//
// Every member remembers the purges it applied (a bounded log, stamped
// with its own clock) and, for members that left its view, since when they
// may have missed its purges. A member that may have missed purges (its
// store came back from disk, or members it had lost rejoin its view) asks
// the members concerned for the purges they applied since then; each one
// answers with those records, their ages, and how far back its log is
// complete. Ages rather than times travel, so the members' clocks need not
// agree. The asker removes the matching entries fetched before each purge,
// keeps everything else, and revalidates with the origin (rather than
// deletes) what the answers cannot vouch for.

// Catch-up tunables.
const (
	// catchUpTimeout bounds waiting for the answers of a catch-up; a
	// member that has not answered by then counts as unable to vouch.
	catchUpTimeout = 10 * time.Second
	// purgeSlack widens every time comparison of the catch-up: transit
	// time of the messages and the moment a purge was applied on the
	// other members.
	purgeSlack = time.Second
	// detectAllowance is the longest the bus is assumed to take to notice
	// a member gone: a member that left the view may have stopped
	// receiving purges that long before.
	detectAllowance = time.Minute
	// maxGone bounds the remembered departures.
	maxGone = 4096
	// defaultPurgeLog is the default length of the purge log.
	defaultPurgeLog = 10000
)

// logRec is one purge applied by this member.
type logRec struct {
	t  purgeTarget
	at time.Time
}

// purgeLog is a ring of the last purges applied, with the newest time of
// the records it had to drop: the log is complete since then.
type purgeLog struct {
	recs    []logRec
	head, n int
	dropped time.Time
}

func newPurgeLog(size int) *purgeLog {
	if size <= 0 {
		size = defaultPurgeLog
	}
	return &purgeLog{recs: make([]logRec, size)}
}

func (l *purgeLog) add(t purgeTarget, at time.Time) {
	i := (l.head + l.n) % len(l.recs)
	if l.n == len(l.recs) {
		if old := l.recs[l.head].at; old.After(l.dropped) {
			l.dropped = old
		}
		l.head = (l.head + 1) % len(l.recs)
	} else {
		l.n++
	}
	l.recs[i] = logRec{t: t, at: at}
}

// since returns the records applied at or after from, oldest first.
func (l *purgeLog) since(from time.Time) []logRec {
	var out []logRec
	for k := range l.n {
		r := l.recs[(l.head+k)%len(l.recs)]
		if !r.at.Before(from) {
			out = append(out, r)
		}
	}
	return out
}

// catchUp is one request for missed purges, waiting for its answers.
type catchUp struct {
	id       uint64
	since    time.Time // purges applied since then are wanted
	detected time.Time // when the gap was noticed
	hold     bool      // entries fetched before detected are revalidated until it completes
	need     map[bus.MemberID]bool
	vouch    time.Time // earliest time an answer vouched for; zero until one did
	failed   bool      // a member left or the time ran out before it answered
	deadline time.Time
}

// Wire format of the catch-up messages (beside purge and ack, see purge.go):
//
//	request: 'S' id:uvarint since-age-ms:uvarint n:uvarint n×(incarnation:uvarint name:uvarint-len+bytes)
//	answer:  'R' id:uvarint asker-incarnation:uvarint asker-name:uvarint-len+bytes flags:u8
//	         vouch-age-ms:uvarint n:uvarint n×(kind:u8 age-ms:uvarint host:uvarint-len+bytes path:uvarint-len+bytes)
//
// since-age-ms is math.MaxUint64 for "every purge you remember". An answer
// may take several messages; flags bit 0 marks the last one, which carries
// the vouch age (how long ago the answerer's log became complete).
const (
	msgSyncReq   = 'S'
	msgSyncReply = 'R'
	flagLast     = 1
	sinceAll     = math.MaxUint64
	maxAsked     = 1 << 12 // members named in one request
	maxRecords   = 1 << 16 // records in one answer message
)

type syncReq struct {
	id       uint64
	sinceAge uint64 // milliseconds, or sinceAll
	asked    []bus.MemberID
}

type syncRec struct {
	t   purgeTarget
	age uint64 // milliseconds since the answerer applied it
}

type syncReply struct {
	id       uint64
	asker    bus.MemberID
	last     bool
	vouchAge uint64 // milliseconds; only in the last message
	recs     []syncRec
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMember(b []byte, m bus.MemberID) []byte {
	b = binary.AppendUvarint(b, m.Incarnation)
	return appendStr(b, m.Name)
}

func (r *syncReq) encode() []byte {
	b := []byte{msgSyncReq}
	b = binary.AppendUvarint(b, r.id)
	b = binary.AppendUvarint(b, r.sinceAge)
	b = binary.AppendUvarint(b, uint64(len(r.asked)))
	for _, m := range r.asked {
		b = appendMember(b, m)
	}
	return b
}

func appendRec(b []byte, r syncRec) []byte {
	b = append(b, byte(r.t.kind))
	b = binary.AppendUvarint(b, r.age)
	b = appendStr(b, r.t.host)
	return appendStr(b, r.t.path)
}

// encodeReply header: everything before the records.
func (r *syncReply) appendHeader(b []byte) []byte {
	b = append(b, msgSyncReply)
	b = binary.AppendUvarint(b, r.id)
	b = appendMember(b, r.asker)
	var flags byte
	if r.last {
		flags |= flagLast
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, r.vouchAge)
	return binary.AppendUvarint(b, uint64(len(r.recs)))
}

func (r *syncReply) encode() []byte {
	b := r.appendHeader(nil)
	for _, rec := range r.recs {
		b = appendRec(b, rec)
	}
	return b
}

// splitReply cuts the records of an answer into messages of at most max
// bytes; the last message carries the vouch age.
func splitReply(id uint64, asker bus.MemberID, vouchAge uint64, recs []syncRec, max int) [][]byte {
	hdr := (&syncReply{id: id, asker: asker, vouchAge: vouchAge, recs: make([]syncRec, maxRecords)}).appendHeader(nil)
	room := max - len(hdr)
	kept := recs[:0:0]
	sizes := make([]int, 0, len(recs))
	for _, rec := range recs {
		n := len(appendRec(nil, rec))
		if n > room {
			// Longer than a message can carry (a tiny bus limit): the
			// asker cannot learn it, so the answer vouches only for
			// what came after it.
			vouchAge = min(vouchAge, rec.age)
			continue
		}
		kept = append(kept, rec)
		sizes = append(sizes, n)
	}
	var out [][]byte
	start, size := 0, 0
	for i, n := range sizes {
		if i > start && (size+n > room || i-start == maxRecords) {
			out = append(out, (&syncReply{id: id, asker: asker, recs: kept[start:i]}).encode())
			start, size = i, 0
		}
		size += n
	}
	return append(out, (&syncReply{id: id, asker: asker, last: true, vouchAge: vouchAge, recs: kept[start:]}).encode())
}

// decodeSync parses a catch-up message ('S' or 'R').
func decodeSync(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errBadMessage)
	}
	d := decoder{b: b[1:]}
	switch b[0] {
	case msgSyncReq:
		r := &syncReq{id: d.uvar(), sinceAge: d.uvar()}
		n := d.uvar()
		if n > maxAsked {
			return nil, fmt.Errorf("%w: %d members asked", errBadMessage, n)
		}
		for range n {
			m := d.member()
			if d.bad {
				break
			}
			r.asked = append(r.asked, m)
		}
		if d.bad || len(d.b) != 0 {
			return nil, fmt.Errorf("%w: catch-up request", errBadMessage)
		}
		return r, nil
	case msgSyncReply:
		r := &syncReply{id: d.uvar(), asker: d.member()}
		flags := d.byte()
		r.last = flags&flagLast != 0
		r.vouchAge = d.uvar()
		n := d.uvar()
		if d.bad || flags&^flagLast != 0 || n > maxRecords || (!r.last && r.vouchAge != 0) {
			return nil, fmt.Errorf("%w: catch-up answer header", errBadMessage)
		}
		for range n {
			rec := syncRec{t: purgeTarget{kind: purgeKind(d.byte())}, age: d.uvar()}
			rec.t.host, rec.t.path = d.str(), d.str()
			if d.bad || validTarget(rec.t) != nil {
				return nil, fmt.Errorf("%w: catch-up record", errBadMessage)
			}
			r.recs = append(r.recs, rec)
		}
		if len(d.b) != 0 {
			return nil, fmt.Errorf("%w: catch-up answer trailing bytes", errBadMessage)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: type %#x", errBadMessage, b[0])
}

// decoder reads the fields of a message; a malformed field sets bad.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvar() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // minimal encoding only
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvar()
	if d.bad || n > uint64(len(d.b)) || n > maxKeyLen {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) member() bus.MemberID {
	m := bus.MemberID{Incarnation: d.uvar()}
	m.Name = d.str()
	if m.Name == "" {
		d.bad = true
	}
	return m
}

func ms(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / time.Millisecond)
}

func ago(now time.Time, ageMs uint64) time.Time {
	if ageMs > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return time.Time{}
	}
	return now.Add(-time.Duration(ageMs) * time.Millisecond)
}

// The stamp file records, every stampEvery while a member runs and at
// Close, since when it may have missed purges: a store that comes back
// from disk catches up from there (or from detectAllowance before the last
// stamp, whichever is earlier).
const stampEvery = 10 * time.Second

// writeStamp records the time and unsynced (zero: none known) in the
// stamp file, as two decimal unix-nanosecond numbers.
func writeStamp(name string, now, unsynced time.Time) error {
	var v int64
	if !unsynced.IsZero() {
		v = unsynced.UnixNano()
	}
	b := strconv.AppendInt(nil, now.UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, v, 10)
	return os.WriteFile(name, b, 0o644)
}

// readStamp returns since when a store restored from disk may have missed
// purges; the zero time when the stamp is missing or unreadable (then any
// purge may have been missed).
func readStamp(name string, now time.Time) time.Time {
	b, err := readLimited(name, 64)
	if err != nil {
		return time.Time{}
	}
	f1, f2, ok := strings.Cut(string(b), " ")
	at, err1 := strconv.ParseInt(f1, 10, 64)
	v, err2 := strconv.ParseInt(f2, 10, 64)
	if !ok || err1 != nil || err2 != nil || at <= 0 || v < 0 {
		return time.Time{}
	}
	since := time.Unix(0, at).Add(-detectAllowance)
	if v > 0 && time.Unix(0, v).Before(since) {
		since = time.Unix(0, v)
	}
	if since.After(now) {
		return time.Time{} // the clock went back: trust nothing
	}
	return since
}

func (c *Cache) hooks() clusterHooks {
	return clusterHooks{
		apply:       c.applyPurge,
		applyMissed: c.applyMissed,
		setFloor:    c.store.setFloor,
		restored: func() (time.Time, bool) {
			if n, _ := c.store.size(); n == 0 {
				return time.Time{}, false
			}
			return readStamp(c.store.abs(stampName), time.Now()), true
		},
		serves: func(t purgeTarget) bool { return t.kind == purgeEvery || c.originForHost(t.host) != nil },
	}
}

// applyMissed removes what t names and was fetched before at (plus
// purgeSlack): a purge applied elsewhere at that time.
func (c *Cache) applyMissed(t purgeTarget, at time.Time) {
	if t.kind != purgeEvery {
		o := c.originForHost(t.host)
		if o == nil {
			return
		}
		t.host = o.host
	}
	n := c.store.purgeBefore(t, at.Add(purgeSlack))
	c.kickTrash()
	c.st.purges.Add(1)
	c.st.purgedObjects.Add(uint64(n))
	c.log.Debug("missed purge applied", "kind", t.kind, "host", t.host, "path", t.path, "at", at, "removed", n)
}

// stamp records since when this member may have missed purges.
func (c *Cache) stamp() {
	now := time.Now()
	var unsynced time.Time
	if c.cl != nil {
		unsynced = c.cl.unsyncedSince(now)
	}
	if err := writeStamp(c.store.abs(stampName), now, unsynced); err != nil {
		c.log.Warn("stamp not written", "err", err)
	}
}
