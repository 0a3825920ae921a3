package bustest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/peerscale/peerscale/bus"
)

// Sum is a SHA-256 digest.
type Sum [sha256.Size]byte

// String returns the first 8 bytes in hex, enough to tell sums apart in a
// test log.
func (s Sum) String() string { return fmt.Sprintf("%x", s[:8]) }

// Chain is a hash chain over one member's stream of a group, reduced to
// what every member must agree on: for a message its group, sender, level
// and payload; for a view its group, ID, Members and Previous (not Self,
// Joined or Left, which are relative to the receiver). Two members that
// delivered the same sequence have the same chain; CompareChains finds
// where two streams that began at different views start to differ.
//
// A Chain keeps 32 bytes and a short description per event, not the
// payloads, so chaos tests can keep one for long streams. Build a chain of
// the views only (for levels without a total order) by adding only the
// *bus.View events. The zero value is an empty chain. A Chain is not safe
// for concurrent use.
type Chain struct {
	entries []chainEntry
	head    Sum
	views   map[bus.ViewID]int
	d       digester
}

type chainEntry struct {
	sum  Sum
	view *bus.ViewID
	desc eventDesc
}

// eventDesc is what an error message needs to name an event.
type eventDesc struct {
	sender bus.MemberID
	level  bus.Level
	tag    string
	seq    uint64
	size   int
	parsed bool
}

func (e chainEntry) String() string {
	if e.view != nil {
		return "view " + e.view.String()
	}
	d := e.desc
	if d.parsed {
		return fmt.Sprintf("%s message from %s %q #%d", d.level, d.sender, d.tag, d.seq)
	}
	return fmt.Sprintf("%s message from %s (%d bytes)", d.level, d.sender, d.size)
}

// Digest returns the hash of the part of ev that must be the same at
// every member that delivers it (see Chain).
func Digest(ev bus.Event) Sum {
	var d digester
	return d.digest(ev)
}

// digester hashes events with one reusable hash and buffer.
type digester struct {
	h   hash.Hash
	buf []byte
}

func (d *digester) digest(ev bus.Event) Sum {
	if d.h == nil {
		d.h = sha256.New()
	}
	b := d.buf[:0]
	str := func(s string) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	member := func(m bus.MemberID) {
		str(m.Name)
		b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	}
	viewID := func(v bus.ViewID) {
		b = binary.BigEndian.AppendUint64(b, v.Seq)
		member(v.Coord)
	}
	var data []byte
	switch ev := ev.(type) {
	case *bus.Message:
		b = append(b, 'm')
		str(ev.Group)
		member(ev.Sender)
		b = binary.BigEndian.AppendUint64(b, uint64(ev.Level))
		b = binary.BigEndian.AppendUint64(b, uint64(len(ev.Data)))
		data = ev.Data
	case *bus.View:
		b = append(b, 'v')
		str(ev.Group)
		viewID(ev.ID)
		b = binary.BigEndian.AppendUint64(b, uint64(len(ev.Members)))
		for _, m := range ev.Members {
			member(m)
		}
		b = binary.BigEndian.AppendUint64(b, uint64(len(ev.Previous)))
		for _, p := range ev.Previous {
			viewID(p)
		}
	default:
		b = append(b, '?')
	}
	d.buf = b
	d.h.Reset()
	d.h.Write(b)
	d.h.Write(data)
	var s Sum
	d.h.Sum(s[:0])
	return s
}

// link returns the chain value after sum, given the value before it.
func link(prev, sum Sum) Sum {
	var b [2 * sha256.Size]byte
	copy(b[:], prev[:])
	copy(b[sha256.Size:], sum[:])
	return sha256.Sum256(b[:])
}

