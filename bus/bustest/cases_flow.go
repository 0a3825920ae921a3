package bustest

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// backlogSize is the payload size of the flow-control cases.
const backlogSize = 1024

// joinGroup joins b to name without reading the stream.
func (e *env) joinGroup(b bus.Bus, name string) bus.Group {
	e.t.Helper()
	g, err := b.Join(e.ctx(), name)
	if err != nil {
		e.t.Fatalf("bustest: %s: Join(%q): %v", b.Self(), name, err)
	}
	return g
}

func testUnreliableNeverBlocks(e *env) {
	t := e.t
	slow := e.member("slow")
	gs := e.joinGroup(slow, group)
	s := e.member("sender")
	size := min(backlogSize, s.MaxMessageSize())
	ctx, cancel := context.WithTimeout(e.life, Timeout)
	defer cancel()
	n := e.backlog() + 1
	for seq := range uint64(n) {
		if err := s.Send(ctx, group, bus.Unreliable, Payload("u", seq, size)); err != nil {
			t.Fatalf("Unreliable Send #%d while the only member does not read: %v", seq, err)
		}
	}

	// Views are never dropped: the member that did not read gets its
	// first view, what was not dropped, the view with a member that joined
	// meanwhile, then newer messages.
	late := e.member("late")
	rl := e.join(late, group)
	rl.WaitMembers(t, slow.Self(), late.Self())
	rs := Record(t, slow.Self(), gs)
	rs.WaitMembers(t, slow.Self(), late.Self())
	e.send(s, bus.FIFO, "after", 0)
	e.waitHas(rs, s, "after", 0)
	for _, m := range rs.Messages() {
		if _, _, err := ParsePayload(m.Data); err != nil {
			t.Fatalf("corrupt message: %v", err)
		}
	}
	t.Logf("%d of %d unreliable messages kept by the member that did not read", count(rs.Events(), s.Self(), "u"), n)
}

func testBackpressure(e *env) {
	for _, level := range []bus.Level{bus.Reliable, bus.FIFO, bus.Agreed} {
		if !e.supports(level) {
			e.t.Logf("%s not supported: skipped", level)
			continue
		}
		e.backpressure(level)
	}
}

// fill sends size-byte messages from s to grp at level, tagged tag, until
// Send blocks, and returns the sequence numbers of the Sends that returned
// nil and of those that timed out. It fails the case when more than the
// backlog bound are accepted.
func (e *env) fill(s bus.Bus, grp string, level bus.Level, tag string, size int) (accepted, refused []uint64) {
	t := e.t
	t.Helper()
	var seq uint64
	blocked := false
	for !blocked && len(accepted) <= e.backlog() {
		// A first timeout may be noise on a busy machine; two in a row,
		// the second one longer, is a block.
		wait := 250 * time.Millisecond
		if len(refused) > 0 && refused[len(refused)-1] == seq-1 {
			wait = time.Second
		}
		ctx, cancel := context.WithTimeout(e.life, wait)
		err := s.Send(ctx, grp, level, Payload(tag, seq, size))
		cancel()
		switch {
		case err == nil:
			accepted = append(accepted, seq)
		case errors.Is(err, context.DeadlineExceeded):
			blocked = wait == time.Second
			refused = append(refused, seq)
		default:
			t.Fatalf("%s Send #%d towards a member that does not read: %v, want nil or context.DeadlineExceeded", level, seq, err)
		}
		seq++
	}
	if !blocked {
		t.Fatalf("%s: %d Sends of %d bytes accepted towards a member that does not read, without blocking", level, len(accepted), size)
	}
	return accepted, refused
}

