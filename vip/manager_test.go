package vip

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
)

// fakeNet records which member holds each VIF, like a shared L2 segment.
type fakeNet struct {
	mu      sync.Mutex
	holders map[string]map[string]bool
	log     []string
	failAcq map[string]bool // member names whose Acquire fails
}

func newFakeNet() *fakeNet {
	return &fakeNet{holders: make(map[string]map[string]bool), failAcq: make(map[string]bool)}
}

type fakeBackend struct {
	net       *fakeNet
	name      string
	announced map[string]int
}

func (f *fakeBackend) Acquire(_ context.Context, v VIF) error {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	if f.net.failAcq[f.name] {
		return &OpError{Op: "acquire", Dev: "fake0", Err: fmt.Errorf("injected")}
	}
	if f.net.holders[v.Name] == nil {
		f.net.holders[v.Name] = make(map[string]bool)
	}
	f.net.holders[v.Name][f.name] = true
	f.net.log = append(f.net.log, "acquire "+v.Name+" "+f.name)
	return nil
}

func (f *fakeBackend) Announce(_ context.Context, v VIF) error {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	if !f.net.holders[v.Name][f.name] {
		return fmt.Errorf("announce of %s not held by %s", v.Name, f.name)
	}
	f.announced[v.Name]++
	return nil
}

func (f *fakeBackend) Release(_ context.Context, v VIF) error {
	f.net.mu.Lock()
	defer f.net.mu.Unlock()
	delete(f.net.holders[v.Name], f.name)
	f.net.log = append(f.net.log, "release "+v.Name+" "+f.name)
	return nil
}

// owners returns VIF → holders, sorted.
func (n *fakeNet) owners() map[string][]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string][]string)
	for vif, hs := range n.holders {
		if len(hs) > 0 {
			out[vif] = slices.Sorted(maps.Keys(hs))
		}
	}
	return out
}

func (n *fakeNet) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.log)
}

func testVIFs(k int) []VIF {
	out := make([]VIF, k)
	for i := range out {
		out[i] = VIF{Name: fmt.Sprintf("vif%02d", i), Addrs: []Address{{Dev: "fake0", IP: netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})}}}
	}
	return out
}

type node struct {
	name string
	bus  *inproc.Bus
	m    *Manager
	be   *fakeBackend
	mu   sync.Mutex
	evs  []Event
}

func (n *node) events() []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.evs)
}

func startNode(t *testing.T, hub *inproc.Hub, net *fakeNet, name string, vifs []VIF, cfg Config) *node {
	t.Helper()
	b, err := hub.NewMember(name)
	require.NoError(t, err)
	g, err := b.Join(t.Context(), "vip")
	require.NoError(t, err)
	n := &node{name: name, bus: b, be: &fakeBackend{net: net, name: name, announced: make(map[string]int)}}
	if cfg.Mature == 0 {
		cfg.Mature = -1
	}
	cfg.OnEvent = func(e Event) {
		n.mu.Lock()
		n.evs = append(n.evs, e)
		n.mu.Unlock()
	}
	cfg.Logger = discard()
	n.m, err = New(g, vifs, n.be, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.m.Close() })
	return n
}

