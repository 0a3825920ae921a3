package cluster

import (
	"fmt"
	"path"
	"testing"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
)

// network adapts cluster members on 127.0.0.x to bustest.Network: every
// member joins the first one started.
type network struct {
	t    testing.TB
	seed string
	n    int
}

func (n *network) NewMember(t testing.TB, name string) bus.Bus {
	t.Helper()
	cfg := testConfig(n.n)
	// The Backpressure case stops reading for longer than SlowTimeout and
	// expects everything once it reads again: no exclusion here.
	cfg.SlowTimeout = -1
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
	return b
}

// Crash stops b like a killed process: the others detect it.
func (n *network) Crash(t testing.TB, b bus.Bus) { b.(*Bus).crash() }

// Partition and Heal: this network cannot cut memberlist and the data
// links between sides yet (the root-only tests in nft_test.go partition
// with nftables); their cases skip.
func (n *network) Partition(t testing.TB, sides ...[]bus.Bus) {
	t.Skip("cluster: the loopback test network cannot partition members")
}

func (n *network) Heal(t testing.TB) {}

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
	bustest.Run(t, func(t *testing.T) bustest.Network { return &network{t: t} })
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
		n := &network{t: t}
		for i := range 2 {
			n.NewMember(t, fmt.Sprintf("extra%d", i))
		}
		return n
	})
}