// Add appends ev to the chain.
func (c *Chain) Add(ev bus.Event) {
	e := chainEntry{sum: c.d.digest(ev)}
	switch ev := ev.(type) {
	case *bus.View:
		id := ev.ID
		e.view = &id
		if c.views == nil {
			c.views = make(map[bus.ViewID]int)
		}
		if _, dup := c.views[id]; !dup {
			c.views[id] = len(c.entries)
		}
	case *bus.Message:
		e.desc = eventDesc{sender: ev.Sender, level: ev.Level, size: len(ev.Data)}
		if tag, seq, err := ParsePayload(ev.Data); err == nil {
			e.desc.tag, e.desc.seq, e.desc.parsed = tag, seq, true
		}
	}
	c.entries = append(c.entries, e)
	c.head = link(c.head, e.sum)
}

// Len returns the number of events in the chain.
func (c *Chain) Len() int { return len(c.entries) }

// Head returns the chain value over every event added.
func (c *Chain) Head() Sum { return c.head }

// HeadOf returns the chain value over the events [i, j), as if the chain
// had started at event i.
func (c *Chain) HeadOf(i, j int) Sum {
	var s Sum
	for _, e := range c.entries[i:j] {
		s = link(s, e.sum)
	}
	return s
}

// ViewIndex returns the position of the view with id in the chain.
func (c *Chain) ViewIndex(id bus.ViewID) (int, bool) {
	i, ok := c.views[id]
	return i, ok
}

// FirstView returns the id of the first view in the chain.
func (c *Chain) FirstView() (bus.ViewID, bool) {
	for _, e := range c.entries {
		if e.view != nil {
			return *e.view, true
		}
	}
	return bus.ViewID{}, false
}

// CompareChains compares the streams of two members of one group over the
// part both delivered: from the first view of the member that joined later
// (found in the other's stream) to the end of the shorter remainder. It
// returns the number of events compared (zero when the streams share no
// view, as for members that were never in the group together) and an
// error naming the first event where the streams differ. A member that
// left or crashed has a shorter stream; its remainder must be a prefix of
// the other's.
func CompareChains(a, b *Chain) (overlap int, err error) {
	ia, ib, ok := anchor(a, b)
	if !ok {
		return 0, nil
	}
	return compareAt(a, b, ia, ib)
}

// CompareFrom is CompareChains with the overlap starting at the view with
// id in both chains, for streams that diverged before it (the sides of a
// partition and their merged view). It is an error if either chain lacks
// the view.
func CompareFrom(a, b *Chain, id bus.ViewID) (overlap int, err error) {
	ia, okA := a.ViewIndex(id)
	ib, okB := b.ViewIndex(id)
	if !okA || !okB {
		return 0, fmt.Errorf("bustest: view %s is not in both streams", id)
	}
	return compareAt(a, b, ia, ib)
}

func compareAt(a, b *Chain, ia, ib int) (overlap int, err error) {
	n := min(a.Len()-ia, b.Len()-ib)
	if a.HeadOf(ia, ia+n) == b.HeadOf(ib, ib+n) {
		return n, nil
	}
	for k := range n {
		ea, eb := a.entries[ia+k], b.entries[ib+k]
		if ea.sum != eb.sum {
			after := "the common first view"
			for j := ia + k - 1; j >= ia; j-- {
				if v := a.entries[j].view; v != nil {
					after = "view " + v.String()
					break
				}
			}
			return k, fmt.Errorf("bustest: streams differ at event %d after %s: %s here, %s there", k, after, ea, eb)
		}
	}
	return n, fmt.Errorf("bustest: chains differ but no event does (hash collision?)")
}

// anchor returns where the overlap of a and b begins in each.
func anchor(a, b *Chain) (ia, ib int, ok bool) {
	fa, okA := a.FirstView()
	fb, okB := b.FirstView()
	if !okA || !okB {
		return 0, 0, false
	}
	if i, found := a.ViewIndex(fb); found {
		return i, b.views[fb], true
	}
	if j, found := b.ViewIndex(fa); found {
		return a.views[fa], j, true
	}
	return 0, 0, false
}