// settle lets the bubble run until every goroutine is blocked, repeatedly
// advancing fake time, until cond holds or within passes.
func settle(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		synctest.Wait()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converged reports whether every VIF has exactly one holder, among names.
func converged(net *fakeNet, vifs []VIF, names ...string) bool {
	o := net.owners()
	for _, v := range vifs {
		hs := o[v.Name]
		if len(hs) != 1 || !slices.Contains(names, hs[0]) {
			return false
		}
	}
	return true
}

func balanced(net *fakeNet, names ...string) bool {
	load := make(map[string]int)
	for _, n := range names {
		load[n] = 0
	}
	for _, hs := range net.owners() {
		for _, h := range hs {
			load[h]++
		}
	}
	vals := slices.Collect(maps.Values(load))
	return slices.Max(vals)-slices.Min(vals) <= 1
}

func holdersOf(net *fakeNet) map[string]string {
	out := make(map[string]string)
	for vif, hs := range net.owners() {
		out[vif] = strings.Join(hs, ",")
	}
	return out
}

func TestManagerColdStartFailoverAndHeal(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(7)
		a := startNode(t, hub, net, "a", vifs, Config{})
		b := startNode(t, hub, net, "b", vifs, Config{})
		c := startNode(t, hub, net, "c", vifs, Config{})
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a", "b", "c") && balanced(net, "a", "b", "c") })
		// Every member knows the same assignment.
		assert.Equal(t, a.m.Owners(), b.m.Owners())
		assert.Equal(t, a.m.Owners(), c.m.Owners())
		assert.Len(t, a.m.Owners(), len(vifs))

		// Crash c: only its interfaces move.
		before := holdersOf(net)
		hub.Crash(c.bus)
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a", "b") })
		after := holdersOf(net)
		for vif, h := range before {
			if h != "c" {
				assert.Equal(t, h, after[vif], "%s moved though its owner lives", vif)
			}
		}
		assert.True(t, balanced(net, "a", "b"))

		// Partition a | b: each side takes everything.
		time.Sleep(time.Second)
		hub.Partition([]*inproc.Bus{a.bus}, []*inproc.Bus{b.bus})
		settle(t, 5*time.Second, func() bool {
			o := net.owners()
			for _, v := range vifs {
				if len(o[v.Name]) != 2 {
					return false
				}
			}
			return true
		})
		// Heal: the older claim wins, the loser releases, the winner
		// announces again.
		announcedBefore := a.be.announced["vif00"] + b.be.announced["vif00"]
		hub.Heal()
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a", "b") })
		assert.Equal(t, after, holdersOf(net), "the original owners keep their interfaces")
		assert.Positive(t, a.m.Stats().Conflicts)
		assert.Greater(t, a.be.announced["vif00"]+b.be.announced["vif00"], announcedBefore)
		var conflicts int
		for _, e := range append(a.events(), b.events()...) {
			if e.Kind == EventConflict {
				conflicts++
			}
		}
		assert.Equal(t, 2*len(vifs), conflicts, "both members report each conflict")
		require.NoError(t, a.m.Close())
		require.NoError(t, b.m.Close())
		assert.Empty(t, net.owners(), "Close releases everything")
	})
}

func TestManagerJoinRebalanceAndMature(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(9)
		cfg := Config{Balance: Balance{AcquisitionsPerRound: 1, Interval: 2 * time.Second}}
		startNode(t, hub, net, "a", vifs, cfg)
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a") })
		startNode(t, hub, net, "b", vifs, cfg)
		settle(t, 15*time.Second, func() bool { return converged(net, vifs, "a", "b") && balanced(net, "a", "b") })

		// c starts with the default Mature (5 s): it takes nothing before.
		start := time.Now()
		cfgC := cfg
		cfgC.Mature = 5 * time.Second
		c := startNode(t, hub, net, "c", vifs, cfgC)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		assert.False(t, c.m.Stats().Mature)
		assert.Zero(t, c.m.Stats().Held)
		settle(t, 30*time.Second, func() bool { return converged(net, vifs, "a", "b", "c") && balanced(net, "a", "b", "c") })
		// One acquisition per 2 s round: 3 moves take at least 4 s after
		// maturity.
		assert.GreaterOrEqual(t, time.Since(start), 5*time.Second+4*time.Second)
		assert.Equal(t, uint64(3), c.m.Stats().Acquisitions)
	})
}

func TestManagerGracefulHandover(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(6)
		a := startNode(t, hub, net, "a", vifs, Config{})
		b := startNode(t, hub, net, "b", vifs, Config{})
		c := startNode(t, hub, net, "c", vifs, Config{})
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a", "b", "c") })
		_ = c
		// Drain the leader, a: the receivers acquire, then a releases.
		mine := make(map[string]bool)
		for vif, h := range holdersOf(net) {
			if h == "a" {
				mine[vif] = true
			}
		}
		require.NotEmpty(t, mine)
		mark := len(net.events())
		start := time.Now()
		require.NoError(t, a.m.Shutdown(t.Context()))
		assert.Less(t, time.Since(start), 100*time.Millisecond, "hand-over waits for no timer")
		assert.True(t, converged(net, vifs, "b", "c"), "no gap: the others hold everything when Shutdown returns")
		log := net.events()[mark:]
		for vif := range mine {
			acq := slices.IndexFunc(log, func(s string) bool { return strings.HasPrefix(s, "acquire "+vif+" ") })
			rel := slices.Index(log, "release "+vif+" a")
			require.GreaterOrEqual(t, acq, 0, vif)
			require.GreaterOrEqual(t, rel, 0, vif)
			assert.Less(t, acq, rel, "%s: the receiver acquires before the giver releases", vif)
		}
		// Drain a non-leader too, then the last member alone.
		require.NoError(t, c.m.Shutdown(t.Context()))
		assert.True(t, converged(net, vifs, "b"))
		require.NoError(t, b.m.Shutdown(t.Context()))
		assert.Empty(t, net.owners())
		// Idempotent, and Shutdown after Close is harmless.
		require.NoError(t, b.m.Close())
		require.NoError(t, b.m.Shutdown(t.Context()))
	})
}

