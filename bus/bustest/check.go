package bustest

import (
	"fmt"
	"slices"
	"sync"

	"github.com/peerscale/peerscale/bus"
)

// StreamChecker checks, event by event, the rules that hold for one
// member's stream of one group whatever the level and the faults:
//
//   - the first event is a View that contains the member, and Self is its
//     index;
//   - view ids strictly increase; Members has no duplicates and contains
//     the member at Self;
//   - Joined and Left are the differences from the member's previous view
//     (the first view lists every member, the member itself included, as
//     Joined);
//   - Previous contains the member's previous view id;
//   - members that stay keep their relative order, and a view that is not
//     a merge lists the members that joined after the ones that stayed
//     (oldest first);
//   - every event names the group, and a message's View is the id of the
//     last view delivered before it.
//
// A StreamChecker is not safe for concurrent use.
type StreamChecker struct {
	self  bus.MemberID
	group string
	view  *bus.View
	n     int
}

// NewStreamChecker returns a checker for the stream that member self
// receives for group.
func NewStreamChecker(self bus.MemberID, group string) *StreamChecker {
	return &StreamChecker{self: self, group: group}
}

// Check checks the next event of the stream.
func (c *StreamChecker) Check(ev bus.Event) error {
	c.n++
	err := c.check(ev)
	if err != nil {
		return fmt.Errorf("%s event %d (%v): %w", c.self, c.n, ev, err)
	}
	return nil
}

func (c *StreamChecker) check(ev bus.Event) error {
	switch ev := ev.(type) {
	case *bus.Message:
		if ev == nil {
			return fmt.Errorf("nil message")
		}
		if c.view == nil {
			return fmt.Errorf("message before the first view")
		}
		if ev.Group != c.group {
			return fmt.Errorf("message for group %q in the stream of %q", ev.Group, c.group)
		}
		if ev.View != c.view.ID {
			return fmt.Errorf("message says view %s, last view delivered is %s", ev.View, c.view.ID)
		}
		if !ev.Level.Valid() {
			return fmt.Errorf("message has invalid level %s", ev.Level)
		}
		return nil
	case *bus.View:
		if ev == nil {
			return fmt.Errorf("nil view")
		}
		err := c.checkView(ev)
		c.view = ev.Clone()
		return err
	default:
		return fmt.Errorf("unknown event type %T", ev)
	}
}

func (c *StreamChecker) checkView(v *bus.View) error {
	if v.Group != c.group {
		return fmt.Errorf("view of group %q in the stream of %q", v.Group, c.group)
	}
	seen := make(map[bus.MemberID]bool, len(v.Members))
	for _, m := range v.Members {
		if seen[m] {
			return fmt.Errorf("member %s listed twice", m)
		}
		seen[m] = true
	}
	if v.Self < 0 || v.Self >= len(v.Members) || v.Members[v.Self] != c.self {
		return fmt.Errorf("Self = %d does not index %s in %v", v.Self, c.self, v.Members)
	}
	prev := c.view
	if prev == nil {
		if !sameSet(v.Joined, v.Members) {
			return fmt.Errorf("first view: Joined = %v, want every member %v", v.Joined, v.Members)
		}
		if len(v.Left) != 0 {
			return fmt.Errorf("first view: Left = %v, want none", v.Left)
		}
		return nil
	}
	if v.ID.Compare(prev.ID) <= 0 {
		return fmt.Errorf("view id %s does not increase on %s", v.ID, prev.ID)
	}
	if !slices.Contains(v.Previous, prev.ID) {
		return fmt.Errorf("Previous = %v does not contain the previous view %s", v.Previous, prev.ID)
	}
	var joined, left, stayed []bus.MemberID
	for _, m := range v.Members {
		if prev.Contains(m) {
			stayed = append(stayed, m)
		} else {
			joined = append(joined, m)
		}
	}
	for _, m := range prev.Members {
		if !v.Contains(m) {
			left = append(left, m)
		}
	}
	if !sameSet(v.Joined, joined) {
		return fmt.Errorf("Joined = %v, want %v", v.Joined, joined)
	}
	if !sameSet(v.Left, left) {
		return fmt.Errorf("Left = %v, want %v", v.Left, left)
	}
	var order []bus.MemberID
	for _, m := range prev.Members {
		if v.Contains(m) {
			order = append(order, m)
		}
	}
	if !slices.Equal(order, stayed) {
		return fmt.Errorf("members that stayed changed order: %v, was %v", stayed, order)
	}
	if !v.IsMerge() && !slices.Equal(v.Members[:len(stayed)], stayed) {
		return fmt.Errorf("members %v are not oldest first: %v joined before %v stayed", v.Members, joined, stayed)
	}
	return nil
}

