//go:build linux

package netlab_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/vip/netlab"
)

func TestWatchers(t *testing.T) {
	l := netlab.New(t, "client", "a")
	before := time.Now()
	addrs := l.WatchAddrs("a")
	arps := l.WatchARP("a")
	neigh := l.WatchNeigh("client")
	vip := netip.MustParseAddr("198.18.0.50")
	netlab.IP(t, "-n", l.NS("a"), "addr", "add", vip.String()+"/32", "dev", "eth0")

	// The client resolves the address: its ARP request reaches a, and
	// a's reply fills the client's neighbour table.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		l.Poke("client", vip)
		wctx, wcancel := context.WithTimeout(ctx, time.Second)
		_, err := neigh.WaitMAC(wctx, vip, l.Hosts["a"].MAC)
		wcancel()
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "the client never resolved %s", vip)
	}
	added, err := addrs.WaitAddedAfter(ctx, vip, before)
	require.NoError(t, err, "address event seen")
	assert.False(t, added.Before(before))
	_, ok := addrs.AddedAfter(vip, time.Now())
	assert.False(t, ok, "no address added after the test's own")
	client := l.Hosts["client"]
	at, err := arps.WaitFromAfter(ctx, client.IP4, client.MAC, before)
	require.NoError(t, err, "the client's ARP request reached a")
	assert.False(t, at.Before(added), "ARP request after the address was added")
	_, ok = arps.FromAfter(client.IP4, l.Hosts["a"].MAC, before)
	assert.False(t, ok, "no ARP with the client's address and a's MAC")
}
