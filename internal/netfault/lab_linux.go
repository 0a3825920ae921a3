//go:build linux

package netfault

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
)

// Table is the nftables table (family inet) that a Lab creates in every
// host namespace; its input chain holds the fault rules.
const Table = "netfault"

// Environment variables read by the Require functions.
const (
	// EnvRequireRoot, set to 1, turns skips for want of root into failures.
	EnvRequireRoot = "PEERSCALE_REQUIRE_ROOT_TESTS"
	// EnvRequireTools, set to 1, turns skips for a missing ip or nft
	// binary into failures.
	EnvRequireTools = "PEERSCALE_REQUIRE_TOOLS"
)

// RequireRoot skips t unless the process is root with the ip (iproute2)
// and nft (nftables) binaries. It fails t instead of skipping when
// PEERSCALE_REQUIRE_ROOT_TESTS=1 (no root) or PEERSCALE_REQUIRE_TOOLS=1
// (a binary missing).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv(EnvRequireRoot) == "1" {
			t.Fatalf("netfault: %s=1 but the test is not running as root", EnvRequireRoot)
		}
		t.Skipf("netfault: needs root to create network namespaces and nftables rules (set %s=1 to fail instead)", EnvRequireRoot)
	}
	for _, tool := range []struct{ bin, pkg string }{{"ip", "iproute2"}, {"nft", "nftables"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			if os.Getenv(EnvRequireTools) == "1" {
				t.Fatalf("netfault: %s=1 but the %s binary (Debian package %s) is missing", EnvRequireTools, tool.bin, tool.pkg)
			}
			t.Skipf("netfault: needs the %s binary (Debian package %s; set %s=1 to fail instead)", tool.bin, tool.pkg, EnvRequireTools)
		}
	}
}

// Lab is a set of hosts, each a network namespace of its own with eth0 on
// a bridge in a switch namespace. Host i has 198.19.0.<i+1>/24 on eth0, lo
// up, and an nftables table whose input chain holds the faults.
//
// A Lab's methods fail its test on error: call them from the test's
// goroutine (Do and Command may be called from any goroutine).
type Lab struct {
	t      testing.TB
	prefix string
	hosts  []string
	addrs  map[string]netip.Addr

	mu    sync.Mutex
	rules map[string][]string // host -> rules applied since the last Heal
}

