package bustest

import (
	"fmt"

	"github.com/peerscale/peerscale/bus"
)

// perSender is how many messages each sender sends in the ordering cases.
const perSender = 200

// testConcurrentSenders has three members send at level at once and checks
// what the level promises at every member: exactly once for every level,
// per-sender order from FIFO on, one identical stream from Causal on.
func testConcurrentSenders(e *env, level bus.Level) {
	bs, rs := e.group("a", "b", "c")
	e.requireLevel(bs[0], level)
	var chs []<-chan error
	for _, b := range bs {
		chs = append(chs, e.sendAll(b, level, "s", 0, perSender))
	}
	e.wait(chs...)
	for _, r := range rs {
		e.waitCount(r, "s", perSender, bs...)
	}
	for _, r := range rs {
		tl := e.checkOnce(r)
		if tl.Len() != len(bs)*perSender {
			e.t.Errorf("%s: %d distinct messages, want %d", r.Self(), tl.Len(), len(bs)*perSender)
		}
		for _, m := range r.Messages() {
			if m.Level != level {
				e.t.Errorf("%s: %v, want level %s", r.Self(), m, level)
				break
			}
		}
		if level.Ordered() {
			e.checkFIFO(r, false)
		}
	}
	e.sameViews(rs...)
	if level.Total() {
		e.sameStreams(rs...)
	}
}

// testAgreedViewChange checks that views fall at the same point of the
// Agreed stream at every member: d joins and c leaves while a and b send.
func testAgreedViewChange(e *env) {
	t := e.t
	bs, rs := e.group("a", "b", "c")
	a, b, c := bs[0], bs[1], bs[2]
	e.requireLevel(a, bus.Agreed)
	const batch = 100
	joined, left := make(chan struct{}), make(chan struct{})
	ctx := e.life
	var errs []<-chan error
	for _, s := range []bus.Bus{a, b} {
		done := make(chan error, 1)
		errs = append(errs, done)
		e.wg.Go(func() {
			defer close(done)
			for seq := range uint64(3 * batch) {
				var gate chan struct{}
				switch seq {
				case batch:
					gate = joined
				case 2 * batch:
					gate = left
				}
				if gate != nil {
					select {
					case <-gate:
					case <-ctx.Done():
						done <- ctx.Err()
						return
					}
				}
				if err := s.Send(ctx, group, bus.Agreed, Payload("s", seq, 0)); err != nil {
					done <- fmt.Errorf("%s: Send #%d: %w", s.Self(), seq, err)
					return
				}
			}
		})
	}
	cDone := e.sendAll(c, bus.Agreed, "c", 0, batch)

	for _, r := range rs {
		r.Wait(t, "messages flowing", func(evs []bus.Event) bool { return count(evs, a.Self(), "s") > batch/2 })
	}
	d := e.member("d")
	rd := e.join(d, group)
	e.settle([]bus.Bus{a, b, c, d}, []*Recorder{rs[0], rs[1], rs[2], rd})
	close(joined)

	e.wait(cDone)
	for _, r := range rs {
		r.Wait(t, "messages flowing", func(evs []bus.Event) bool { return count(evs, a.Self(), "s") > 3*batch/2 })
	}
	if err := rs[2].Group().Leave(ctx); err != nil {
		t.Fatalf("c: Leave: %v", err)
	}
	e.settle([]bus.Bus{a, b, d}, []*Recorder{rs[0], rs[1], rd})
	close(left)

	e.wait(errs...)
	for _, r := range []*Recorder{rs[0], rs[1], rd} {
		e.waitCount(r, "s", 1, a, b)
		r.Wait(t, "the last messages", func(evs []bus.Event) bool {
			return has(evs, a.Self(), "s", 3*batch-1) && has(evs, b.Self(), "s", 3*batch-1)
		})
	}
	e.checkFIFO(rs[0], false)
	e.checkFIFO(rs[1], false)
	e.checkFIFO(rs[2], false)
	e.checkFIFO(rd, true)
	tl := e.checkOnce(rd)
	for _, s := range []bus.Bus{a, b} {
		if missing := tl.Missing(s.Self(), "s", 3*batch); len(missing) > 0 && missing[len(missing)-1] >= batch {
			t.Errorf("d misses messages of %s sent after it joined: %v", s.Self(), missing)
		}
	}
	for _, r := range rs[:2] {
		if n := count(r.Events(), c.Self(), "c"); n != batch {
			t.Errorf("%s received %d of c's %d messages", r.Self(), n, batch)
		}
	}
	e.sameStreams(rs[0], rs[1], rs[2], rd)
}