func sameSet(a, b []bus.MemberID) bool {
	if len(a) != len(b) {
		return false
	}
	a = slices.Clone(a)
	b = slices.Clone(b)
	slices.SortFunc(a, bus.MemberID.Compare)
	slices.SortFunc(b, bus.MemberID.Compare)
	return slices.Equal(a, b)
}

type streamKey struct {
	sender bus.MemberID
	tag    string
}

// FIFO checks per-sender order across the messages one member delivers:
// for each sender and payload tag (see Payload), sequence numbers must
// follow each other without gaps or duplicates. Senders are MemberIDs, so
// a restarted member (a new incarnation) starts a new sequence.
//
// A FIFO is safe for concurrent use; its zero value expects every sequence
// to start at 0.
type FIFO struct {
	// LateStart accepts any sequence number as the first of a sender, for
	// a member that joined after the sender began.
	LateStart bool

	mu   sync.Mutex
	next map[streamKey]uint64
}

// Check checks the next message delivered. Messages without a Payload
// body are an error.
func (f *FIFO) Check(m *bus.Message) error {
	tag, seq, err := ParsePayload(m.Data)
	if err != nil {
		return fmt.Errorf("bustest: fifo: message from %s: %w", m.Sender, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = make(map[streamKey]uint64)
	}
	k := streamKey{m.Sender, tag}
	want, ok := f.next[k]
	switch {
	case !ok && (f.LateStart || seq == 0):
	case !ok:
		return fmt.Errorf("bustest: fifo: first message of %s %q is #%d, want #0", m.Sender, tag, seq)
	case seq < want:
		return fmt.Errorf("bustest: fifo: duplicate or reordered message of %s %q: #%d after #%d", m.Sender, tag, seq, want-1)
	case seq > want:
		return fmt.Errorf("bustest: fifo: gap in messages of %s %q: #%d after #%d", m.Sender, tag, seq, want-1)
	}
	f.next[k] = seq + 1
	return nil
}

// Next returns the sequence number expected next from sender under tag:
// one more than the last one checked, or 0.
func (f *FIFO) Next(sender bus.MemberID, tag string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next[streamKey{sender, tag}]
}

// Tally checks exactly-once delivery without order: it counts the Payload
// messages one member delivers and reports duplicates.
//
// A Tally is safe for concurrent use; its zero value is empty.
type Tally struct {
	mu   sync.Mutex
	seen map[streamKey]map[uint64]bool
	n    int
}

// Add records a delivered message. A message delivered before, or one
// without a Payload body, is an error.
func (t *Tally) Add(m *bus.Message) error {
	tag, seq, err := ParsePayload(m.Data)
	if err != nil {
		return fmt.Errorf("bustest: tally: message from %s: %w", m.Sender, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = make(map[streamKey]map[uint64]bool)
	}
	k := streamKey{m.Sender, tag}
	s := t.seen[k]
	if s == nil {
		s = make(map[uint64]bool)
		t.seen[k] = s
	}
	if s[seq] {
		return fmt.Errorf("bustest: tally: duplicate message of %s %q: #%d", m.Sender, tag, seq)
	}
	s[seq] = true
	t.n++
	return nil
}

// Len returns the number of distinct messages recorded.
func (t *Tally) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Count returns the number of distinct messages recorded from sender
// under tag.
func (t *Tally) Count(sender bus.MemberID, tag string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen[streamKey{sender, tag}])
}

// Missing returns the sequence numbers below n not recorded from sender
// under tag, in increasing order.
func (t *Tally) Missing(sender bus.MemberID, tag string, n uint64) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.seen[streamKey{sender, tag}]
	var out []uint64
	for i := range n {
		if !s[i] {
			out = append(out, i)
		}
	}
	return out
}

// CheckMessages adapts a check of messages, such as FIFO.Check or
// Tally.Add, to Recorder.AddCheck: views pass.
func CheckMessages(check func(*bus.Message) error) func(bus.Event) error {
	return func(ev bus.Event) error {
		if m, ok := ev.(*bus.Message); ok {
			return check(m)
		}
		return nil
	}
}
