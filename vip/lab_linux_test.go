//go:build linux

package vip

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/vip/netlab"
)

// node runs a Manager with the Linux backend in a lab host.
type labNode struct {
	host string
	bus  *inproc.Bus
	be   *Netlink
	m    *Manager
}

func startLabNode(t testing.TB, l *netlab.Lab, hub *inproc.Hub, host string, vifs []VIF, cfg Config, ncfg NetlinkConfig) *labNode {
	t.Helper()
	n := &labNode{host: host}
	var err error
	n.bus, err = hub.NewMember(host)
	require.NoError(t, err)
	g, err := n.bus.Join(context.Background(), "vip")
	require.NoError(t, err)
	if ncfg.Logger == nil {
		ncfg.Logger = discard()
	}
	require.NoError(t, l.In(host, func() error {
		n.be, err = NewNetlink(vifs, ncfg)
		return err
	}))
	if cfg.Logger == nil {
		cfg.Logger = discard()
	}
	if cfg.Mature == 0 {
		cfg.Mature = -1
	}
	n.m, err = New(g, vifs, n.be, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = n.m.Close()
		_ = n.be.Close()
	})
	return n
}

// eventually polls cond every 10 ms until it holds or within passes.
func eventually(t testing.TB, within time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within %v: "+msg, append([]any{within}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
