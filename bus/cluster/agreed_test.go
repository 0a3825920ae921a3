package cluster

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// joinRecorded joins every member to g and records its stream with the
// bustest checkers (per-sender order, exactly once), once every member
// sees all of them.
func joinRecorded(t *testing.T, bs []*Bus) ([]*bustest.Recorder, []*bustest.Tally) {
	t.Helper()
	rs := make([]*bustest.Recorder, len(bs))
	ts := make([]*bustest.Tally, len(bs))
	var ids []bus.MemberID
	for i, b := range bs {
		g, err := b.Join(ctxT(t, 20*time.Second), "g")
		require.NoError(t, err)
		ids = append(ids, b.Self())
		rs[i] = bustest.Record(t, b.Self(), g)
		f := &bustest.FIFO{LateStart: true}
		rs[i].AddCheck(bustest.CheckMessages(f.Check))
		ts[i] = &bustest.Tally{}
		rs[i].AddCheck(bustest.CheckMessages(ts[i].Add))
	}
	for _, r := range rs {
		r.WaitMembers(t, ids...)
	}
	return rs, ts
}

// flood sends Agreed messages tagged tag from b until stop is closed or
// Send fails; it returns how many were accepted.
func flood(wg *sync.WaitGroup, b *Bus, tag string, stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	wg.Go(func() {
		var seq uint64
		defer func() { out <- seq }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := b.Send(ctx, "g", bus.Agreed, bustest.Payload(tag, seq, 100))
			cancel()
			if err != nil {
				return
			}
			seq++
			if seq%64 == 0 {
				time.Sleep(time.Millisecond) // about 3 × 20k msgs/s at most
			}
		}
	})
	return out
}

// sameOrder checks that the chains of the recorders agree from the first
// view they share, and that each pair shares one.
func sameOrder(t *testing.T, rs []*bustest.Recorder) {
	t.Helper()
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			n, err := bustest.CompareChains(rs[i].Chain(), rs[j].Chain())
			assert.NoError(t, err, "%s and %s", rs[i].Self(), rs[j].Self())
			assert.Positive(t, n, "%s and %s share no view", rs[i].Self(), rs[j].Self())
		}
	}
}

// TestAgreedCoordinatorCrash kills the coordinator (the sequencer) while
// three members and itself send Agreed messages: the survivors install a
// view without it, deliver the same sequence (hash chains) with every
// message of the surviving senders exactly once and in order, and go on.
func TestAgreedCoordinatorCrash(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 4, nil)
	rs, tallies := joinRecorded(t, bs)
	require.Equal(t, bs[0].Self(), bs[1].Stats().Coordinator)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	sent := make([]<-chan uint64, len(bs))
	tags := []string{"c", "s1", "s2", "s3"}
	for i, b := range bs {
		sent[i] = flood(&wg, b, tags[i], stop)
	}
	rs[1].Wait(t, "traffic from every sender", func(evs []bus.Event) bool {
		return len(evs) > 2000
	})
	start := time.Now()
	bs[0].crash()
	survivors := []bus.MemberID{bs[1].Self(), bs[2].Self(), bs[3].Self()}
	for _, r := range rs[1:] {
		r.WaitMembers(t, survivors...)
	}
	t.Logf("new view at every survivor %v after the crash", time.Since(start))
	// Delivery resumes: more messages from every surviving sender.
	base := tallies[1].Count(bs[1].Self(), "s1")
	rs[1].Wait(t, "messages after the new view", func([]bus.Event) bool {
		return tallies[1].Count(bs[1].Self(), "s1") > base+100
	})
	close(stop)
	wg.Wait()
	for i := 1; i < len(bs); i++ {
		n := <-sent[i]
		for j, r := range rs[1:] {
			var tl = tallies[j+1]
			r.Wait(t, "every message of "+tags[i], func([]bus.Event) bool {
				return uint64(tl.Count(bs[i].Self(), tags[i])) == n
			})
		}
	}
	<-sent[0]
	sameOrder(t, rs[1:])
	for _, r := range rs[1:] {
		assert.NoError(t, r.Violation())
	}
}

// TestAgreedSenderCrash kills a member that is not the coordinator while
// it sends: the others deliver the same sequence, including every
// message of the crashed member that any of them delivered.
func TestAgreedSenderCrash(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 3, nil)
	rs, _ := joinRecorded(t, bs)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, b := range bs {
		flood(&wg, b, []string{"a", "b", "c"}[i], stop)
	}
	rs[0].Wait(t, "traffic", func(evs []bus.Event) bool { return len(evs) > 1000 })
	bs[2].crash()
	for _, r := range rs[:2] {
		r.WaitMembers(t, bs[0].Self(), bs[1].Self())
	}
	close(stop)
	wg.Wait()
	sameOrder(t, rs[:2])
	last := func(r *bustest.Recorder) int {
		n := 0
		for _, m := range r.Messages() {
			if m.Sender == bs[2].Self() {
				n++
			}
		}
		return n
	}
	assert.Equal(t, last(rs[0]), last(rs[1]), "messages of the crashed member")
}

