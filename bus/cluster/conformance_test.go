package cluster

import (
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
)

// network adapts cluster members on 127.0.0.x to bustest.Network: every
// member joins the first one started. Members are split by address
// (netSplit: memberlist's packets and streams and the data connections
// fail across sides) for the Partition and Heal cases, which also use a
// quicker detector so that each side settles well within bustest.Timeout.
type network struct {
	t       testing.TB
	seed    string
	n       int
	split   netSplit
	quick   bool
	members []*Bus
}

func newNetwork(t *testing.T) *network {
	switch path.Base(t.Name()) {
	case "Partition", "Heal":
		return &network{t: t, quick: true}
	}
	return &network{t: t}
}

func (n *network) NewMember(t testing.TB, name string) bus.Bus {
	t.Helper()
	cfg := testConfig(n.n)
	// The Backpressure case stops reading for longer than SlowTimeout and
	// expects everything once it reads again: no exclusion here.
	cfg.SlowTimeout = -1
	if n.quick {
		cfg.ProbeInterval = 500 * time.Millisecond
		cfg.ProbeTimeout = 400 * time.Millisecond
		cfg.SuspicionMult = 3
		cfg.RejoinInterval = 500 * time.Millisecond
		cfg.LinkTimeout = 2 * time.Second
		// Accepted connections come from 127.0.0.1: no member may have
		// that address, or the split would take every one for the far side.
		cfg.BindAddr = fmt.Sprintf("127.0.0.%d", 20+n.n)
		splitBy(t, &n.split, &cfg)
	}
	n.n++
	if n.seed != "" {
		cfg.Seeds = []string{n.seed}
	}
	b, err := New(name, cfg)
	if err != nil {
		t.Fatalf("NewMember(%q): %v", name, err)
	}
	t.Cleanup(func() { b.Close() })
	if n.seed == "" {
		n.seed = b.GossipAddr()
	}
	n.members = append(n.members, b)
	return b
}

// Crash stops b like a killed process: the others detect it.
func (n *network) Crash(t testing.TB, b bus.Bus) { b.(*Bus).crash() }

// Partition cuts memberlist and the data links between sides by address;
// members on no side (TestConformanceFive's extra members) stay with the
// first.
func (n *network) Partition(t testing.TB, sides ...[]bus.Bus) {
	for _, m := range n.members {
		n.split.place(m.cfg.BindAddr, 0)
	}
	for i, side := range sides {
		for _, b := range side {
			n.split.place(b.(*Bus).cfg.BindAddr, i)
		}
	}
	n.split.on.Store(true)
}

// Heal restores every path.
func (n *network) Heal(t testing.TB) { n.split.on.Store(false) }

// Supports leaves out Safe.
func (n *network) Supports(l bus.Level) bool { return l != bus.Safe }

var (
	_ bustest.Network = (*network)(nil)
	_ bustest.Faults  = (*network)(nil)
	_ bustest.Levels  = (*network)(nil)
)

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance runs real memberlist timers")
	}
	bustest.Run(t, func(t *testing.T) bustest.Network { return newNetwork(t) })
}

// flowCases do not depend on the number of members: TestConformanceFive
// leaves them to TestConformance.
var flowCases = map[string]bool{
	"Backpressure": true, "UnreliableNeverBlocks": true, "GroupsIndependent": true, "MessageSize": true,
}

// TestConformanceFive runs the suite in a cluster of five or more: two
// members that join no group are started first (the suite itself starts
// up to four), so views and failures involve non-members too.
func TestConformanceFive(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance runs real memberlist timers")
	}
	bustest.Run(t, func(t *testing.T) bustest.Network {
		if flowCases[path.Base(t.Name())] {
			t.Skip("member count does not matter here; run by TestConformance")
		}
		n := newNetwork(t)
		for i := range 2 {
			n.NewMember(t, fmt.Sprintf("extra%d", i))
		}
		return n
	})
}
