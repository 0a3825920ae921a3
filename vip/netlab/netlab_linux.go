//go:build linux

package netlab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequireRoot skips t without root or iproute2, or fails it when the
// environment demands these tests.
func RequireRoot(t testing.TB) {
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

// Lab is a switch namespace with a bridge and one namespace per host,
// each with eth0 on the bridge: 198.18.0.<i>/24 and 2001:2::<i>/64.
type Lab struct {
	t      testing.TB
	Prefix string
	Hosts  map[string]*Host
}

// Host is one namespace of a lab, with eth0 on the bridge.
type Host struct {
	Name string
	NS   netns.NsHandle
	H    *netlink.Handle
	MAC  net.HardwareAddr
	IP4  netip.Addr
}

// IP runs the ip command and fails t if it fails.
func IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// New builds a lab with the given hosts; t's cleanups remove it.
func New(t testing.TB, hosts ...string) *Lab {
	t.Helper()
	RequireRoot(t)
	l := &Lab{t: t, Prefix: fmt.Sprintf("vipt%d-%d", os.Getpid()%100000, rand.Uint32()%100000), Hosts: make(map[string]*Host)}
	sw := l.Prefix + "-sw"
	IP(t, "netns", "add", sw)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", sw).Run() })
	IP(t, "-n", sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
	IP(t, "-n", sw, "link", "set", "br0", "up")
	for i, name := range hosts {
		nsName := l.Prefix + "-" + name
		IP(t, "netns", "add", nsName)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", nsName).Run() })
		port := "p-" + name
		IP(t, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", nsName)
		IP(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		ip4 := netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})
		IP(t, "-n", nsName, "link", "set", "lo", "up")
		IP(t, "-n", nsName, "addr", "add", ip4.String()+"/24", "dev", "eth0")
		IP(t, "-n", nsName, "addr", "add", fmt.Sprintf("2001:2::%d/64", i+1), "dev", "eth0", "nodad")
		IP(t, "-n", nsName, "link", "set", "eth0", "up")
		ns, err := netns.GetFromName(nsName)
		require.NoError(t, err)
		t.Cleanup(func() { ns.Close() })
		h, err := netlink.NewHandleAt(ns)
		require.NoError(t, err)
		t.Cleanup(h.Close)
		link, err := h.LinkByName("eth0")
		require.NoError(t, err)
		l.Hosts[name] = &Host{Name: name, NS: ns, H: h, MAC: link.Attrs().HardwareAddr, IP4: ip4}
	}
	return l
}

// In runs f on a thread that is in host's network namespace.
func (l *Lab) In(host string, f func() error) error {
	ns := l.Hosts[host].NS
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

// Detach takes host's switch port down: a hard failure.
func (l *Lab) Detach(host string) {
	IP(l.t, "-n", l.Prefix+"-sw", "link", "set", "p-"+host, "down")
}

// Attach brings host's switch port back up.
func (l *Lab) Attach(host string) {
	IP(l.t, "-n", l.Prefix+"-sw", "link", "set", "p-"+host, "up")
}

// NS returns the name of host's namespace, for "ip netns exec".
func (l *Lab) NS(host string) string { return l.Prefix + "-" + host }

// HasAddr reports whether host has ip on eth0.
func (l *Lab) HasAddr(host string, ip netip.Addr) bool {
	h := l.Hosts[host]
	link, err := h.H.LinkByName("eth0")
	if err != nil {
		return false
	}
	addrs, err := h.H.AddrList(link, netlink.FAMILY_ALL)
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

// Owners returns the hosts that have ip.
func (l *Lab) Owners(ip netip.Addr) []string {
	var out []string
	for name := range l.Hosts {
		if l.HasAddr(name, ip) {
			out = append(out, name)
		}
	}
	return out
}

// Poke makes host resolve ip (a UDP datagram to it), creating its
// neighbour entry.
func (l *Lab) Poke(host string, ip netip.Addr) {
	l.t.Helper()
	require.NoError(l.t, l.In(host, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(ip, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}))
}

// NeighWatch records host's neighbour-table updates, timestamped on
// arrival.
type NeighWatch struct {
	mu     sync.Mutex
	events []neighEvent
	note   notifier
}

type neighEvent struct {
	at  time.Time
	ip  netip.Addr
	mac string
}

// WatchNeigh starts recording host's neighbour-table updates.
func (l *Lab) WatchNeigh(host string) *NeighWatch {
	l.t.Helper()
	w := &NeighWatch{}
	ch := make(chan netlink.NeighUpdate, 1024)
	done := make(chan struct{})
	ns := l.Hosts[host].NS
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
			w.note.notify()
		}
	}()
	l.t.Cleanup(func() {
		close(done)
		<-finished
	})
	return w
}

// latest returns ip's latest neighbour update.
func (w *NeighWatch) latest(ip netip.Addr) (neighEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.events) - 1; i >= 0; i-- {
		if w.events[i].ip == ip {
			return w.events[i], true
		}
	}
	return neighEvent{}, false
}

// WaitMAC waits until ip's entry points at mac, and returns when that
// update arrived.
func (w *NeighWatch) WaitMAC(ctx context.Context, ip netip.Addr, mac net.HardwareAddr) (time.Time, error) {
	return waitFor(ctx, &w.note, func() (time.Time, bool) {
		e, ok := w.latest(ip)
		return e.at, ok && e.mac == mac.String()
	}, fmt.Sprintf("neighbour entry of %s pointing at %s", ip, mac))
}

// WaitChange waits until ip's entry points at a MAC other than from and
// returns when that update arrived and the new MAC.
func (w *NeighWatch) WaitChange(ctx context.Context, ip netip.Addr, from net.HardwareAddr) (time.Time, net.HardwareAddr, error) {
	var got neighEvent
	at, err := waitFor(ctx, &w.note, func() (time.Time, bool) {
		e, ok := w.latest(ip)
		got = e
		return e.at, ok && e.mac != from.String()
	}, fmt.Sprintf("neighbour entry of %s other than %s", ip, from))
	if err != nil {
		return time.Time{}, nil, err
	}
	mac, err := net.ParseMAC(got.mac)
	return at, mac, err
}

// Current returns the MAC of ip's latest neighbour update, if any.
func (w *NeighWatch) Current(ip netip.Addr) net.HardwareAddr {
	e, ok := w.latest(ip)
	if !ok {
		return nil
	}
	mac, _ := net.ParseMAC(e.mac)
	return mac
}

// HostByMAC returns the name of the host whose eth0 has mac, or "".
func (l *Lab) HostByMAC(mac net.HardwareAddr) string {
	for name, h := range l.Hosts {
		if h.MAC.String() == mac.String() {
			return name
		}
	}
	return ""
}