func TestManagerPreferAndFailures(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(4)
		startNode(t, hub, net, "a", vifs, Config{})
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a") })
		// b prefers vif03 and vif02 and gets them at the next round.
		startNode(t, hub, net, "b", vifs, Config{Prefer: []string{"vif02", "vif03"}, Balance: Balance{Interval: time.Second}})
		settle(t, 10*time.Second, func() bool {
			h := holdersOf(net)
			return converged(net, vifs, "a", "b") && h["vif02"] == "b" && h["vif03"] == "b"
		})
		// A member whose backend fails reports it and retries.
		net.mu.Lock()
		net.failAcq["c"] = true
		net.mu.Unlock()
		c := startNode(t, hub, net, "c", vifs, Config{Balance: Balance{Interval: time.Second}})
		settle(t, 10*time.Second, func() bool { return c.m.Stats().Failures > 0 })
		assert.True(t, slices.ContainsFunc(c.events(), func(e Event) bool { return e.Kind == EventFailed }))
		net.mu.Lock()
		net.failAcq["c"] = false
		net.mu.Unlock()
		settle(t, 10*time.Second, func() bool { return converged(net, vifs, "a", "b", "c") && c.m.Stats().Held > 0 })
		// Every interface stays covered while c retries.
		assert.True(t, converged(net, vifs, "a", "b", "c"))
	})
}

func TestManagerIgnoresMismatchedConfig(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(4)
		startNode(t, hub, net, "a", vifs, Config{})
		startNode(t, hub, net, "b", vifs, Config{})
		odd := startNode(t, hub, net, "odd", testVIFs(5), Config{})
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a", "b") })
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Zero(t, odd.m.Stats().Held)
		assert.True(t, converged(net, vifs, "a", "b"))
	})
}

func TestManagerBadMessages(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(2)
		a := startNode(t, hub, net, "a", vifs, Config{})
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a") })
		rogue, err := hub.NewMember("rogue")
		require.NoError(t, err)
		require.NoError(t, rogue.Send(t.Context(), "vip", bus.FIFO, []byte("garbage")))
		// Moves from a non-member are ignored too.
		data, err := encodeMessage(&message{Kind: kindMoves, View: a.m.Stats().View, Moves: []Move{{VIF: "vif00", To: rogue.Self()}}})
		require.NoError(t, err)
		require.NoError(t, rogue.Send(t.Context(), "vip", bus.FIFO, data))
		settle(t, time.Second, func() bool { return a.m.Stats().BadMessages == 2 })
		assert.True(t, converged(net, vifs, "a"))
	})
}

func TestNewValidates(t *testing.T) {
	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	b, err := hub.NewMember("x")
	require.NoError(t, err)
	g, err := b.Join(t.Context(), "vip")
	require.NoError(t, err)
	_, err = New(g, nil, DryRun{}, Config{})
	assert.ErrorIs(t, err, ErrBadConfig)
	_, err = New(g, testVIFs(1), DryRun{}, Config{Prefer: []string{"nope"}})
	assert.ErrorIs(t, err, ErrBadConfig)
	dup := append(testVIFs(1), testVIFs(1)...)
	_, err = New(g, dup, DryRun{}, Config{})
	assert.ErrorIs(t, err, ErrBadConfig)
}

// sharingBackend is a fakeBackend that shares neighbours.
type sharingBackend struct {
	*fakeBackend
	mine     []netip.Addr
	mu       sync.Mutex
	notified map[string][]netip.Addr
}

func (s *sharingBackend) Neighbors(context.Context) ([]netip.Addr, error) { return s.mine, nil }

