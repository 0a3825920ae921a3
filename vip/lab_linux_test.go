//go:build linux

package vip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/peerscale/peerscale/bus/inproc"
)

// requireRoot skips t without root or iproute2, or fails it when the
// environment demands these tests.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("PEERSCALE_REQUIRE_ROOT_TESTS") == "1" {
			t.Fatal("PEERSCALE_REQUIRE_ROOT_TESTS=1 but not running as root")
		}
		t.Skip("needs root to create network namespaces (set PEERSCALE_REQUIRE_ROOT_TESTS=1 to fail instead)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" || os.Getenv("PEERSCALE_REQUIRE_ROOT_TESTS") == "1" {
			t.Fatal("the ip command (Debian package iproute2) is required")
		}
		t.Skip("needs the ip command (Debian package iproute2)")
	}
}

var labSeq atomic.Uint32

// lab is a switch namespace with a bridge and one namespace per host,
// each with eth0 on the bridge: 198.18.0.<i>/24 and 2001:2::<i>/64.
type lab struct {
	t      testing.TB
	prefix string
	hosts  map[string]*labHost
}

type labHost struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
	mac  net.HardwareAddr
	ip4  netip.Addr
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

func newLab(t testing.TB, hosts ...string) *lab {
	t.Helper()
	requireRoot(t)
	l := &lab{t: t, prefix: fmt.Sprintf("vipt%d-%d", os.Getpid()%100000, labSeq.Add(1)), hosts: make(map[string]*labHost)}
	sw := l.prefix + "-sw"
	ipCmd(t, "netns", "add", sw)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", sw).Run() })
	ipCmd(t, "-n", sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
	ipCmd(t, "-n", sw, "link", "set", "br0", "up")
	for i, name := range hosts {
		nsName := l.prefix + "-" + name
		ipCmd(t, "netns", "add", nsName)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
		port := "p-" + name
		ipCmd(t, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", nsName)
		ipCmd(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		ip4 := netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})
		ipCmd(t, "-n", nsName, "link", "set", "lo", "up")
		ipCmd(t, "-n", nsName, "addr", "add", ip4.String()+"/24", "dev", "eth0")
		ipCmd(t, "-n", nsName, "addr", "add", fmt.Sprintf("2001:2::%d/64", i+1), "dev", "eth0", "nodad")
		ipCmd(t, "-n", nsName, "link", "set", "eth0", "up")
		ns, err := netns.GetFromName(nsName)
		require.NoError(t, err)
		t.Cleanup(func() { ns.Close() })
		h, err := netlink.NewHandleAt(ns)
		require.NoError(t, err)
		t.Cleanup(h.Close)
		link, err := h.LinkByName("eth0")
		require.NoError(t, err)
		l.hosts[name] = &labHost{name: name, ns: ns, h: h, mac: link.Attrs().HardwareAddr, ip4: ip4}
	}
	return l
}

// in runs f on a thread that is in host's network namespace.
func (l *lab) in(host string, f func() error) error {
	ns := l.hosts[host].ns
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = f()
		if rerr := netns.Set(orig); rerr == nil {
			runtime.UnlockOSThread()
		} // else the thread dies with the goroutine
		errc <- err
	}()
	return <-errc
}

// detach takes host's switch port down: a hard failure.
func (l *lab) detach(host string) {
	ipCmd(l.t, "-n", l.prefix+"-sw", "link", "set", "p-"+host, "down")
}

// hasAddr reports whether host has ip on eth0.
func (l *lab) hasAddr(host string, ip netip.Addr) bool {
	h := l.hosts[host]
	link, err := h.h.LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := h.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true
		}
	}
	return false
}

// owners returns the hosts that have ip.
func (l *lab) owners(ip netip.Addr) []string {
	var out []string
	for name := range l.hosts {
		if l.hasAddr(name, ip) {
			out = append(out, name)
		}
	}
	return out
}

// poke makes host resolve ip (a UDP datagram to it), creating its
// neighbour entry.
func (l *lab) poke(host string, ip netip.Addr) {
	l.t.Helper()
	require.NoError(l.t, l.in(host, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(ip, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}))
}

// neighWatch records host's neighbour-table updates, timestamped on
// arrival.
type neighWatch struct {
	mu     sync.Mutex
	cond   chan struct{}
	events []neighEvent
}

type neighEvent struct {
	at  time.Time
	ip  netip.Addr
	mac string
}

func (l *lab) watchNeigh(host string) *neighWatch {
	l.t.Helper()
	w := &neighWatch{cond: make(chan struct{}, 1)}
	ch := make(chan netlink.NeighUpdate, 1024)
	done := make(chan struct{})
	ns := l.hosts[host].ns
	require.NoError(l.t, netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{Namespace: &ns}))
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for u := range ch {
			ip, ok := netip.AddrFromSlice(u.IP)
			if !ok || len(u.HardwareAddr) == 0 {
				continue
			}
			w.mu.Lock()
			w.events = append(w.events, neighEvent{at: time.Now(), ip: ip.Unmap(), mac: u.HardwareAddr.String()})
			w.mu.Unlock()
			select {
			case w.cond <- struct{}{}:
			default:
			}
		}
	}()
	l.t.Cleanup(func() {
		close(done)
		<-finished
	})
	return w
}

// waitMAC waits until ip's entry points at mac, and returns when that
// update arrived.
func (w *neighWatch) waitMAC(ctx context.Context, ip netip.Addr, mac net.HardwareAddr) (time.Time, error) {
	for {
		w.mu.Lock()
		for i := len(w.events) - 1; i >= 0; i-- {
			e := w.events[i]
			if e.ip != ip {
				continue
			}
			if e.mac == mac.String() {
				w.mu.Unlock()
				return e.at, nil
			}
			break
		}
		w.mu.Unlock()
		select {
		case <-w.cond:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("neighbour entry of %s never pointed at %s: %w", ip, mac, ctx.Err())
		}
	}
}

// node runs a Manager with the Linux backend in a lab host.
type labNode struct {
	host string
	bus  *inproc.Bus
	be   *Netlink
	m    *Manager
}

func (l *lab) startNode(hub *inproc.Hub, host string, vifs []VIF, cfg Config, ncfg NetlinkConfig) *labNode {
	l.t.Helper()
	n := &labNode{host: host}
	var err error
	n.bus, err = hub.NewMember(host)
	require.NoError(l.t, err)
	g, err := n.bus.Join(context.Background(), "vip")
	require.NoError(l.t, err)
	if ncfg.Logger == nil {
		ncfg.Logger = discard()
	}
	require.NoError(l.t, l.in(host, func() error {
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
	require.NoError(l.t, err)
	l.t.Cleanup(func() {
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
