package cluster

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// netSplit partitions members by IP address: memberlist packets and
// streams and data connections between two sides fail while it is on.
type netSplit struct {
	on   atomic.Bool
	mu   sync.Mutex
	side map[string]int // IP -> side
}

func (s *netSplit) across(a, b string) bool {
	if !s.on.Load() {
		return false
	}
	ha, _, err1 := net.SplitHostPort(a)
	hb, _, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sa, oka := s.side[ha]
	sb, okb := s.side[hb]
	return oka && okb && sa != sb
}

var errSplit = errors.New("test: partitioned")

// splitConn fails reads and writes across the split. Connections leave
// from 127.0.0.1 whatever the member's address: self is the owner's, and
// only the dialing side (which knows the peer's address) cuts; the other
// sees the connection close.
type splitConn struct {
	net.Conn
	s    *netSplit
	self string
}

func (c splitConn) cut() bool { return c.s.across(c.self, c.RemoteAddr().String()) }

func (c splitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.cut() {
		c.Conn.Close()
		return 0, errSplit
	}
	return n, err
}

func (c splitConn) Write(p []byte) (int, error) {
	if c.cut() {
		c.Conn.Close()
		return 0, errSplit
	}
	return c.Conn.Write(p)
}

// splitTransport is memberlist's transport with the split applied.
type splitTransport struct {
	*memberlist.NetTransport
	s    *netSplit
	self string
}

func (t *splitTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.s.across(t.self, addr) {
		return time.Now(), nil // lost, as UDP would be
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *splitTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, addr.Addr)
}

func (t *splitTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if t.s.across(t.self, addr) {
		return nil, errSplit
	}
	c, err := t.NetTransport.DialTimeout(addr, d)
	if err != nil {
		return nil, err
	}
	return splitConn{c, t.s, t.self}, nil
}

func (t *splitTransport) DialAddressTimeout(addr memberlist.Address, d time.Duration) (net.Conn, error) {
	return t.DialTimeout(addr.Addr, d)
}

// withSplit puts member i, at 127.0.0.(20+i), on the given side of s.
func withSplit(t testing.TB, s *netSplit, c *Config, i, side int) {
	c.BindAddr = fmt.Sprintf("127.0.0.%d", 20+i)
	s.place(c.BindAddr, side)
	splitBy(t, s, c)
}

// place puts the member at address addr on side.
func (s *netSplit) place(addr string, side int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.side == nil {
		s.side = make(map[string]int)
	}
	s.side[addr] = side
}

// splitBy makes the member configured by c (at c.BindAddr) subject to s:
// its memberlist transport and data connections fail across the split.
func splitBy(t testing.TB, s *netSplit, c *Config) {
	self := net.JoinHostPort(c.BindAddr, "0")
	c.wrapConn = func(nc net.Conn) net.Conn { return splitConn{nc, s, self} }
	c.Memberlist = func(mc *memberlist.Config) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mc.BindAddr},
			BindPort:  mc.BindPort,
			Logger:    mc.Logger,
		})
		require.NoError(t, err)
		mc.Transport = &splitTransport{NetTransport: nt, s: s, self: self}
	}
}

// TestPartitionHeal splits the members in two, waits until each side
// installed its own view, heals, and checks that every member ends in one
// merged view after a bounded number of views, and stays there.
func TestPartitionHeal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sides []int
	}{
		{"2|1 without the coordinator", []int{0, 0, 1}},
		{"2|2", []int{0, 0, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testPartitionHeal(t, tc.sides)
		})
	}
}

func testPartitionHeal(t *testing.T, sides []int) {
	leakcheck.Check(t)
	s := &netSplit{}
	bs := startN(t, len(sides), func(i int, c *Config) {
		c.ProbeInterval = 500 * time.Millisecond
		c.ProbeTimeout = 400 * time.Millisecond
		c.SuspicionMult = 3
		c.RejoinInterval = 500 * time.Millisecond
		c.LinkTimeout = 2 * time.Second
		withSplit(t, s, c, i, sides[i])
	})
	rs, _ := joinRecorded(t, bs)
	var all []bus.MemberID
	side := make([][]bus.MemberID, 2)
	for i, b := range bs {
		all = append(all, b.Self())
		side[sides[i]] = append(side[sides[i]], b.Self())
	}
	for _, r := range rs {
		r.WaitMembers(t, all...)
	}
	s.on.Store(true)
	for i, r := range rs {
		r.WaitMembers(t, side[sides[i]]...)
	}
	before := make([]int, len(rs))
	var sideViews []bus.ViewID // the last view of each side
	for i, r := range rs {
		before[i] = len(r.Views())
		if id := r.LastView().ID; !slices.Contains(sideViews, id) {
			sideViews = append(sideViews, id)
		}
	}
	start := time.Now()
	s.on.Store(false)
	for _, r := range rs {
		r.WaitMembers(t, all...)
	}
	took := time.Since(start)
	t.Logf("merged %v after the heal", took)
	assert.Less(t, took, 3*time.Second, "merge after the heal")
	var merged bus.ViewID
	for i, r := range rs {
		vs := r.Views()
		require.Greater(t, len(vs), before[i])
		first := vs[before[i]]
		if i == 0 {
			merged = first.ID
		}
		assert.Equal(t, merged, first.ID, "%s: merged view", bs[i].Self())
		assert.ElementsMatch(t, all, first.Members, "%s: the first view after the heal is the merged view", bs[i].Self())
		assert.ElementsMatch(t, sideViews, first.Previous, "%s: the merged view lists the last view of each side", bs[i].Self())
	}
	// Stable: no member installs anything for two seconds.
	settled := make([]int, len(rs))
	for i, r := range rs {
		settled[i] = len(r.Views())
	}
	time.Sleep(2 * time.Second)
	for i, r := range rs {
		n := len(r.Views())
		assert.Equal(t, settled[i], n, "%s: views after the merge", bs[i].Self())
		v := r.LastView()
		require.NotNil(t, v)
		assert.ElementsMatch(t, all, v.Members, "%s: last view", bs[i].Self())
		assert.NoError(t, r.Violation(), "%s", r.Self())
	}
	sameOrder(t, rs[:2]) // members that stayed together
	if len(rs) > 3 {
		sameOrder(t, rs[2:])
	}
	for i := range rs { // every member from the merged view on
		for j := i + 1; j < len(rs); j++ {
			n, err := bustest.CompareFrom(rs[i].Chain(), rs[j].Chain(), merged)
			assert.NoError(t, err, "%s and %s", rs[i].Self(), rs[j].Self())
			assert.Positive(t, n, "%s and %s from the merged view", rs[i].Self(), rs[j].Self())
		}
	}
}
