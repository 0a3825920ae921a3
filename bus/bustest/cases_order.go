package bustest

import (
	"fmt"

	"github.com/peerscale/peerscale/bus"
)

// perSender is how many messages each sender sends in the ordering cases.
const perSender = 200

// testConcurrentSenders has three members send at level at once, each
// from two goroutines (tags "s" and "t"), and checks what the level
// promises at every member: exactly once for every level, per-sender order
// (of each goroutine's messages) from FIFO on, one identical stream from
// Causal on.
func testConcurrentSenders(e *env, level bus.Level) {
	bs, rs := e.group("a", "b", "c")
	e.requireLevel(bs[0], level)
	tallies := make([]*Tally, len(rs))
	for i, r := range rs {
		tallies[i] = e.checkOnce(r)
		if level.Ordered() {
			e.checkFIFO(r, false)
		}
	}
	tags := []string{"s", "t"}
	var chs []<-chan error
	for _, b := range bs {
		for _, tag := range tags {
			chs = append(chs, e.sendAll(b, level, tag, 0, perSender))
		}
	}
	e.wait(chs...)
	for _, r := range rs {
		for _, tag := range tags {
			e.waitCount(r, tag, perSender, bs...)
		}
	}
	for i, r := range rs {
		if want := len(bs) * len(tags) * perSender; tallies[i].Len() != want {
			e.t.Errorf("%s: %d distinct messages, want %d", r.Self(), tallies[i].Len(), want)
		}
		for _, m := range r.Messages() {
			if m.Level != level {
				e.t.Errorf("%s: %v, want level %s", r.Self(), m, level)
				break
			}
		}
	}
	e.sameViews(rs...)
	if level.Total() {
		e.sameStreams(rs...)
	}
}

// testAgreedViewChange checks that views fall at the same point of the
// Agreed stream at every member: d joins and then c leaves while a, b and
// c send without pause.
func testAgreedViewChange(e *env) {
	t := e.t
	bs, rs := e.group("a", "b", "c")
	a, b, c := bs[0], bs[1], bs[2]
	e.requireLevel(a, bus.Agreed)
	for _, r := range rs {
		e.checkFIFO(r, false)
		e.checkOnce(r)
	}
	stop, stopC := make(chan struct{}), make(chan struct{})
	type result struct {
		sent uint64
		err  error
	}
	// flood sends until stop, keeping at most window messages of its own
	// undelivered to itself, so that messages flow for as long as the
	// case needs without running ahead of delivery.
	const window = 16
	flood := func(s bus.Bus, self *Recorder, tag string, stop <-chan struct{}) <-chan result {
		done := make(chan result, 1)
		e.wg.Go(func() {
			var seq uint64
			var sc scanner
			for {
				select {
				case <-stop:
					done <- result{sent: seq}
					return
				default:
				}
				if seq >= window {
					err := self.wait(Timeout, func(evs []bus.Event) bool {
						sc.update(evs)
						return sc.has(s.Self(), tag, seq-window)
					})
					if err != nil {
						done <- result{seq, fmt.Errorf("%s: waiting for own message #%d: %w", s.Self(), seq-window, err)}
						return
					}
				}
				if err := s.Send(e.life, group, bus.Agreed, Payload(tag, seq, 0)); err != nil {
					done <- result{seq, fmt.Errorf("%s: Send #%d: %w", s.Self(), seq, err)}
					return
				}
				seq++
			}
		})
		return done
	}
	// progress waits until r has n more messages from a than now.
	progress := func(r *Recorder, n int) {
		t.Helper()
		base := count(r.Events(), a.Self(), "s")
		var sc scanner
		r.Wait(t, fmt.Sprintf("%d more messages from a", n), func(evs []bus.Event) bool {
			sc.update(evs)
			return sc.count(a.Self(), "s") >= base+n
		})
	}
	flows := []<-chan result{flood(a, rs[0], "s", stop), flood(b, rs[1], "s", stop)}
	cFlow := flood(c, rs[2], "c", stopC) // the floods end with the case at the latest
	progress(rs[0], 50)

	d := e.member("d")
	rd := e.join(d, group)
	e.checkFIFO(rd, true)
	e.checkOnce(rd)
	rd.WaitView(t, 0, "the first view", func(*bus.View) bool { return true })
	progress(rd, 50)
	rs[2].WaitMembers(t, a.Self(), b.Self(), c.Self(), d.Self()) // c's stream overlaps d's

	close(stopC)
	cRes := <-cFlow
	if cRes.err != nil {
		t.Fatal(cRes.err)
	}
	if err := rs[2].Group().Leave(e.life); err != nil {
		t.Fatalf("c: Leave: %v", err)
	}
	rs[0].WaitMembers(t, a.Self(), b.Self(), d.Self())
	progress(rs[0], 50)
	close(stop)
	last := map[bus.MemberID]uint64{}
	for i, ch := range flows {
		res := <-ch
		if res.err != nil {
			t.Fatal(res.err)
		}
		last[bs[i].Self()] = res.sent - 1
	}
	for _, r := range []*Recorder{rs[0], rs[1], rd} {
		e.waitHas(r, a, "s", last[a.Self()])
		e.waitHas(r, b, "s", last[b.Self()])
	}
	for _, r := range rs[:2] {
		if n := count(r.Events(), c.Self(), "c"); uint64(n) != cRes.sent {
			t.Errorf("%s received %d of c's %d messages", r.Self(), n, cRes.sent)
		}
	}
	e.sameStreams(rs[0], rs[1], rs[2], rd)
}
