//go:build linux

package main

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/vip/netlab"
)

// daemonEnv makes the test binary run the daemon instead of the tests.
const daemonEnv = "WACKAMOLE_TEST_DAEMON"

func TestMain(m *testing.M) {
	if os.Getenv(daemonEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// procLab runs wackamole daemons, one process per lab host, over
// bus/cluster on the lab's network.
type procLab struct {
	t     testing.TB
	lab   *netlab.Lab
	hosts []string
	vifs  []string
	extra []string
	// hostExtra holds more arguments for single hosts.
	hostExtra map[string][]string
	procs     map[string]*exec.Cmd
	outs      map[string]*syncBuffer
}

const gossipPort = "7946"

func newProcLab(t testing.TB, hosts []string, vifs []string, extra ...string) *procLab {
	t.Helper()
	l := netlab.New(t, append([]string{"client"}, hosts...)...)
	p := &procLab{t: t, lab: l, hosts: hosts, vifs: vifs, extra: extra, procs: map[string]*exec.Cmd{}, outs: map[string]*syncBuffer{}}
	t.Cleanup(func() {
		for h := range p.procs {
			p.kill(h)
		}
	})
	return p
}

func (p *procLab) start(host string) {
	p.t.Helper()
	var seeds []string
	for _, h := range p.hosts {
		if h != host {
			seeds = append(seeds, p.lab.Hosts[h].IP4.String()+":"+gossipPort)
		}
	}
	args := []string{"netns", "exec", p.lab.NS(host), os.Args[0],
		"-name", host, "-bind", p.lab.Hosts[host].IP4.String(), "-gossip-port", gossipPort, "-data-port", "7947",
		"-seeds", strings.Join(seeds, ","), "-mature", "2s"}
	for _, v := range p.vifs {
		args = append(args, "-vif", "eth0:"+v)
	}
	args = append(args, p.extra...)
	args = append(args, p.hostExtra[host]...)
	if os.Getenv("WACKAMOLE_TEST_LOGS") != "" {
		args = append(args, "-debug")
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(p.t, cmd.Start())
	p.procs[host], p.outs[host] = cmd, out
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "wackamole running") {
		if time.Now().After(deadline) {
			p.t.Fatalf("daemon %s did not start:\n%s", host, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *procLab) kill(host string) {
	if c := p.procs[host]; c != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		delete(p.procs, host)
	}
}

func (p *procLab) stop(host string) {
	p.t.Helper()
	c := p.procs[host]
	require.NoError(p.t, c.Process.Signal(syscall.SIGTERM))
	require.NoError(p.t, c.Wait(), p.outs[host].String())
	delete(p.procs, host)
}

// settled waits until ip is on exactly one host and the client's entry
// points at it; it returns that host.
func (p *procLab) settled(w *netlab.NeighWatch, ip netip.Addr, within time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(within)
	poked := time.Time{}
	for {
		o := p.lab.Owners(ip)
		if len(o) == 1 {
			if p.lab.HostByMAC(w.Current(ip)) == o[0] {
				return o[0]
			}
			if time.Since(poked) > time.Second {
				p.lab.Poke("client", ip)
				poked = time.Now()
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for h, out := range p.outs {
				fmt.Fprintf(&logs, "--- %s\n%s\n", h, out.String())
			}
			p.t.Fatalf("%s not settled within %v (owners %v, client -> %q)\n%s", ip, within, o, p.lab.HostByMAC(w.Current(ip)), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settledOn waits until ip is settled on host, or on any host when host
// is empty (a member that prefers the address takes it once mature), and
// returns the owner.
func (p *procLab) settledOn(w *netlab.NeighWatch, ip netip.Addr, host string, within time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		owner := p.settled(w, ip, time.Until(deadline))
		if host == "" || owner == host {
			return owner
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trial detaches (or kills) the owner and returns the time from the fault
// to the client's entry pointing at another host.
func (p *procLab) trial(w *netlab.NeighWatch, ip netip.Addr, owner string, kill bool) (time.Duration, string) {
	p.t.Helper()
	from := p.lab.Hosts[owner].MAC
	fault := time.Now()
	if kill {
		p.kill(owner)
	} else {
		p.lab.Detach(owner)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	at, mac, err := w.WaitChange(ctx, ip, from)
	require.NoError(p.t, err)
	return at.Sub(fault), p.lab.HostByMAC(mac)
}

func TestDaemonsHardFailoverAndHeal(t *testing.T) {
	p := newProcLab(t, []string{"a", "b", "c"}, []string{"198.18.0.100"})
	ip := netip.MustParseAddr("198.18.0.100")
	for _, h := range p.hosts {
		p.start(h)
	}
	w := p.lab.WatchNeigh("client")
	owner := p.settled(w, ip, 30*time.Second)
	d, next := p.trial(w, ip, owner, false)
	t.Logf("hard failover %s -> %s: %v", owner, next, d)
	if os.Getenv("WACKAMOLE_TEST_LOGS") != "" {
		t.Logf("fault at %s\n%s", time.Now().Add(-d).Format("15:04:05.000"), p.outs[next].String())
	}
	assert.NotEqual(t, owner, next)
	assert.Less(t, d, 5*time.Second)
	// Heal: one owner again, and the client follows it.
	p.lab.Attach(owner)
	final := p.settled(w, ip, 30*time.Second)
	t.Logf("after heal: %s", final)
	assert.Equal(t, []string{final}, p.lab.Owners(ip))
}

func TestDaemonsKillWithLifetime(t *testing.T) {
	p := newProcLab(t, []string{"a", "b"}, []string{"198.18.0.101"}, "-lifetime", "2s")
	ip := netip.MustParseAddr("198.18.0.101")
	for _, h := range p.hosts {
		p.start(h)
	}
	w := p.lab.WatchNeigh("client")
	owner := p.settled(w, ip, 30*time.Second)
	d, next := p.trial(w, ip, owner, true)
	t.Logf("SIGKILL failover %s -> %s: %v", owner, next, d)
	assert.NotEqual(t, owner, next)
	// The dead daemon's address expires: one owner again.
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(p.lab.Owners(ip), owner) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, []string{next}, p.lab.Owners(ip), "the killed daemon's address expired")
	// A restarted daemon cleans up and rejoins without taking it back.
	p.start(owner)
	assert.Equal(t, next, p.settled(w, ip, 30*time.Second))
	p.stop(owner)
}

func TestDaemonsGracefulHandover(t *testing.T) {
	p := newProcLab(t, []string{"a", "b"}, []string{"198.18.0.102"})
	ip := netip.MustParseAddr("198.18.0.102")
	for _, h := range p.hosts {
		p.start(h)
	}
	w := p.lab.WatchNeigh("client")
	for _, h := range p.hosts {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(p.outs[h].String(), "msg=mature") {
			require.True(t, time.Now().Before(deadline), "%s never matured", h)
			time.Sleep(20 * time.Millisecond)
		}
	}
	owner := p.settled(w, ip, 30*time.Second)
	from := p.lab.Hosts[owner].MAC
	start := time.Now()
	require.NoError(t, p.procs[owner].Process.Signal(syscall.SIGTERM))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	at, mac, err := w.WaitChange(ctx, ip, from)
	require.NoError(t, err)
	next := p.lab.HostByMAC(mac)
	t.Logf("graceful hand-over %s -> %s: client updated after %v", owner, next, at.Sub(start))
	if os.Getenv("WACKAMOLE_TEST_LOGS") != "" {
		t.Logf("SIGTERM at %s", start.Format("15:04:05.000"))
		defer func() { t.Logf("%s:\n%s\n%s:\n%s", owner, p.outs[owner].String(), next, p.outs[next].String()) }()
	}
	assert.NotEqual(t, owner, next)
	require.NoError(t, p.procs[owner].Wait(), p.outs[owner].String())
	delete(p.procs, owner)
	assert.Equal(t, []string{next}, p.lab.Owners(ip))
}

// logAt is one line of a daemon's text log.
type logAt struct {
	at   time.Time
	msg  string
	line string
}

// parseLog reads the time and message of each line of a daemon's log.
func parseLog(out string) []logAt {
	var lines []logAt
	for line := range strings.SplitSeq(out, "\n") {
		ts, ok := strings.CutPrefix(line, "time=")
		if !ok {
			continue
		}
		ts, _, _ = strings.Cut(ts, " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		_, rest, ok := strings.Cut(line, " msg=")
		if !ok {
			continue
		}
		msg := rest
		if q, err := strconv.QuotedPrefix(rest); err == nil {
			msg, _ = strconv.Unquote(q)
		} else {
			msg, _, _ = strings.Cut(rest, " ")
		}
		lines = append(lines, logAt{at: at, msg: msg, line: line})
	}
	return lines
}

// firstLog returns the time of the first line at or after t (to the log's
// millisecond) that match accepts.
func firstLog(lines []logAt, t time.Time, match func(logAt) bool) (time.Time, bool) {
	t = t.Truncate(time.Millisecond)
	for _, l := range lines {
		if !l.at.Before(t) && match(l) {
			return l.at, true
		}
	}
	return time.Time{}, false
}

// waitMembers waits until every running daemon has logged stats of the
// same view of n members, after t, for a second: the bus has settled
// after a heal (for a while after a partition heals, the two sides'
// coordinators may install alternating views).
func (p *procLab) waitMembers(n int, t time.Time, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	want := " members=" + strconv.Itoa(n) + " "
	viewOf := func(line string) string {
		_, v, _ := strings.Cut(line, " view=")
		v, _, _ = strings.Cut(v, " ")
		return v
	}
	for {
		views := map[string]bool{}
		stable := true
		for _, out := range p.outs {
			var stats []logAt
			for _, l := range parseLog(out.String()) {
				if l.msg == "stats" && l.at.After(t) {
					stats = append(stats, l)
				}
			}
			if len(stats) == 0 || !strings.Contains(stats[len(stats)-1].line, want) {
				stable = false
				break
			}
			last := stats[len(stats)-1]
			views[viewOf(last.line)] = true
			since := false
			for _, l := range slices.Backward(stats) {
				if viewOf(l.line) != viewOf(last.line) {
					break
				}
				if last.at.Sub(l.at) >= time.Second {
					since = true
					break
				}
			}
			stable = stable && since
		}
		if stable && len(views) == 1 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no stable view of %d members within %v", n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// phases is one hard failover broken down, each time from the fault.
type phases struct {
	owner, next string
	// coord: the failed owner coordinated the bus, so a new coordinator
	// took over; syncTimedOut: it waited its SyncTimeout for a state or
	// an order flush.
	coord, syncTimedOut bool
	// confirmations is memberlist's count of independent suspicions when
	// it declared the owner failed.
	confirmations string
	// suspect: first survivor's probe failed; dead: first survivor's bus
	// saw it down; view: the new owner's Manager got the new view; plan:
	// it computed the assignment; addr: the address was up on the new
	// owner; garp: its first announcement reached the client; neigh: the
	// client's neighbour entry changed.
	suspect, dead, view, plan, addr, garp, neigh time.Duration
}

var phaseNames = []string{"suspect", "dead", "view", "plan", "addr", "garp", "neigh"}

func (ph *phases) values() []time.Duration {
	return []time.Duration{ph.suspect, ph.dead, ph.view, ph.plan, ph.addr, ph.garp, ph.neigh}
}

func (ph *phases) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s->%s", ph.owner, ph.next)
	for i, v := range ph.values() {
		if v < 0 {
			fmt.Fprintf(&b, " %s=n/a", phaseNames[i])
		} else {
			fmt.Fprintf(&b, " %s=%v", phaseNames[i], v.Round(time.Millisecond))
		}
	}
	fmt.Fprintf(&b, " coord=%v sync-timeout=%v confirmations=%s", ph.coord, ph.syncTimedOut, ph.confirmations)
	return b.String()
}

// phaseTrial detaches the owner's port and times each phase of the
// failover, from the daemons' logs (millisecond timestamps), the new
// owner's address events, the client's ARP packets and neighbour events.
func (p *procLab) phaseTrial(w *netlab.NeighWatch, arps *netlab.ARPWatch, addrs map[string]*netlab.AddrWatch, ip netip.Addr, owner string) phases {
	p.t.Helper()
	from := p.lab.Hosts[owner].MAC
	fault := time.Now()
	p.lab.Detach(owner)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	at, mac, err := w.WaitChange(ctx, ip, from)
	require.NoError(p.t, err)
	ph := phases{owner: owner, next: p.lab.HostByMAC(mac), neigh: at.Sub(fault)}
	// The daemons' logs reach us through pipes: wait for the acquisition.
	deadline := time.Now().Add(5 * time.Second)
	for !hasLogAfter(p.outs[ph.next].String(), fault, "acquired") {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s never logged the acquisition:\n%s", ph.next, p.outs[ph.next].String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	since := func(t time.Time, ok bool) time.Duration {
		if !ok {
			return -1
		}
		return t.Sub(fault)
	}
	first := func(match func(logAt) bool) time.Duration {
		best := time.Duration(-1)
		for _, h := range p.hosts {
			if h == owner || p.outs[h] == nil {
				continue
			}
			if d := since(firstLog(parseLog(p.outs[h].String()), fault, match)); d >= 0 && (best < 0 || d < best) {
				best = d
			}
		}
		return best
	}
	node := owner + "#"
	ph.suspect = first(func(l logAt) bool { return strings.HasPrefix(l.msg, "memberlist: Suspect "+node) })
	ph.dead = first(func(l logAt) bool { return l.msg == "member down" && strings.Contains(l.line, "peer="+node) })
	ph.coord = first(func(l logAt) bool { return l.msg == "coordinator" }) >= 0
	ph.syncTimedOut = first(func(l logAt) bool { return l.msg == "state sync timed out" || l.msg == "order flush timed out" }) >= 0
	for _, h := range p.hosts {
		if h == owner {
			continue
		}
		for _, l := range parseLog(p.outs[h].String()) {
			if !l.at.Before(fault.Truncate(time.Millisecond)) && strings.HasPrefix(l.msg, "memberlist: Marking "+node) {
				_, c, _ := strings.Cut(l.msg, "(")
				c, _, _ = strings.Cut(c, " ")
				ph.confirmations += c
			}
		}
	}
	next := parseLog(p.outs[ph.next].String())
	ph.view = since(firstLog(next, fault, func(l logAt) bool { return l.msg == "view" }))
	ph.plan = since(firstLog(next, fault, func(l logAt) bool { return l.msg == "plan" }))
	ph.addr = since(addrs[ph.next].AddedAfter(ip, fault))
	ph.garp = since(arps.FromAfter(ip, p.lab.Hosts[ph.next].MAC, fault))
	return ph
}

func hasLogAfter(out string, t time.Time, msg string) bool {
	_, ok := firstLog(parseLog(out), t, func(l logAt) bool { return l.msg == msg })
	return ok
}

func percentile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// BenchmarkFailover measures the time from a hard failure of the owner
// (its switch port goes down) to the client's neighbour entry pointing at
// the new owner, 3 daemons, with wackamole's default profile (vip) and
// bus/cluster's LAN profile in the same run, and breaks every failover
// into phases (p50 of each reported, every trial logged). Each iteration
// is one failover; run it with -benchtime 20x. WACKAMOLE_BENCH_PROFILES
// lists other profiles, separated by ";", each a -profile name and
// optional overrides ("vip;vip -suspicion-mult 3"). The first daemon
// started, the oldest, coordinates the bus and takes the address: each
// failover also hands the coordinator role over. With
// WACKAMOLE_BENCH_PREFER=b the address goes to b instead, which does not
// coordinate.
func BenchmarkFailover(b *testing.B) {
	for spec := range strings.SplitSeq(cmp.Or(os.Getenv("WACKAMOLE_BENCH_PROFILES"), "vip;lan"), ";") {
		args := strings.Fields(spec)
		if len(args) == 0 {
			continue
		}
		profile := strings.Join(args, "")
		b.Run("profile="+profile, func(b *testing.B) {
			p := newProcLab(b, []string{"a", "b", "c"}, []string{"198.18.0.100"},
				append(append([]string{"-profile"}, args...), "-debug", "-stats-interval", "100ms")...)
			prefer := os.Getenv("WACKAMOLE_BENCH_PREFER")
			if prefer != "" {
				p.hostExtra = map[string][]string{prefer: {"-prefer", "eth0:198.18.0.100"}}
			}
			ip := netip.MustParseAddr("198.18.0.100")
			for _, h := range p.hosts {
				p.start(h)
			}
			w := p.lab.WatchNeigh("client")
			arps := p.lab.WatchARP("client")
			addrs := make(map[string]*netlab.AddrWatch)
			for _, h := range p.hosts {
				addrs[h] = p.lab.WatchAddrs(h)
			}
			start := time.Now()
			p.settled(w, ip, 30*time.Second)
			p.waitMembers(3, start, 30*time.Second)
			owner := p.settledOn(w, ip, prefer, 30*time.Second)
			if dir := os.Getenv("WACKAMOLE_TEST_LOGDIR"); dir != "" {
				b.Cleanup(func() {
					for h, out := range p.outs {
						_ = os.WriteFile(filepath.Join(dir, profile+"-"+h+".log"), []byte(out.String()), 0o644)
					}
				})
			}
			var trials []phases
			for b.Loop() {
				ph := p.phaseTrial(w, arps, addrs, ip, owner)
				trials = append(trials, ph)
				b.StopTimer()
				healed := time.Now()
				p.lab.Attach(owner)
				p.settled(w, ip, 60*time.Second)
				p.waitMembers(3, healed, 60*time.Second)
				owner = p.settledOn(w, ip, prefer, 30*time.Second)
				b.StartTimer()
			}
			totals := make([]time.Duration, len(trials))
			var coord, synced int
			for i, ph := range trials {
				totals[i] = ph.neigh
				if ph.coord {
					coord++
				}
				if ph.syncTimedOut {
					synced++
				}
				b.Logf("trial %2d: %v", i+1, &ph)
				if ph.suspect < 0 || ph.dead < 0 {
					b.Errorf("trial %d: the owner's failure was not detected: the bus had not settled", i+1)
				}
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(percentile(totals, 0.5)), "p50-ms")
			b.ReportMetric(ms(percentile(totals, 0.95)), "p95-ms")
			b.ReportMetric(ms(slices.Max(totals)), "max-ms")
			for i, name := range phaseNames[:len(phaseNames)-1] {
				var ds []time.Duration
				for _, ph := range trials {
					if v := ph.values()[i]; v >= 0 {
						ds = append(ds, v)
					}
				}
				b.ReportMetric(ms(percentile(ds, 0.5)), name+"-p50-ms")
			}
			b.ReportMetric(float64(coord), "coord-changes")
			b.ReportMetric(float64(synced), "sync-timeouts")
		})
	}
}

// TestSoakFalseFailovers runs 3 daemons with one interface each under
// CPU and network load for WACKAMOLE_SOAK (a duration, e.g. 10m) and
// counts what no fault caused: suspicions raised by memberlist, members
// declared down and interfaces that moved. WACKAMOLE_SOAK_PROFILES lists
// the profiles to compare, separated by ";", each a -profile name and
// optional overrides ("vip;lan;vip -suspicion-mult 3"; default "vip");
// each gets its own lab and all run at the same time, under the same
// load. WACKAMOLE_SOAK_BURN sets the spinning goroutines (default 2) and
// WACKAMOLE_SOAK_PPS the UDP packets per second the test tries to send to
// each lab's hosts (default 20000).
func TestSoakFalseFailovers(t *testing.T) {
	soak, err := time.ParseDuration(os.Getenv("WACKAMOLE_SOAK"))
	if err != nil {
		t.Skip("set WACKAMOLE_SOAK=10m (a duration) to run the false-failover soak")
	}
	burn, _ := strconv.Atoi(cmp.Or(os.Getenv("WACKAMOLE_SOAK_BURN"), "2"))
	pps, _ := strconv.Atoi(cmp.Or(os.Getenv("WACKAMOLE_SOAK_PPS"), "20000"))
	vips := []string{"198.18.0.110", "198.18.0.111", "198.18.0.112"}
	type soakLab struct {
		spec string
		p    *procLab
		w    *netlab.NeighWatch
	}
	var labs []*soakLab
	for spec := range strings.SplitSeq(cmp.Or(os.Getenv("WACKAMOLE_SOAK_PROFILES"), "vip"), ";") {
		spec = strings.TrimSpace(spec)
		args := append([]string{"-profile"}, strings.Fields(spec)...)
		p := newProcLab(t, []string{"a", "b", "c"}, vips, append(args, "-stats-interval", "1s")...)
		for _, h := range p.hosts {
			p.start(h)
		}
		labs = append(labs, &soakLab{spec: spec, p: p, w: p.lab.WatchNeigh("client")})
	}
	for _, l := range labs {
		start := time.Now()
		for _, v := range vips {
			l.p.settled(l.w, netip.MustParseAddr(v), 30*time.Second)
		}
		l.p.waitMembers(3, start, 60*time.Second)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range burn {
		wg.Go(func() {
			x := 0
			for ctx.Err() == nil {
				for range 100000 {
					x++
				}
			}
		})
	}
	var sent atomic.Int64
	for _, l := range labs {
		if pps <= 0 {
			break
		}
		var conns []net.Conn
		require.NoError(t, l.p.lab.In("client", func() error {
			for _, h := range l.p.hosts {
				c, err := net.Dial("udp", l.p.lab.Hosts[h].IP4.String()+":9")
				if err != nil {
					return err
				}
				conns = append(conns, c)
			}
			return nil
		}))
		wg.Go(func() {
			payload := make([]byte, 1200)
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					for _, c := range conns {
						c.Close()
					}
					return
				case <-tick.C:
				}
				for i := range pps / 100 {
					if _, err := conns[i%len(conns)].Write(payload); err == nil {
						sent.Add(1)
					}
				}
			}
		})
	}
	loaded := time.Now()
	t.Logf("soak: %v, %d labs, %d spinning goroutines, %d UDP packets/s per lab", soak, len(labs), burn, pps)
	select {
	case <-time.After(soak):
	case <-t.Context().Done():
	}
	cancel()
	wg.Wait()
	elapsed := time.Since(loaded)
	t.Logf("soak: %v under load, %d UDP packets sent (%.0f/s)", elapsed.Round(time.Second), sent.Load(), float64(sent.Load())/elapsed.Seconds())

	for _, l := range labs {
		var suspicions, downs, moves int
		for _, h := range l.p.hosts {
			out := l.p.outs[h].String()
			if dir := os.Getenv("WACKAMOLE_TEST_LOGDIR"); dir != "" {
				name := strings.ReplaceAll(strings.ReplaceAll(l.spec, " ", ""), "-", "")
				_ = os.WriteFile(filepath.Join(dir, "soak-"+name+"-"+h+".log"), []byte(out), 0o644)
			}
			for _, line := range parseLog(out) {
				if line.at.Before(loaded.Truncate(time.Millisecond)) {
					continue
				}
				switch {
				case strings.HasPrefix(line.msg, "memberlist: Suspect "):
					suspicions++
				case line.msg == "member down":
					downs++
				case line.msg == "acquired":
					moves++
				}
			}
		}
		perHour := func(n int) float64 { return float64(n) / elapsed.Hours() }
		t.Logf("soak -profile %s: %d suspicions (%.0f/h), %d member-down events (each survivor logs one; %.1f/h), %d interface moves (%.1f/h)",
			l.spec, suspicions, perHour(suspicions), downs, perHour(downs), moves, perHour(moves))
		// Whatever happened, every interface ends with one owner that
		// the client reaches.
		for _, v := range vips {
			l.p.settled(l.w, netip.MustParseAddr(v), 30*time.Second)
		}
		if max, err := strconv.Atoi(os.Getenv("WACKAMOLE_SOAK_MAX_MOVES")); err == nil {
			assert.LessOrEqual(t, moves, max, "-profile %s: interface moves without a fault", l.spec)
		}
	}
}
