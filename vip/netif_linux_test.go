//go:build linux

package vip

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/vip/netlab"
)

func labVIFs(ips ...string) []VIF {
	var out []VIF
	for _, s := range ips {
		out = append(out, VIF{Addrs: []Address{{Dev: "eth0", IP: netip.MustParseAddr(s)}}})
	}
	return out
}

var fastCfg = Config{AnnounceInterval: 200 * time.Millisecond, Balance: Balance{Interval: 200 * time.Millisecond}}

func onlyOwner(t testing.TB, l *netlab.Lab, ip netip.Addr) string {
	t.Helper()
	var o []string
	eventually(t, 5*time.Second, func() bool { o = l.Owners(ip); return len(o) == 1 }, "%s owned by exactly one host (now %v)", ip, &o)
	return o[0]
}

func TestNetlinkFailoverIPv4(t *testing.T) {
	leakcheck.Check(t)
	l := netlab.New(t, "client", "a", "b", "c")
	vip := netip.MustParseAddr("198.18.0.110")
	vifs := labVIFs("198.18.0.110", "198.18.0.111", "198.18.0.112")
	hub := inproc.New(inproc.Config{})
	t.Cleanup(func() { hub.Close() })
	nodes := map[string]*labNode{}
	for _, h := range []string{"a", "b", "c"} {
		nodes[h] = startLabNode(t, l, hub, h, vifs, fastCfg, NetlinkConfig{})
	}
	// Cold start: each address on exactly one host, one per host.
	before := map[netip.Addr]string{}
	eventually(t, 5*time.Second, func() bool {
		seen := map[string]bool{}
		for _, v := range vifs {
			o := l.Owners(v.Addrs[0].IP)
			if len(o) != 1 {
				return false
			}
			before[v.Addrs[0].IP] = o[0]
			seen[o[0]] = true
		}
		return len(seen) == 3
	}, "balanced: one interface per host")

	owner := onlyOwner(t, l, vip)
	watch := l.WatchNeigh("client")
	l.Poke("client", vip)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := watch.WaitMAC(ctx, vip, l.Hosts[owner].MAC)
	require.NoError(t, err, "client resolves the VIP to its owner")

	// Hard failure: the owner's port goes down and the bus excludes it.
	fault := time.Now()
	l.Detach(owner)
	hub.Crash(nodes[owner].bus)
	var next string
	eventually(t, 5*time.Second, func() bool {
		for _, h := range []string{"a", "b", "c"} {
			if h != owner && l.HasAddr(h, vip) {
				next = h
				return true
			}
		}
		return false
	}, "a survivor takes %s", vip)
	at, err := watch.WaitMAC(ctx, vip, l.Hosts[next].MAC)
	require.NoError(t, err, "the client's entry follows the VIP")
	t.Logf("failover (decision + announcement after detection): %v", at.Sub(fault))
	for ip, o := range before {
		if o != owner {
			assert.Equal(t, []string{o}, l.Owners(ip), "%s moved though its owner lives", ip)
		}
	}
}

func TestNetlinkGracefulDrainAndRebalance(t *testing.T) {
	leakcheck.Check(t)
	l := netlab.New(t, "client", "a", "b")
	vip := netip.MustParseAddr("198.18.0.120")
	vifs := labVIFs("198.18.0.120", "198.18.0.121")
	hub := inproc.New(inproc.Config{})
	t.Cleanup(func() { hub.Close() })
	a := startLabNode(t, l, hub, "a", vifs, fastCfg, NetlinkConfig{})
	eventually(t, 5*time.Second, func() bool { return l.HasAddr("a", vip) && l.HasAddr("a", vifs[1].Addrs[0].IP) }, "a takes both")
	// b joins: the leader gives it one interface.
	b := startLabNode(t, l, hub, "b", vifs, fastCfg, NetlinkConfig{})
	eventually(t, 5*time.Second, func() bool { return b.m.Stats().Held == 1 && a.m.Stats().Held == 1 }, "rebalanced")
	owner := onlyOwner(t, l, vip)
	other := map[string]string{"a": "b", "b": "a"}[owner]
	nodes := map[string]*labNode{"a": a, "b": b}

	watch := l.WatchNeigh("client")
	l.Poke("client", vip)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := watch.WaitMAC(ctx, vip, l.Hosts[owner].MAC)
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, nodes[owner].m.Shutdown(ctx))
	handover := time.Since(start)
	assert.True(t, l.HasAddr(other, vip), "the receiver holds the VIP when Shutdown returns")
	assert.False(t, l.HasAddr(owner, vip), "the giver released it")
	at, err := watch.WaitMAC(ctx, vip, l.Hosts[other].MAC)
	require.NoError(t, err)
	t.Logf("graceful hand-over: Shutdown %v, client updated after %v", handover, at.Sub(start))
}

