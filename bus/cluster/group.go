package cluster

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/peerscale/peerscale/bus"
)

type heldMsg struct {
	viewSeq uint64
	msg     *bus.Message
}

// group is a Bus's membership of one group: a bounded queue of events fed
// by the link readers and views, drained by Recv.
//
// Recv is called by one goroutine at a time; everything else is safe for
// concurrent use. mu guards all fields.
type group struct {
	b    *Bus
	name string

	mu       sync.Mutex
	items    []bus.Event
	head     int
	ndata    int // messages in items and held, bounded by QueueLen
	held     []heldMsg
	view     *bus.View // last view delivered; nil before the first
	minSeq   uint64    // the first view must be newer than this
	firstSeq uint64
	closed   bool
	ready    chan struct{} // closed on the first view
	avail    chan struct{} // capacity 1: Recv wake-up
	space    chan struct{} // closed when Recv frees room, if spaceWait
	wait     bool
	dropped  []*bus.Message // held messages dropped by installLocked; credit owed

	reported   atomic.Uint64 // last position reported to the sequencer
	reportedMu sync.Mutex
	reportedC  bus.MemberID // the sequencer it was reported to

	vhist map[uint64][]bus.MemberID // members of the recent views, by view seq

	// The Agreed order (order.go).
	apend   map[token]*pendMsg      // payloads waiting for their token
	aq      []aentry                // received positions after adel, in order
	afut    map[uint64]aentry       // positions received ahead of a gap
	adel    uint64                  // last position delivered
	aret    []aentry                // delivered, kept until stable
	astable uint64                  // last position every member delivered
	ahigh   map[bus.MemberID]uint64 // per sender: highest sequence number received in a token
	adone   map[bus.MemberID]uint64 // per sender: highest sequence number delivered
}

func newGroup(b *Bus, name string, minSeq uint64) *group {
	return &group{
		b:      b,
		name:   name,
		minSeq: minSeq,
		ready:  make(chan struct{}),
		avail:  make(chan struct{}, 1),
		space:  make(chan struct{}),
	}
}

var _ bus.Group = (*group)(nil)

func (g *group) Name() string { return g.name }

func (g *group) Recv(ctx context.Context) (bus.Event, error) {
	for {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return nil, bus.ErrClosed
		}
		if g.head < len(g.items) {
			ev := g.items[g.head]
			g.items[g.head] = nil
			g.head++
			if g.head == len(g.items) {
				g.items, g.head = g.items[:0], 0
			} else if g.head > 1024 && g.head*2 > len(g.items) {
				n := copy(g.items, g.items[g.head:])
				clear(g.items[n:])
				g.items, g.head = g.items[:n], 0
			}
			m, isMsg := ev.(*bus.Message)
			if isMsg {
				g.ndata--
				if g.wait {
					g.wait = false
					close(g.space)
					g.space = make(chan struct{})
				}
			}
			g.mu.Unlock()
			if isMsg && m.Level != bus.Unreliable {
				g.b.consumed(m.Sender, g.name, 1)
			}
			return ev, nil
		}
		g.mu.Unlock()
		select {
		case <-g.avail:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *group) Send(ctx context.Context, level bus.Level, data []byte) error {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return bus.ErrClosed
	}
	return g.b.Send(ctx, g.name, level, data)
}

func (g *group) Leave(ctx context.Context) error {
	return g.b.leave(ctx, g)
}

// shut closes the handle: Recv returns ErrClosed, pushers give up, the
// senders of the messages discarded get their credit back.
func (g *group) shut() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	owed := make(map[bus.MemberID]int)
	for _, ev := range g.items[g.head:] {
		if m, ok := ev.(*bus.Message); ok && m.Level != bus.Unreliable {
			owed[m.Sender]++
		}
	}
	for _, h := range g.held {
		if h.msg.Level != bus.Unreliable {
			owed[h.msg.Sender]++
		}
	}
	for _, pm := range g.apend {
		owed[pm.msg.Sender]++
	}
	g.items, g.held = nil, nil
	g.apend, g.aq, g.afut, g.aret = nil, nil, nil, nil
	close(g.space)
	g.space = make(chan struct{})
	notify(g.avail)
	g.mu.Unlock()
	for s, n := range owed {
		g.b.consumed(s, g.name, n)
	}
}

