package cluster

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// haltConn blocks reads and writes while halted is set, like a machine
// that stopped without closing its connections.
type haltConn struct {
	net.Conn
	halted *atomic.Bool
}

func (c haltConn) Read(p []byte) (int, error) {
	for c.halted.Load() {
		time.Sleep(time.Millisecond)
	}
	return c.Conn.Read(p)
}

func (c haltConn) Write(p []byte) (int, error) {
	for c.halted.Load() {
		time.Sleep(time.Millisecond)
	}
	return c.Conn.Write(p)
}

// TestDeathCheckedOnLink cuts memberlist's traffic to one member while
// its data links work: memberlist declares it dead, the others check the
// death on the link, find it answering and keep it in the views. Once its
// links stop answering too, the death is taken.
func TestDeathCheckedOnLink(t *testing.T) {
	leakcheck.Check(t)
	s := &netSplit{}
	var halted atomic.Bool
	sides := []int{0, 0, 1}
	bs := startN(t, len(sides), func(i int, c *Config) {
		c.ProbeInterval = 300 * time.Millisecond
		c.ProbeTimeout = 250 * time.Millisecond
		c.SuspicionMult = 3
		c.RejoinInterval = time.Second
		withSplit(t, s, c, i, sides[i])
		c.wrapConn = nil // memberlist only: the data links work
		if i == 2 {
			c.wrapConn = func(nc net.Conn) net.Conn { return haltConn{nc, &halted} }
		}
	})
	t.Cleanup(func() { halted.Store(false) }) // before the members close
	rs, _ := joinRecorded(t, bs)
	views := make([]int, len(rs))
	for i, r := range rs {
		views[i] = len(r.Views())
	}

	s.on.Store(true)
	cut := time.Now()
	waitFor(t, 30*time.Second, func() bool {
		return bs[0].Stats().DeathsDoubted > 0 && bs[1].Stats().DeathsDoubted > 0 && bs[2].Stats().DeathsDoubted > 1
	}, "memberlist to declare the cut-off member dead everywhere")
	t.Logf("deaths doubted %v after the cut", time.Since(cut))
	// The links answer: no view changes while they do.
	time.Sleep(2 * time.Second)
	for i, r := range rs {
		assert.Len(t, r.Views(), views[i], "%s: views while memberlist reports deaths the links contradict", bs[i].Self())
		assert.Zero(t, bs[i].Stats().MembersDown, "%s: members down", bs[i].Self())
		assert.NoError(t, r.Violation())
	}

	// Now its links stop too: the death is taken.
	start := time.Now()
	halted.Store(true)
	for _, r := range rs[:2] {
		r.WaitMembers(t, bs[0].Self(), bs[1].Self())
	}
	took := time.Since(start)
	t.Logf("view without the halted member %v after its links stopped", took)
	require.Less(t, took, 5*time.Second)
	waitFor(t, 10*time.Second, func() bool {
		return bs[0].Stats().MembersDown == 1 && bs[1].Stats().MembersDown == 1
	}, "both others to give the halted member up")
	sameOrder(t, rs[:2])
}

// TestPeerLinkBroken cuts only the data link between two members that
// both reach the coordinator: after LinkTimeout the coordinator keeps the
// younger out, Sends between them stop waiting, and once the link works
// again it comes back in a view whose Previous lists its last view.
func TestPeerLinkBroken(t *testing.T) {
	leakcheck.Check(t)
	s := &netSplit{side: map[string]int{}}
	bs := startN(t, 3, func(i int, c *Config) {
		c.BindAddr = fmt.Sprintf("127.0.0.%d", 40+i)
		c.LinkTimeout = 1500 * time.Millisecond
		if i > 0 {
			s.side[c.BindAddr] = i // m1 and m2 on two sides; m0 on none
		}
		self := net.JoinHostPort(c.BindAddr, "0")
		c.wrapConn = func(nc net.Conn) net.Conn { return splitConn{nc, s, self} }
	})
	rs, _ := joinRecorded(t, bs)
	last2 := rs[2].LastView().ID

	s.on.Store(true)
	start := time.Now()
	// m1 sends meanwhile: its Sends must not wait for m2 for good.
	var sent atomic.Uint64
	done := make(chan error, 1)
	go func() {
		for time.Since(start) < 4*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := bs[1].Send(ctx, "g", bus.FIFO, bustest.Payload("x", sent.Load(), 50))
			cancel()
			if err != nil {
				done <- err
				return
			}
			sent.Add(1)
		}
		done <- nil
	}()
	for _, r := range rs[:2] {
		r.WaitMembers(t, bs[0].Self(), bs[1].Self())
	}
	t.Logf("m2 out %v after the cut", time.Since(start))
	require.NoError(t, <-done)
	require.Greater(t, sent.Load(), uint64(1000), "m1's Sends waited")

	mark := rs[2].Len() // m2 does not deliver the view that leaves it out
	s.on.Store(false)
	start = time.Now()
	for _, r := range rs[:2] {
		r.WaitMembers(t, bs[0].Self(), bs[1].Self(), bs[2].Self())
	}
	v, _ := rs[2].WaitView(t, mark, "the view that takes m2 back", func(v *bus.View) bool { return len(v.Members) == 3 })
	t.Logf("m2 back %v after the link healed", time.Since(start))
	assert.Contains(t, v.Previous, last2, "m2's view back lists its last view")
	for _, r := range rs {
		assert.NoError(t, r.Violation(), "%s", r.Self())
	}
	sameOrder(t, rs[:2])
	for _, r := range rs[:2] { // m2 was out meanwhile: from its view back on
		n, err := bustest.CompareFrom(r.Chain(), rs[2].Chain(), v.ID)
		assert.NoError(t, err, "%s and m2", r.Self())
		assert.Positive(t, n)
	}
}
