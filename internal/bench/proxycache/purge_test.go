package proxycachebench

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/proxycache"
)

// BenchmarkClusterPurge measures a purge across three caches over
// bus/cluster on loopback, from the call to "applied by every member"
// (PurgeWaitAll), and reports p50 and p99.
func BenchmarkClusterPurge(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	origin, _ := url.Parse("http://127.0.0.1:1")
	var caches []*proxycache.Cache
	var seed string
	for i := range 3 {
		cfg := cluster.LANConfig()
		cfg.Logger = quiet
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		bb, err := cluster.New(fmt.Sprintf("cache%d", i), cfg)
		require.NoError(b, err)
		defer bb.Close()
		if seed == "" {
			seed = bb.GossipAddr()
		}
		c, err := proxycache.New(b.TempDir(), map[string]*url.URL{"img.example.com": origin},
			proxycache.Config{Bus: bb, PurgeWaitAll: true, Logger: quiet, Transport: http.DefaultTransport})
		require.NoError(b, err)
		defer c.Close()
		caches = append(caches, c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for caches[0].Stats().ClusterMembers < 3 || caches[2].Stats().ClusterMembers < 3 {
		if time.Now().After(deadline) {
			b.Fatal("members did not merge")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if err := caches[i%3].PurgeURL(b.Context(), fmt.Sprintf("http://img.example.com/%d.gif", i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	_ = os.Stderr
}