func TestNetlinkPreferAndReadd(t *testing.T) {
	leakcheck.Check(t)
	l := netlab.New(t, "a", "b")
	vifs := labVIFs("198.18.0.130", "198.18.0.131")
	hub := inproc.New(inproc.Config{})
	t.Cleanup(func() { hub.Close() })
	cfgB := fastCfg
	cfgB.Prefer = []string{vifs[0].normalize().Name, vifs[1].normalize().Name}
	startLabNode(t, l, hub, "a", vifs, fastCfg, NetlinkConfig{})
	b := startLabNode(t, l, hub, "b", vifs, cfgB, NetlinkConfig{})
	ip := vifs[0].Addrs[0].IP
	eventually(t, 5*time.Second, func() bool {
		return slices.Equal(l.Owners(ip), []string{"b"}) && slices.Equal(l.Owners(vifs[1].Addrs[0].IP), []string{"b"})
	}, "b gets the interfaces it prefers")

	// Someone removes the address behind the manager's back.
	h := l.Hosts["b"]
	link, err := h.H.LinkByName("eth0")
	require.NoError(t, err)
	require.NoError(t, h.H.AddrDel(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}}))
	eventually(t, 5*time.Second, func() bool { return b.be.Stats().Readded >= 1 && l.HasAddr("b", ip) }, "address added again")
}

func TestNetlinkIPv6Failover(t *testing.T) {
	leakcheck.Check(t)
	l := netlab.New(t, "client", "a", "b")
	vip := netip.MustParseAddr("2001:2::100")
	vifs := labVIFs("2001:2::100")
	hub := inproc.New(inproc.Config{})
	t.Cleanup(func() { hub.Close() })
	nodes := map[string]*labNode{
		"a": startLabNode(t, l, hub, "a", vifs, fastCfg, NetlinkConfig{}),
		"b": startLabNode(t, l, hub, "b", vifs, fastCfg, NetlinkConfig{}),
	}
	owner := onlyOwner(t, l, vip)
	other := map[string]string{"a": "b", "b": "a"}[owner]
	watch := l.WatchNeigh("client")
	l.Poke("client", vip)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := watch.WaitMAC(ctx, vip, l.Hosts[owner].MAC)
	require.NoError(t, err, "client resolves the IPv6 VIP")
	fault := time.Now()
	l.Detach(owner)
	hub.Crash(nodes[owner].bus)
	at, err := watch.WaitMAC(ctx, vip, l.Hosts[other].MAC)
	require.NoError(t, err, "an unsolicited neighbour advertisement moves the client's entry")
	t.Logf("IPv6 failover after detection: %v", at.Sub(fault))
	eventually(t, 2*time.Second, func() bool { return nodes[other].be.Stats().NAs > 0 }, "neighbour advertisements counted")
}

func TestNetlinkLeftoversAndLifetime(t *testing.T) {
	leakcheck.Check(t)
	l := netlab.New(t, "a")
	ip := netip.MustParseAddr("198.18.0.140")
	vifs := labVIFs(ip.String())
	netlab.IP(t, "-n", l.Prefix+"-a", "addr", "add", ip.String()+"/32", "dev", "eth0")
	require.True(t, l.HasAddr("a", ip))
	var be *Netlink
	require.NoError(t, l.In("a", func() (err error) {
		be, err = NewNetlink(vifs, NetlinkConfig{Lifetime: 2 * time.Second, Logger: discard()})
		return err
	}))
	assert.False(t, l.HasAddr("a", ip), "leftover removed at start")
	assert.Equal(t, uint64(1), be.Stats().Cleaned)

	require.NoError(t, be.Acquire(t.Context(), vifs[0]))
	assert.True(t, l.HasAddr("a", ip))
	// Refreshed, it outlives its lifetime.
	eventually(t, 5*time.Second, func() bool { return be.Stats().Refreshed >= 3 }, "refreshes")
	assert.True(t, l.HasAddr("a", ip))
	// Without refreshes (the process died), the kernel removes it.
	require.NoError(t, be.Close())
	eventually(t, 6*time.Second, func() bool { return !l.HasAddr("a", ip) }, "address expires")
	assert.Positive(t, be.Stats().ARPs)
}

func TestNetlinkNotifyTargets(t *testing.T) {
	leakcheck.Check(t)
	l := netlab.New(t, "client", "a")
	vip := netip.MustParseAddr("198.18.0.150")
	vifs := labVIFs(vip.String())
	hub := inproc.New(inproc.Config{})
	t.Cleanup(func() { hub.Close() })
	watch := l.WatchNeigh("client")
	// The client never talked to the VIP: a gratuitous ARP would not
	// create its entry, a direct announcement (Notify) does.
	client := l.Hosts["client"].IP4
	n := startLabNode(t, l, hub, "a", vifs, fastCfg, NetlinkConfig{
		Notify: []NotifyTarget{{Dev: "eth0", Prefix: netip.PrefixFrom(client, 30).Masked(), Throttle: 100}},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := watch.WaitMAC(ctx, vip, l.Hosts["a"].MAC)
	require.NoError(t, err, "the notified client learns the VIP")
	eventually(t, 2*time.Second, func() bool { return n.be.Stats().Notified >= 2 }, "both hosts of the /30 notified")
}