// New builds a lab with the given host names (short, distinct, letters and
// digits) and registers its removal with t.Cleanup, which runs even when
// the test fails. It calls RequireRoot first.
func New(t testing.TB, hosts ...string) *Lab {
	t.Helper()
	RequireRoot(t)
	if len(hosts) == 0 || len(hosts) > 250 {
		t.Fatalf("netfault: %d hosts, want 1 to 250", len(hosts))
	}
	l := &Lab{
		t:      t,
		prefix: fmt.Sprintf("nf%d-%d", os.Getpid()%100000, rand.Uint32()%100000),
		hosts:  slices.Clone(hosts),
		addrs:  make(map[string]netip.Addr),
		rules:  make(map[string][]string),
	}
	sw := l.prefix + "-sw"
	l.ip("netns", "add", sw)
	t.Cleanup(func() { l.remove(sw) })
	l.ip("-n", sw, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
	l.ip("-n", sw, "link", "set", "lo", "up")
	l.ip("-n", sw, "link", "set", "br0", "up")
	for i, h := range hosts {
		if h == "" || h == "sw" || strings.ContainsFunc(h, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) {
			t.Fatalf("netfault: bad host name %q", h)
		}
		if _, dup := l.addrs[h]; dup {
			t.Fatalf("netfault: host %q twice", h)
		}
		ns := l.NS(h)
		l.ip("netns", "add", ns)
		t.Cleanup(func() { l.remove(ns) })
		port := "p" + strconv.Itoa(i)
		l.ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		l.ip("-n", sw, "link", "set", port, "master", "br0", "up")
		addr := netip.AddrFrom4([4]byte{198, 19, 0, byte(i + 1)})
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.ip("-n", ns, "addr", "add", addr.String()+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.addrs[h] = addr
		l.nft(h, fmt.Sprintf("add table inet %s\nadd chain inet %s input { type filter hook input priority filter; policy accept; }\n", Table, Table))
	}
	return l
}

// remove deletes namespace ns; its interfaces, addresses and nftables
// table go with it (veth peers too).
func (l *Lab) remove(ns string) {
	if !strings.HasSuffix(ns, "-sw") {
		// The table goes with the namespace; deleting it first also ends
		// the faults for processes that still hold the namespace open.
		_ = exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", Table).Run()
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		l.t.Errorf("netfault: ip netns del %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
}

func (l *Lab) ip(args ...string) {
	l.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("netfault: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// nft runs an nft script in host's namespace.
func (l *Lab) nft(host, script string) {
	l.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.NS(host), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("netfault: nft in %s: %v: %s\nscript:\n%s", host, err, bytes.TrimSpace(out), script)
	}
}

// Hosts returns the host names in the order given to New.
func (l *Lab) Hosts() []string { return slices.Clone(l.hosts) }

// Addr returns host's address on eth0.
func (l *Lab) Addr(host string) netip.Addr {
	a, ok := l.addrs[host]
	if !ok {
		l.t.Fatalf("netfault: no host %q", host)
	}
	return a
}

// NS returns the name of host's namespace (for "ip netns exec").
func (l *Lab) NS(host string) string { return l.prefix + "-" + host }

// Command returns a command that runs name with args in host's namespace
// (through "ip netns exec").
func (l *Lab) Command(host, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.NS(host), name}, args...)...)
}

// Do runs f on an OS thread that is in host's namespace and returns its
// error. Sockets f creates belong to that namespace and stay there when
// used from other goroutines; goroutines f starts run in the process's
// namespace.
func (l *Lab) Do(host string, f func() error) error {
	if _, ok := l.addrs[host]; !ok {
		return fmt.Errorf("netfault: no host %q", host)
	}
	target, err := netns.GetFromName(l.NS(host))
	if err != nil {
		return fmt.Errorf("netfault: namespace of %s: %w", host, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("netfault: current namespace: %w", err)
			return // the locked thread exits with the goroutine
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("netfault: enter %s: %w", host, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		} // else the thread, still in the lab, exits with the goroutine
		errc <- ferr
	}()
	return <-errc
}

// set returns the nft set expression of hosts' addresses.
func (l *Lab) set(hosts []string) string {
	addrs := make([]string, len(hosts))
	for i, h := range hosts {
		addrs[i] = l.Addr(h).String()
	}
	return "{ " + strings.Join(addrs, ", ") + " }"
}

func (l *Lab) addRules(byHost map[string][]string) {
	l.t.Helper()
	for _, h := range l.hosts {
		rules := byHost[h]
		if len(rules) == 0 {
			continue
		}
		var b strings.Builder
		for _, r := range rules {
			fmt.Fprintf(&b, "add rule inet %s input %s\n", Table, r)
		}
		l.nft(h, b.String())
		l.mu.Lock()
		l.rules[h] = append(l.rules[h], rules...)
		l.mu.Unlock()
	}
}

// Loss drops percent of the packets between hosts a and b, in both
// directions, at random (nftables numgen on the input hook of each).
func (l *Lab) Loss(a, b string, percent int) {
	l.t.Helper()
	if percent < 0 || percent > 100 {
		l.t.Fatalf("netfault: loss of %d%%", percent)
	}
	rule := "ip saddr %s numgen random mod 100 < %d counter drop"
	l.addRules(map[string][]string{
		a: {fmt.Sprintf(rule, l.Addr(b), percent)},
		b: {fmt.Sprintf(rule, l.Addr(a), percent)},
	})
}

// Cut drops every packet between a host of side1 and a host of side2
// (a partition); traffic within each side passes.
func (l *Lab) Cut(side1, side2 []string) {
	l.t.Helper()
	l.cut(side1, side2, "")
}

// CutTCP drops the TCP packets between a host of side1 and a host of
// side2; UDP and ICMP still pass, so a gossip protocol over UDP keeps
// seeing the other side while TCP connections stall and new ones time
// out.
func (l *Lab) CutTCP(side1, side2 []string) {
	l.t.Helper()
	l.cut(side1, side2, "meta l4proto tcp ")
}

func (l *Lab) cut(side1, side2 []string, match string) {
	l.t.Helper()
	if len(side1) == 0 || len(side2) == 0 {
		l.t.Fatalf("netfault: cut with an empty side")
	}
	byHost := make(map[string][]string)
	for _, h := range side1 {
		byHost[h] = append(byHost[h], fmt.Sprintf("ip saddr %s %scounter drop", l.set(side2), match))
	}
	for _, h := range side2 {
		if slices.Contains(side1, h) {
			l.t.Fatalf("netfault: host %q on both sides", h)
		}
		byHost[h] = append(byHost[h], fmt.Sprintf("ip saddr %s %scounter drop", l.set(side1), match))
	}
	l.addRules(byHost)
}

// Heal removes every fault rule from every host.
func (l *Lab) Heal() {
	l.t.Helper()
	for _, h := range l.hosts {
		l.nft(h, fmt.Sprintf("flush chain inet %s input\n", Table))
	}
	l.mu.Lock()
	clear(l.rules)
	l.mu.Unlock()
}

// Rules returns the fault rules applied to host since the last Heal, as
// given to nft.
func (l *Lab) Rules(host string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.rules[host])
}

var counterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+`)

// Dropped returns the number of packets the fault rules of host have
// dropped since the last Heal.
func (l *Lab) Dropped(host string) int64 {
	l.t.Helper()
	n, err := l.dropped(host)
	if err != nil {
		l.t.Fatal(err)
	}
	return n
}

func (l *Lab) dropped(host string) (int64, error) {
	out, err := l.Command(host, "nft", "list", "chain", "inet", Table, "input").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("netfault: nft list in %s: %w: %s", host, err, bytes.TrimSpace(out))
	}
	var n int64
	for _, m := range counterRE.FindAllSubmatch(out, -1) {
		v, err := strconv.ParseInt(string(m[1]), 10, 64)
		if err != nil {
			return 0, errors.Join(fmt.Errorf("netfault: counter in %s", host), err)
		}
		n += v
	}
	return n, nil
}

// TCPRetransmits returns the TCP segments host has retransmitted
// (RetransSegs of its namespace's /proc/net/snmp): evidence that TCP
// recovered lost packets.
func (l *Lab) TCPRetransmits(host string) int64 {
	l.t.Helper()
	out, err := l.Command(host, "cat", "/proc/net/snmp").CombinedOutput()
	if err != nil {
		l.t.Fatalf("netfault: /proc/net/snmp of %s: %v: %s", host, err, bytes.TrimSpace(out))
	}
	n, err := snmpField(out, "Tcp", "RetransSegs")
	if err != nil {
		l.t.Fatalf("netfault: /proc/net/snmp of %s: %v", host, err)
	}
	return n
}

// snmpField returns a counter of /proc/net/snmp, whose protocols have a
// line of names followed by a line of values, both prefixed "Proto:".
func snmpField(snmp []byte, proto, name string) (int64, error) {
	var names []string
	for line := range strings.Lines(string(snmp)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != proto+":" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		i := slices.Index(names, name)
		if i < 0 || i >= len(fields) {
			break
		}
		return strconv.ParseInt(fields[i], 10, 64)
	}
	return 0, fmt.Errorf("no %s %s counter", proto, name)
}