// waitRoom waits until the queue has room for a message, ctx ends or the
// Bus closes.
func (g *group) waitRoom(ctx context.Context) error {
	g.mu.Lock()
	for g.ndata >= g.b.cfg.QueueLen && !g.closed {
		g.wait = true
		ch := g.space
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-g.b.done:
			return bus.ErrClosed
		}
		g.mu.Lock()
	}
	g.mu.Unlock()
	return nil
}

// push queues a message for Recv. Unless force is set, Reliable messages
// wait for room until ctx ends (nil: until the Bus closes) and Unreliable
// ones are dropped when the queue is full. It reports whether the message
// was queued.
func (g *group) push(ctx context.Context, force bool, viewSeq uint64, m *bus.Message) (bool, error) {
	g.mu.Lock()
	for !force && g.ndata >= g.b.cfg.QueueLen && !g.closed {
		if m.Level == bus.Unreliable {
			g.mu.Unlock()
			return false, nil
		}
		g.wait = true
		ch := g.space
		g.mu.Unlock()
		if ctx == nil {
			select {
			case <-ch:
			case <-g.b.done:
				return false, bus.ErrClosed
			}
		} else {
			select {
			case <-ch:
			case <-ctx.Done():
				return false, ctx.Err()
			case <-g.b.done:
				return false, bus.ErrClosed
			}
		}
		g.mu.Lock()
	}
	defer g.mu.Unlock()
	if g.closed {
		return false, nil
	}
	switch {
	case g.view == nil || viewSeq > g.view.ID.Seq:
		g.held = append(g.held, heldMsg{viewSeq, m})
	case viewSeq < g.firstSeq:
		return false, nil // sent to an earlier membership of this member
	default:
		m.View = g.view.ID
		g.items = append(g.items, m)
		notify(g.avail)
	}
	g.ndata++
	return true, nil
}

// installLocked delivers view v, which contains self, and releases the
// messages held for it.
func (g *group) installLocked(v *viewMsg, self bus.MemberID) {
	idx := slices.Index(v.Members, self)
	bv := &bus.View{
		Group:    v.Group,
		ID:       v.ID,
		Members:  slices.Clone(v.Members),
		Self:     idx,
		Previous: slices.Clone(v.Previous),
	}
	if g.view == nil {
		bv.Joined = slices.Clone(v.Members)
		g.firstSeq = v.ID.Seq
		close(g.ready)
	} else {
		for _, m := range v.Members {
			if !slices.Contains(g.view.Members, m) {
				bv.Joined = append(bv.Joined, m)
			}
		}
		for _, m := range g.view.Members {
			if !slices.Contains(v.Members, m) {
				bv.Left = append(bv.Left, m)
			}
		}
	}
	g.view = bv
	g.items = append(g.items, bv)
	if g.vhist == nil {
		g.vhist = make(map[uint64][]bus.MemberID)
	}
	g.vhist[v.ID.Seq] = bv.Members
	for seq := range g.vhist {
		if seq+16 < v.ID.Seq {
			delete(g.vhist, seq)
		}
	}
	// Release the messages that waited for this view, in arrival order.
	var dropped []*bus.Message
	kept := g.held[:0]
	for _, h := range g.held {
		switch {
		case h.viewSeq > v.ID.Seq:
			kept = append(kept, h)
		case h.viewSeq < g.firstSeq:
			g.ndata--
			dropped = append(dropped, h.msg)
		default:
			h.msg.View = bv.ID
			g.items = append(g.items, h.msg)
		}
	}
	clear(g.held[len(kept):])
	g.held = kept
	if g.wait && g.ndata < g.b.cfg.QueueLen {
		g.wait = false
		close(g.space)
		g.space = make(chan struct{})
	}
	notify(g.avail)
	if len(dropped) > 0 {
		g.dropped = append(g.dropped, dropped...)
	}
}

// firstView returns the id of the first view, or the zero id before it.
func (g *group) firstView() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.firstSeq
}

func (g *group) reportedTo() bus.MemberID {
	g.reportedMu.Lock()
	defer g.reportedMu.Unlock()
	return g.reportedC
}

func (g *group) setReported(pos uint64, to bus.MemberID) {
	g.reportedMu.Lock()
	g.reportedC = to
	g.reportedMu.Unlock()
	g.reported.Store(pos)
}
