package main

import (
	"bytes"
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
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/proxycache"
)

func TestSmoke(t *testing.T) {
	leakcheck.Check(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "x")
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	quiet := slog.New(slog.DiscardHandler)
	cfg := cluster.LANConfig()
	cfg.Logger = quiet
	b, err := cluster.New("cache1", cfg)
	require.NoError(t, err)
	defer b.Close()
	c, err := proxycache.New(t.TempDir(), map[string]*url.URL{"img.example.com": u}, proxycache.Config{Bus: b, Logger: quiet})
	require.NoError(t, err)
	defer c.Close()

	get := func() string {
		req := httptest.NewRequest("GET", "http://img.example.com/a.gif", nil)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, req)
		return w.Header().Get("Cache-Status")
	}
	get()
	require.Contains(t, get(), "hit")

	var out bytes.Buffer
	start := time.Now()
	require.NoError(t, run(t.Context(), []string{"-seeds", b.GossipAddr(), "-settle", "20s", "-timeout", "30s", "http://img.example.com/a.gif"}, &out))
	assert.Contains(t, out.String(), "applied by 1 caches")
	assert.Contains(t, get(), "miss")
	t.Logf("%s(total %s)", out.String(), time.Since(start))

	assert.Error(t, run(t.Context(), []string{"-seeds", b.GossipAddr()}, &out))
}