// backpressure checks at level that a member that stops reading makes Send
// block after a bounded number of messages, until the Send's ctx ends, and
// that sending resumes once it reads again, with nothing lost.
func (e *env) backpressure(level bus.Level) {
	t := e.t
	grp := "bustest-backpressure-" + level.String()
	slow := e.member("slow-" + level.String())
	gs := e.joinGroup(slow, grp)
	fast := e.member("fast-" + level.String())
	rf := e.join(fast, grp)
	rf.WaitMembers(t, slow.Self(), fast.Self())
	s := e.member("sender-" + level.String())
	size := min(backlogSize, s.MaxMessageSize())

	accepted, refused := e.fill(s, grp, level, "bp", size)
	seq := refused[len(refused)-1] + 1
	t.Logf("%s: Send blocked after %d messages of %d bytes", level, len(accepted), size)

	rs := Record(t, slow.Self(), gs)
	ctx, cancel := context.WithTimeout(e.life, Timeout)
	defer cancel()
	if err := s.Send(ctx, grp, level, Payload("bp", seq, size)); err != nil {
		t.Fatalf("%s Send once the member reads again: %v", level, err)
	}
	accepted = append(accepted, seq)
	for _, r := range []*Recorder{rs, rf} {
		e.waitHas(r, s, "bp", seq)
	}

	// Every accepted message arrives once; a refused one arrives at every
	// member or at none; from FIFO on, in order; from Agreed on, in one
	// order everywhere.
	var delivered [2][]uint64
	for i, r := range []*Recorder{rs, rf} {
		e.checkOnce(r)
		var got []uint64
		for _, m := range messagesFrom(r.Events(), s.Self()) {
			_, n, err := ParsePayload(m.Data)
			if err != nil {
				t.Fatalf("%s: %v", r.Self(), err)
			}
			got = append(got, n)
		}
		if level.Ordered() && !slices.IsSorted(got) {
			t.Errorf("%s: %s messages out of order", r.Self(), level)
		}
		slices.Sort(got)
		for _, n := range accepted {
			if _, found := slices.BinarySearch(got, n); !found {
				t.Errorf("%s: accepted message #%d not delivered", r.Self(), n)
				break
			}
		}
		for _, n := range got {
			if _, found := slices.BinarySearch(refused, n); found {
				delivered[i] = append(delivered[i], n)
			}
		}
	}
	if !slices.Equal(delivered[0], delivered[1]) {
		t.Errorf("refused messages delivered to only some members: %v at %s, %v at %s", delivered[0], slow.Self(), delivered[1], fast.Self())
	}
	if level.Total() {
		e.sameStreams(rs, rf)
	}
}

func testNoLeaks(e *env) {
	t := e.t
	bs, rs := e.group("a", "b", "c")
	a, c := bs[0], bs[2]
	for _, b := range bs[:2] {
		rs = append(rs, e.join(b, "bustest-2"))
	}
	var seq uint64
	for _, level := range append([]bus.Level{bus.Unreliable}, reliableLevels...) {
		if e.provides(a, level) {
			e.send(a, level, "all", seq)
			seq++
		}
	}
	e.waitHas(rs[1], a, "all", seq-1)

	// c blocks sending towards a member that does not read.
	slow := e.member("slow")
	e.joinGroup(slow, "bustest-slow")
	progress := make(chan struct{}, 1)
	blockedErr := make(chan error, 1)
	e.wg.Go(func() {
		ctx, cancel := context.WithTimeout(e.life, Timeout)
		defer cancel()
		for n := uint64(0); ; n++ {
			if err := c.Send(ctx, "bustest-slow", bus.Reliable, Payload("flood", n, backlogSize)); err != nil {
				blockedErr <- err
				return
			}
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	})
	select {
	case <-progress:
	case err := <-blockedErr:
		t.Fatalf("Send towards a member that does not read: %v", err)
	}
	for _, b := range append(bs, slow) {
		if err := b.Close(); err != nil {
			t.Errorf("%s: Close: %v", b.Self(), err)
		}
	}
	if err := <-blockedErr; !errors.Is(err, bus.ErrClosed) {
		t.Errorf("blocked Send when its Bus closed: %v, want ErrClosed", err)
	}
	for _, r := range rs {
		if err := r.WaitDone(t); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s: Recv in %q when its Bus closed: %v, want ErrClosed", r.Self(), r.group, err)
		}
	}
}

// testGroupsIndependent checks that backpressure is per group: a member
// that stops reading one group blocks Sends to that group only.
func testGroupsIndependent(e *env) {
	t := e.t
	m := e.member("m")
	stuck := "bustest-stuck"
	e.joinGroup(m, stuck)
	rm := e.join(m, group)
	s := e.member("sender")
	rm.WaitMembers(t, m.Self())
	accepted, _ := e.fill(s, stuck, bus.Reliable, "stuck", min(backlogSize, s.MaxMessageSize()))
	t.Logf("Send to %q blocked after %d messages", stuck, len(accepted))
	for seq := range uint64(10) {
		e.send(s, bus.FIFO, "free", seq)
	}
	e.waitCount(rm, "free", 10, s)
	for _, msg := range rm.Messages() {
		if tag, _, _ := ParsePayload(msg.Data); tag != "free" {
			t.Errorf("%q stream got %v", group, msg)
		}
	}
}
