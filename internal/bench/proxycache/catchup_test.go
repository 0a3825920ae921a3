package proxycachebench

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/proxycache"
)

// TestRestartOverCluster restarts one of three caches over bus/cluster on
// loopback while the others purge: it comes back with its store, minus
// exactly what was purged meanwhile, and the others keep theirs.
func TestRestartOverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts memberlist on loopback")
	}
	quiet := slog.New(slog.DiscardHandler)
	origin, _ := url.Parse("http://origin.internal")
	var seed string
	start := func(name, dir string) (*cluster.Bus, *proxycache.Cache) {
		t.Helper()
		cfg := cluster.LANConfig()
		cfg.Logger = quiet
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		b, err := cluster.New(name, cfg)
		require.NoError(t, err)
		if seed == "" {
			seed = b.GossipAddr()
		}
		c, err := proxycache.New(dir, map[string]*url.URL{"img.example.com": origin},
			proxycache.Config{Bus: b, PurgeWaitAll: true, Logger: quiet, Transport: originTransport{}})
		require.NoError(t, err)
		return b, c
	}
	get := func(c *proxycache.Cache, p string) string {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest("GET", "http://img.example.com"+p, nil))
		require.Equal(t, http.StatusOK, w.Code)
		return w.Header().Get("Cache-Status")
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	var buses [3]*cluster.Bus
	var caches [3]*proxycache.Cache
	for i := range 3 {
		buses[i], caches[i] = start(fmt.Sprintf("cache%d", i), dirs[i])
	}
	defer func() {
		for i := range 3 {
			_ = caches[i].Close()
			_ = buses[i].Close()
		}
	}()
	all := func(n int) func() bool {
		return func() bool {
			for _, c := range caches {
				if c.Stats().ClusterMembers != n {
					return false
				}
			}
			return true
		}
	}
	waitFor("three members", all(3))
	paths := []string{"/a.gif", "/b.gif", "/logos/c.gif", "/logos/d.gif"}
	for _, c := range caches {
		for _, p := range paths {
			get(c, p)
		}
	}

	require.NoError(t, caches[2].Close())
	require.NoError(t, buses[2].Close())
	waitFor("two members", func() bool {
		return caches[0].Stats().ClusterMembers == 2 && caches[1].Stats().ClusterMembers == 2
	})
	require.NoError(t, caches[0].PurgeURL(t.Context(), "http://img.example.com/a.gif"))
	require.NoError(t, caches[1].PurgePrefix(t.Context(), "http://img.example.com/logos/"))

	buses[2], caches[2] = start("cache2", dirs[2])
	waitFor("three members again", all(3))
	// The restarted member asks for the purges since a minute before its
	// last stamp; the others started less than a minute ago, so their
	// answers vouch only for the time since they started: entries fetched
	// before then would be revalidated once. Everything here was fetched
	// later, so what was not purged is served as it was.
	waitFor("the catch-up", func() bool {
		st := caches[2].Stats()
		return st.CatchUps > 0 && st.CatchUpFailures == 1
	})
	st := caches[2].Stats()
	assert.Positive(t, st.MissedPurges)
	assert.Equal(t, 1, st.Objects, "the store came back minus what was purged while it was down")
	assert.False(t, st.RevalidateBefore.IsZero())
	assert.Contains(t, get(caches[2], "/b.gif"), "hit", "kept across the restart")
	assert.Contains(t, get(caches[2], "/a.gif"), "miss", "purged while it was down")
	assert.Contains(t, get(caches[2], "/logos/c.gif"), "miss", "purged while it was down")
	for _, c := range caches[:2] {
		assert.Contains(t, get(c, "/b.gif"), "hit", "the restart cost the others nothing")
		assert.Zero(t, c.Stats().CatchUpFailures)
	}
}
