package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/stretchr/testify/require"
)

// testLogger logs to stderr when PEERSCALE_TEST_LOG is set (a level name),
// and discards otherwise.
func testLogger() *slog.Logger {
	lvl := os.Getenv("PEERSCALE_TEST_LOG")
	if lvl == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	l.UnmarshalText([]byte(lvl))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// testConfig is the LAN profile with a failure detector relaxed for a
// loaded 2-core machine under the race detector, where 100 ms probe
// timeouts make live members look dead.
func testConfig(i int) Config {
	cfg := LANConfig()
	cfg.BindAddr = fmt.Sprintf("127.0.0.%d", 1+i%250)
	cfg.ProbeInterval = time.Second
	cfg.ProbeTimeout = 800 * time.Millisecond
	cfg.SuspicionMult = 5
	// Link checks relaxed the same way: a starved link reader must not
	// look like a cut link. Tests of the exclusion set their own.
	cfg.LinkTimeout = 10 * time.Second
	cfg.Logger = testLogger()
	return cfg
}

// startN starts n members joined into one cluster; they are closed when
// the test ends.
func startN(t testing.TB, n int, tweak func(i int, c *Config)) []*Bus {
	t.Helper()
	var out []*Bus
	var seed string
	for i := range n {
		cfg := testConfig(i)
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		b, err := New(fmt.Sprintf("m%d", i), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		if seed == "" {
			seed = b.GossipAddr()
		}
		out = append(out, b)
	}
	waitFor(t, 30*time.Second, func() bool {
		for _, b := range out {
			if b.Stats().Members != n {
				return false
			}
		}
		return true
	}, "members see each other")
	return out
}

func waitFor(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recvView receives events until a view satisfying ok arrives.
func recvView(t testing.TB, g bus.Group, ok func(*bus.View) bool) *bus.View {
	t.Helper()
	ctx := ctxT(t, 20*time.Second)
	for {
		ev, err := g.Recv(ctx)
		require.NoError(t, err)
		if v, isView := ev.(*bus.View); isView && ok(v) {
			return v
		}
	}
}

// joinAll joins every member to group and waits until each sees a view of
// all of them.
func joinAll(t testing.TB, bs []*Bus, group string) []bus.Group {
	t.Helper()
	gs := make([]bus.Group, len(bs))
	for i, b := range bs {
		g, err := b.Join(ctxT(t, 20*time.Second), group)
		require.NoError(t, err)
		gs[i] = g
	}
	for _, g := range gs {
		recvView(t, g, func(v *bus.View) bool { return len(v.Members) == len(bs) })
	}
	return gs
}
