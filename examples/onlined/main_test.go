package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/peerscale/peerscale/online/client"
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

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs onlined with args and returns its output and the addresses
// it printed.
func start(t *testing.T, ctx context.Context, args ...string) (out *syncBuffer, resp, web string, done chan error) {
	t.Helper()
	out = &syncBuffer{}
	done = make(chan error, 1)
	go func() { done <- run(ctx, args, out) }()
	re := regexp.MustCompile(`RESP on (\S+),`)
	eventually(t, "onlined to be ready", func() bool { return strings.Contains(out.String(), "onlined: ready") })
	resp = re.FindStringSubmatch(out.String())[1]
	if m := regexp.MustCompile(`HTTP on (\S+)`).FindStringSubmatch(out.String()); m != nil {
		web = m[1]
	}
	return out, resp, web, done
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestOnlinedStandalone(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, resp, web, done := start(t, ctx, "-group", "", "-resp", "127.0.0.1:0", "-http", "127.0.0.1:0", "-window", "1h")
	require.NotEmpty(t, web)

	c, err := client.Dial(ctx, resp, client.Config{})
	require.NoError(t, err)
	defer c.Close()
	now := time.Now()
	for i, u := range []string{"alice", "bob", "carol"} {
		ok, err := c.Hit(ctx, u, "/index.html", now.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
		require.True(t, ok)
	}
	n, err := c.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.JSONEq(t, `{"count":3}`, get(t, web+"count"))
	assert.Contains(t, get(t, web+"url?u=/index.html&limit=1"), `"user":"carol"`)
	metrics := get(t, web+"metrics")
	assert.Contains(t, metrics, "onlined_users 3")
	assert.Contains(t, metrics, "onlined_hits_total 3")
	require.NoError(t, c.Close())

	cancel()
	require.NoError(t, <-done)
	assert.Contains(t, out.String(), "stopped with 3 users online after 3 hits")
}

func TestOnlinedIngestsFromTheBus(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	web1, err := cluster.New("web1", cluster.LANConfig())
	require.NoError(t, err)
	defer web1.Close()

	out, resp, _, done := start(t, ctx, "-group", "www", "-name", "onlined-test", "-resp", "127.0.0.1:0", "-seeds", web1.GossipAddr())
	assert.Contains(t, out.String(), "ingesting group www")
	c, err := client.Dial(ctx, resp, client.Config{})
	require.NoError(t, err)
	defer c.Close()

	now := time.Now()
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: 1, Count: 3})
	for i, u := range []string{"alice", "bob", ""} {
		msg = logwire.AppendRecord(msg, &logwire.Record{
			Time: now.Add(time.Duration(i) * time.Millisecond), Status: 200, Method: "GET",
			URL: "/page?id=1", User: u, Line: []byte("line"),
		})
	}
	// The bus may not have shown web1 the new member yet: send until the
	// records arrive (hits are idempotent).
	eventually(t, "records ingested", func() bool {
		require.NoError(t, web1.Send(ctx, "www", bus.FIFO, msg))
		n, err := c.Count(ctx)
		require.NoError(t, err)
		return n == 2
	})
	who, err := c.OnURL(ctx, "/page", 30)
	require.NoError(t, err)
	require.Len(t, who, 2)
	assert.Equal(t, "bob", who[0].User)
	assert.Equal(t, "alice", who[1].User)
	require.NoError(t, c.Close())

	cancel()
	require.NoError(t, <-done)
	assert.True(t, strings.Contains(out.String(), "stopped with 2 users online"), out.String())
	require.NoError(t, web1.Close())
}

func TestOnlinedBadFlags(t *testing.T) {
	var out syncBuffer
	assert.Error(t, run(t.Context(), []string{"-window", "soon"}, &out))
	assert.Error(t, run(t.Context(), []string{"extra"}, &out))
	assert.Error(t, run(t.Context(), []string{"-group", "", "-resp", "256.0.0.1:1"}, &out))
}