func (s *sharingBackend) NotifyHosts(_ context.Context, v VIF, hosts []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notified[v.Name] = append(s.notified[v.Name], hosts...)
	return nil
}

func TestManagerSharesNeighbors(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(2)
		start := func(name string, mine ...string) (*sharingBackend, *inproc.Bus) {
			b, err := hub.NewMember(name)
			require.NoError(t, err)
			g, err := b.Join(t.Context(), "vip")
			require.NoError(t, err)
			be := &sharingBackend{fakeBackend: &fakeBackend{net: net, name: name, announced: map[string]int{}}, notified: map[string][]netip.Addr{}}
			for _, s := range mine {
				be.mine = append(be.mine, netip.MustParseAddr(s))
			}
			m, err := New(g, vifs, be, Config{Mature: -1, ARPCache: time.Second, Logger: discard()})
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })
			return be, b
		}
		_, ba := start("a", "198.18.0.50", "198.18.0.51")
		bb, _ := start("b", "198.18.0.60")
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a", "b") && balanced(net, "a", "b") })
		time.Sleep(2 * time.Second) // a few collection rounds
		synctest.Wait()
		var aVIF string
		for vif, h := range holdersOf(net) {
			if h == "a" {
				aVIF = vif
			}
		}
		require.NotEmpty(t, aVIF)
		hub.Crash(ba)
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "b") })
		bb.mu.Lock()
		defer bb.mu.Unlock()
		assert.Subset(t, bb.notified[aVIF], []netip.Addr{netip.MustParseAddr("198.18.0.50"), netip.MustParseAddr("198.18.0.51"), netip.MustParseAddr("198.18.0.60")},
			"the new owner refreshes the hosts the failed owner knew")
	})
}

// lockedBuffer is a concurrency-safe log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestManagerWarnsAboutSilentMembers(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(2)
		b, err := hub.NewMember("a")
		require.NoError(t, err)
		g, err := b.Join(t.Context(), "vip")
		require.NoError(t, err)
		var logs lockedBuffer
		m, err := New(g, vifs, &fakeBackend{net: net, name: "a", announced: map[string]int{}}, Config{
			Mature: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		require.NoError(t, err)
		defer m.Close()
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a") })
		// A member that joins the group but never runs a Manager.
		silent, err := hub.NewMember("silent")
		require.NoError(t, err)
		_, err = silent.Join(t.Context(), "vip")
		require.NoError(t, err)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.Contains(t, logs.String(), "still waiting for the states of members")
		assert.Contains(t, logs.String(), "silent#")
		assert.Empty(t, m.Owners(), "no assignment without every State")
		assert.True(t, converged(net, vifs, "a"), "what is held stays held")
	})
}

// lossyGroup drops the first drop messages from one sender, as a faulty
// bus might.
type lossyGroup struct {
	bus.Group
	from bus.MemberID
	mu   sync.Mutex
	drop int
}

func (l *lossyGroup) Recv(ctx context.Context) (bus.Event, error) {
	for {
		ev, err := l.Group.Recv(ctx)
		if m, ok := ev.(*bus.Message); ok && m.Sender == l.from {
			l.mu.Lock()
			drop := l.drop > 0
			l.drop--
			l.mu.Unlock()
			if drop {
				continue
			}
		}
		return ev, err
	}
}

func TestManagerRecoversLostState(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		net := newFakeNet()
		vifs := testVIFs(4)
		a := startNode(t, hub, net, "a", vifs, Config{})
		settle(t, 5*time.Second, func() bool { return converged(net, vifs, "a") })
		// b never sees a's first message (its initial State for the view
		// with b).
		bb, err := hub.NewMember("b")
		require.NoError(t, err)
		g, err := bb.Join(t.Context(), "vip")
		require.NoError(t, err)
		lossy := &lossyGroup{Group: g, from: a.bus.Self(), drop: 1}
		m, err := New(lossy, vifs, &fakeBackend{net: net, name: "b", announced: map[string]int{}}, Config{Mature: -1, Logger: discard()})
		require.NoError(t, err)
		defer m.Close()
		settle(t, 15*time.Second, func() bool {
			return len(m.Owners()) == len(vifs) && converged(net, vifs, "a", "b") && balanced(net, "a", "b")
		})
		assert.Positive(t, m.Stats().Resends)
		assert.Positive(t, a.m.Stats().Resends, "a answered b's repeated State with its own")
	})
}
