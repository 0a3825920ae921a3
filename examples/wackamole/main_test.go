package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) count(sub string) int { return strings.Count(s.String(), sub) }

type daemon struct {
	out    *syncBuffer
	cancel context.CancelFunc
	errc   chan error
}

func start(t *testing.T, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	d := &daemon{out: &syncBuffer{}, cancel: cancel, errc: make(chan error, 1)}
	go func() { d.errc <- run(ctx, args, d.out) }()
	t.Cleanup(func() {
		cancel()
		<-d.errc
	})
	return d
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.errc:
		require.NoError(t, err, d.out.String())
		d.errc <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

func waitFor(t *testing.T, within time.Duration, cond func() bool, what string, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			for i, l := range logs {
				t.Logf("log %d:\n%s", i, l.String())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSingleDryRun(t *testing.T) {
	leakcheck.Check(t)
	d := start(t, "-single", "-dry-run", "-name", "solo", "-mature", "-1s",
		"-vif", "eth0:198.18.0.10", "-vif", "eth0:198.18.0.11,eth1:198.19.0.11", "-stats-interval", "50ms")
	waitFor(t, 10*time.Second, func() bool { return d.out.count("op=acquire") == 2 }, "both interfaces acquired")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(d.out.String(), "held=2") }, "stats")
	d.stop(t)
	assert.Equal(t, 2, d.out.count("op=release"), d.out.String())
}

func TestConfigFile(t *testing.T) {
	leakcheck.Check(t)
	path := filepath.Join(t.TempDir(), "wackamole.conf")
	require.NoError(t, os.WriteFile(path, []byte(`
Group = wack1
Mature = 0s
Prefer None
VirtualInterfaces {
  { eth0:198.18.0.20/32 }
}
`), 0o644))
	d := start(t, "-single", "-dry-run", "-config", path, "-mature", "-1s")
	waitFor(t, 10*time.Second, func() bool { return d.out.count("op=acquire") == 1 }, "acquired")
	assert.Contains(t, d.out.String(), "group=wack1")
	d.stop(t)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, l.Close())
	return port
}

func TestTwoMembersOnLoopback(t *testing.T) {
	leakcheck.Check(t)
	port := freePort(t)
	common := []string{"-dry-run", "-bind", "127.0.0.1", "-mature", "2s",
		"-vif", "eth0:198.18.0.30", "-vif", "eth0:198.18.0.31"}
	a := start(t, append([]string{"-name", "a", "-gossip-port", strconv.Itoa(port)}, common...)...)
	b := start(t, append([]string{"-name", "b", "-seeds", "127.0.0.1:" + strconv.Itoa(port), "-profile", "lan", "-suspicion-mult", "4"}, common...)...)
	waitFor(t, 30*time.Second, func() bool {
		return a.out.count("op=acquire")-a.out.count("op=release") == 1 && b.out.count("op=acquire")-b.out.count("op=release") == 1
	}, "one interface each", a.out, b.out)
	// a runs vip.DefaultDetector's profile, b the LAN profile with one
	// setting overridden.
	assert.Contains(t, a.out.String(), "profile=vip probe_interval=150ms probe_timeout=75ms suspicion_mult=2 gossip_interval=30ms sync_timeout=150ms")
	assert.Contains(t, b.out.String(), "profile=lan probe_interval=200ms probe_timeout=100ms suspicion_mult=4 gossip_interval=50ms sync_timeout=0s")
	// b leaves gracefully: a ends up with both.
	b.stop(t)
	waitFor(t, 10*time.Second, func() bool { return a.out.count("op=acquire")-a.out.count("op=release") == 2 }, "a takes over", a.out)
	a.stop(t)
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-single", "-dry-run"},
		{"-single", "-dry-run", "-vif", "nodev"},
		{"-config", "/nonexistent/wackamole.conf"},
		{"-nosuchflag"},
		{"-profile", "moon", "-dry-run", "-vif", "eth0:198.18.0.1"},
		{"-probe-timeout", "200ms", "-dry-run", "-vif", "eth0:198.18.0.1"},
		{"-sync-timeout", "-1s", "-dry-run", "-vif", "eth0:198.18.0.1"},
	} {
		err := run(t.Context(), args, &syncBuffer{})
		assert.Error(t, err, "%v", args)
	}
}
