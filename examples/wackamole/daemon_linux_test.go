//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
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
	procs map[string]*exec.Cmd
	outs  map[string]*syncBuffer
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

// BenchmarkFailover measures, with the default (LAN) profile, the time from
// a hard failure of the owner (its switch port goes down) to the client's
// neighbour entry pointing at the new owner. Each iteration is one
// failover; run it with -benchtime 20x.
func BenchmarkFailover(b *testing.B) {
	p := newProcLab(b, []string{"a", "b", "c"}, []string{"198.18.0.100"})
	ip := netip.MustParseAddr("198.18.0.100")
	for _, h := range p.hosts {
		p.start(h)
	}
	w := p.lab.WatchNeigh("client")
	owner := p.settled(w, ip, 30*time.Second)
	var times []time.Duration
	for b.Loop() {
		d, _ := p.trial(w, ip, owner, false)
		times = append(times, d)
		b.StopTimer()
		p.lab.Attach(owner)
		owner = p.settled(w, ip, 60*time.Second)
		b.StartTimer()
	}
	slices.Sort(times)
	pct := func(q float64) float64 {
		return float64(times[min(len(times)-1, int(q*float64(len(times))))].Milliseconds())
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(float64(times[len(times)-1].Milliseconds()), "max-ms")
	b.Logf("failover times: %v", times)
}
