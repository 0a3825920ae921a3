package cluster

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/require"
)

// TestRejoinSeeds starts a member whose seed is not up yet: the periodic
// re-join finds it once it starts.
func TestRejoinSeeds(t *testing.T) {
	leakcheck.Check(t)
	var port int
	for port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		l.Close()
		if err == nil {
			u.Close()
			port = p
		}
	}
	cfg := testConfig(1)
	cfg.Seeds = []string{fmt.Sprintf("127.0.0.1:%d", port)}
	cfg.RejoinInterval = 200 * time.Millisecond
	cfg.SyncTimeout = 100 * time.Millisecond
	early, err := New("early", cfg)
	require.NoError(t, err)
	defer early.Close()
	require.Equal(t, 1, early.Stats().Members)

	cfg = testConfig(0)
	cfg.GossipPort = port
	seed, err := New("seed", cfg)
	require.NoError(t, err)
	defer seed.Close()
	waitFor(t, 20*time.Second, func() bool {
		return early.Stats().Members == 2 && seed.Stats().Members == 2
	}, "the early member to re-join its seed")
	gs := joinAll(t, []*Bus{seed, early}, "g")
	require.Len(t, gs, 2)
}