// TestCausalIsAgreed checks that Causal messages travel in the Agreed
// order and keep their level.
func TestCausalIsAgreed(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 2, nil)
	rs, _ := joinRecorded(t, bs)
	for i := range uint64(20) {
		require.NoError(t, bs[i%2].Send(ctxT(t, 10*time.Second), "g", bus.Causal, bustest.Payload("x", i/2, 0)))
	}
	for _, r := range rs {
		r.Wait(t, "20 messages", func(evs []bus.Event) bool { return len(slices.DeleteFunc(slices.Clone(evs), isView)) == 20 })
		for _, m := range r.Messages() {
			assert.Equal(t, bus.Causal, m.Level)
		}
	}
	sameOrder(t, rs)
	err := bs[0].Send(ctxT(t, time.Second), "g", bus.Safe, nil)
	assert.True(t, errors.Is(err, bus.ErrUnsupportedLevel), "Safe: %v", err)
}

func isView(ev bus.Event) bool {
	_, ok := ev.(*bus.View)
	return ok
}

// cutConn fails every read and write while cut is set: the member's data
// links break and cannot reconnect, while memberlist stays healthy.
type cutConn struct {
	net.Conn
	cut *atomic.Bool
}

var errCut = errors.New("test: link cut")

func (c cutConn) Read(p []byte) (int, error) {
	if c.cut.Load() {
		c.Conn.Close()
		return 0, errCut
	}
	return c.Conn.Read(p)
}

func (c cutConn) Write(p []byte) (int, error) {
	if c.cut.Load() {
		c.Conn.Close()
		return 0, errCut
	}
	return c.Conn.Write(p)
}

// TestLinkTimeoutExcludes cuts one member's data links while memberlist
// reports it alive: after LinkTimeout the others install a view without
// it and go on with one order; once its links work again it is back in
// their view.
func TestLinkTimeoutExcludes(t *testing.T) {
	leakcheck.Check(t)
	var cut atomic.Bool
	const timeout = 2 * time.Second
	bs := startN(t, 3, func(i int, c *Config) {
		c.LinkTimeout = timeout
		if i == 2 {
			c.wrapConn = func(nc net.Conn) net.Conn { return cutConn{nc, &cut} }
		}
	})
	rs, _ := joinRecorded(t, bs[:2])
	g2, err := bs[2].Join(ctxT(t, 20*time.Second), "g")
	require.NoError(t, err)
	go func() { // the cut member reads everything, unchecked
		for {
			if _, err := g2.Recv(t.Context()); err != nil {
				return
			}
		}
	}()
	all := []bus.MemberID{bs[0].Self(), bs[1].Self(), bs[2].Self()}
	for _, r := range rs {
		r.WaitMembers(t, all...)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	flood(&wg, bs[0], "a", stop)
	flood(&wg, bs[1], "b", stop)
	rs[1].Wait(t, "traffic", func(evs []bus.Event) bool { return len(evs) > 200 })
	start := time.Now()
	cut.Store(true)
	for _, r := range rs {
		r.WaitMembers(t, bs[0].Self(), bs[1].Self())
	}
	took := time.Since(start)
	t.Logf("excluded %v after the cut (LinkTimeout %v)", took, timeout)
	assert.GreaterOrEqual(t, took, timeout-200*time.Millisecond) // a broken link is noticed up to one tick early
	n := rs[1].Len()
	rs[1].Wait(t, "traffic without the cut member", func(evs []bus.Event) bool { return len(evs) > n+200 })
	for _, b := range bs {
		assert.Equal(t, 3, b.Stats().Members, "memberlist still sees everyone")
	}

	cut.Store(false)
	for _, r := range rs {
		r.WaitMembers(t, all...)
	}
	close(stop)
	wg.Wait()
	sameOrder(t, rs)
}

// TestSlowTimeoutExcludes has a member stop reading: Sends block on it
// until SlowTimeout, then it is excluded and they go on; once it reads
// again it comes back.
func TestSlowTimeoutExcludes(t *testing.T) {
	leakcheck.Check(t)
	const timeout = time.Second
	bs := startN(t, 3, func(i int, c *Config) {
		c.SlowTimeout = timeout
		c.QueueLen = 64
	})
	gs := make([]bus.Group, 3)
	for i, b := range bs {
		g, err := b.Join(ctxT(t, 20*time.Second), "g")
		require.NoError(t, err)
		gs[i] = g
	}
	rs := []*bustest.Recorder{bustest.Record(t, bs[0].Self(), gs[0]), bustest.Record(t, bs[1].Self(), gs[1])}
	all := []bus.MemberID{bs[0].Self(), bs[1].Self(), bs[2].Self()}
	for _, r := range rs {
		r.WaitMembers(t, all...)
	}
	// gs[2] is not read: after 64 messages Sends wait for its credit.
	start := time.Now()
	for i := range uint64(400) {
		require.NoError(t, bs[0].Send(ctxT(t, 20*time.Second), "g", bus.FIFO, bustest.Payload("f", i, 0)))
	}
	took := time.Since(start)
	t.Logf("400 Sends took %v with a member not reading (SlowTimeout %v)", took, timeout)
	assert.GreaterOrEqual(t, took, timeout)
	for _, r := range rs {
		r.WaitMembers(t, bs[0].Self(), bs[1].Self())
	}
	r2 := bustest.Record(t, bs[2].Self(), gs[2])
	for _, r := range append(rs, r2) {
		r.WaitMembers(t, all...)
	}
}
