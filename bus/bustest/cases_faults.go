package bustest

import (
	"context"
	"errors"
	"slices"

	"github.com/peerscale/peerscale/bus"
)

func testCrash(e *env) {
	t := e.t
	bs, rs := e.group("a", "b", "c", "d")
	survivors, rsv := bs[:3], rs[:3]
	d, rd := bs[3], rs[3]
	level := e.ordered()
	for _, r := range rs {
		e.checkFIFO(r, false)
		e.checkOnce(r)
	}

	dErr := make(chan error, 1)
	e.wg.Go(func() {
		ctx, cancel := context.WithTimeout(e.life, Timeout)
		defer cancel()
		for seq := uint64(0); seq < 10*uint64(e.backlog()); seq++ {
			if err := d.Send(ctx, group, level, Payload("d", seq, 0)); err != nil {
				dErr <- err
				return
			}
		}
		dErr <- nil
	})
	var chs []<-chan error
	for _, b := range survivors {
		chs = append(chs, e.sendAll(b, level, "s", 0, perSender/2))
	}
	rs[0].Wait(t, "messages from d", func(evs []bus.Event) bool { return count(evs, d.Self(), "d") >= 20 })
	e.faults.Crash(t, d)

	if err := <-dErr; !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Send of a crashed member: %v, want ErrClosed", err)
	}
	if err := rd.WaitDone(t); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Recv of a crashed member: %v, want ErrClosed", err)
	}
	ctx := e.ctx()
	if _, err := d.Join(ctx, "bustest-2"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Join of a crashed member: %v, want ErrClosed", err)
	}
	for _, r := range rsv {
		v := r.WaitMembers(t, ids(survivors...)...)
		if !slices.Equal(v.Left, []bus.MemberID{d.Self()}) {
			t.Errorf("%s: view after the crash: Left = %v, want [%s]", r.Self(), v.Left, d.Self())
		}
	}
	e.wait(chs...)
	chs = chs[:0]
	for _, b := range survivors {
		chs = append(chs, e.sendAll(b, level, "s", perSender/2, perSender))
	}
	e.wait(chs...)
	for _, r := range rsv {
		e.waitCount(r, "s", perSender, survivors...)
	}
	e.sameViews(rsv...)
	if level.Total() {
		e.sameStreams(rsv...)
	}
}

func testRestartAfterCrash(e *env) {
	t := e.t
	bs, rs := e.group("a", "b")
	a, b := bs[0], bs[1]
	level := e.ordered()
	for i := range uint64(5) {
		e.send(b, level, "r", i)
	}
	e.waitCount(rs[0], "r", 5, b)
	e.faults.Crash(t, b)
	b2 := e.member("b")
	if b2.Self() == b.Self() || b2.Self().Name != b.Self().Name {
		t.Fatalf("restarted member is %s, was %s: want the same name and a new incarnation", b2.Self(), b.Self())
	}
	rb2 := e.join(b2, group)
	for _, r := range []*Recorder{rs[0], rb2} {
		r.WaitMembers(t, a.Self(), b2.Self())
	}
	for i := range uint64(5) {
		e.send(b2, level, "r", i)
	}
	for _, r := range []*Recorder{rs[0], rb2} {
		e.waitCount(r, "r", 5, b2)
		e.checkFIFO(r, false)
		e.checkOnce(r)
	}
	if n := count(rs[0].Events(), b.Self(), "r"); n != 5 {
		t.Errorf("a has %d messages from the crashed incarnation, want 5", n)
	}
}

// partition splits a b | c d and checks that each side goes on alone. It
// returns the members and recorders.
func (e *env) partition() ([]bus.Bus, []*Recorder, bus.Level) {
	t := e.t
	bs, rs := e.group("a", "b", "c", "d")
	level := e.ordered()
	e.faults.Partition(t, bs[:2], bs[2:])
	e.settle(bs[:2], rs[:2])
	e.settle(bs[2:], rs[2:])
	if va, vc := rs[0].LastView(), rs[2].LastView(); va.ID == vc.ID {
		t.Errorf("both sides installed view %s", va.ID)
	}
	chs := []<-chan error{
		e.sendAll(bs[0], level, "pa", 0, 10),
		e.sendAll(bs[2], level, "pc", 0, 10),
	}
	e.wait(chs...)
	for _, r := range rs[:2] {
		e.waitCount(r, "pa", 10, bs[0])
	}
	for _, r := range rs[2:] {
		e.waitCount(r, "pc", 10, bs[2])
	}
	e.checkSides(bs, rs)
	e.sameViews(rs[:2]...)
	e.sameViews(rs[2:]...)
	if level.Total() {
		e.sameStreams(rs[:2]...)
		e.sameStreams(rs[2:]...)
	}
	return bs, rs, level
}

// checkSides checks that no member received the other side's messages.
func (e *env) checkSides(bs []bus.Bus, rs []*Recorder) {
	e.t.Helper()
	for i, r := range rs {
		other, tag := bs[2], "pc"
		if i >= 2 {
			other, tag = bs[0], "pa"
		}
		if n := count(r.Events(), other.Self(), tag); n > 0 {
			e.t.Errorf("%s received %d messages sent on the other side of the partition", r.Self(), n)
		}
	}
}

func testPartition(e *env) {
	e.partition()
}

func testHeal(e *env) {
	t := e.t
	bs, rs, level := e.partition()
	last := []bus.ViewID{rs[0].LastView().ID, rs[2].LastView().ID}
	slices.SortFunc(last, bus.ViewID.Compare)
	marks := make([]int, len(rs))
	for i, r := range rs {
		marks[i] = r.Len()
	}
	e.faults.Heal(t)

	var merged *bus.View
	for i, r := range rs {
		v, _ := r.WaitView(t, marks[i], "the merged view", func(*bus.View) bool { return true })
		if !sameSet(v.Members, ids(bs...)) {
			t.Errorf("%s: first view after Heal %v, want one merged view of %v", r.Self(), v, ids(bs...))
			continue
		}
		prev := slices.SortedFunc(slices.Values(v.Previous), bus.ViewID.Compare)
		if !v.IsMerge() || !slices.Equal(prev, last) {
			t.Errorf("%s: merged view %v: Previous = %v, want the sides' last views %v", r.Self(), v, v.Previous, last)
		}
		if merged == nil {
			merged = v
		} else if Digest(v) != Digest(merged) {
			t.Errorf("%s: merged view %v differs from %v", r.Self(), v, merged)
		}
	}
	if merged == nil {
		t.FailNow()
	}

	chs := []<-chan error{
		e.sendAll(bs[0], level, "post", 0, 10),
		e.sendAll(bs[2], level, "post", 0, 10),
	}
	e.wait(chs...)
	for _, r := range rs {
		e.waitCount(r, "post", 10, bs[0], bs[2])
	}
	e.checkSides(bs, rs)
	for _, r := range rs {
		e.checkFIFO(r, false)
		e.checkOnce(r)
	}
	chain := func(r *Recorder) *Chain { return r.ViewChain() }
	if level.Total() {
		chain = func(r *Recorder) *Chain { return r.Chain() }
	}
	first := chain(rs[0])
	for _, r := range rs[1:] {
		if _, err := CompareFrom(first, chain(r), merged.ID); err != nil {
			t.Errorf("%s and %s after the merge: %v", rs[0].Self(), r.Self(), err)
		}
	}
}
