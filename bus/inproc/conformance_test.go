package inproc_test

import (
	"path"
	"testing"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
	"github.com/peerscale/peerscale/bus/inproc"
)

// queueLen is the hub's queue length, which bounds the backlog towards a
// member that does not read.
const queueLen = 1024

// network adapts a Hub to bustest.Network, bustest.Faults and
// bustest.Backlog.
type network struct{ hub *inproc.Hub }

func (n network) MaxBacklog() int { return queueLen }

func (n network) NewMember(t testing.TB, name string) bus.Bus {
	t.Helper()
	b, err := n.hub.NewMember(name)
	if err != nil {
		t.Fatalf("NewMember(%q): %v", name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func (n network) Crash(t testing.TB, b bus.Bus) { n.hub.Crash(b.(*inproc.Bus)) }

func (n network) Partition(t testing.TB, sides ...[]bus.Bus) {
	ps := make([][]*inproc.Bus, len(sides))
	for i, side := range sides {
		for _, b := range side {
			ps[i] = append(ps[i], b.(*inproc.Bus))
		}
	}
	n.hub.Partition(ps...)
}

func (n network) Heal(t testing.TB) { n.hub.Heal() }

var (
	_ bustest.Network = network{}
	_ bustest.Faults  = network{}
	_ bustest.Backlog = network{}
)

// knownFailures maps bustest case names to the reason they fail here.
var knownFailures = map[string]string{}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.Network {
		if reason, ok := knownFailures[path.Base(t.Name())]; ok {
			t.Skip("known failure: " + reason)
		}
		hub := inproc.New(inproc.Config{QueueLen: queueLen})
		t.Cleanup(func() { hub.Close() })
		return network{hub}
	})
}
