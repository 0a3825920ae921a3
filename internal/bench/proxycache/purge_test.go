package proxycachebench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/proxycache"
)

// originTransport answers every origin request in process with a small
// cacheable body.
type originTransport struct{}

func (originTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Cache-Control", "max-age=3600")
	_, _ = rec.WriteString("image bytes")
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// startBuses starts n members of bus/cluster on loopback and waits until
// each sees the others.
func startBuses(b *testing.B, n int) []*cluster.Bus {
	quiet := slog.New(slog.DiscardHandler)
	var buses []*cluster.Bus
	var seed string
	for i := range n {
		cfg := cluster.LANConfig()
		cfg.Logger = quiet
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		bb, err := cluster.New(fmt.Sprintf("cache%d", i), cfg)
		require.NoError(b, err)
		b.Cleanup(func() { _ = bb.Close() })
		if seed == "" {
			seed = bb.GossipAddr()
		}
		buses = append(buses, bb)
	}
	return buses
}

func waitMembers(b *testing.B, ok func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatal("members did not merge")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func report(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

// BenchmarkClusterPurge measures a purge across three caches over
// bus/cluster on loopback, from the call to "applied by every member"
// (PurgeWaitAll), and reports p50 and p99. Each purged URL is cached on
// every member first (not timed), so each purge removes three entries
// from disk. The "bus" case is the floor under it in the same run: one
// message out to the three members at FIFO level and one answer back from
// each at Reliable level, the exchange a purge with PurgeWaitAll makes.
func BenchmarkClusterPurge(b *testing.B) {
	b.Run("purge", benchPurge)
	b.Run("bus", func(b *testing.B) {
		buses := startBuses(b, 3)
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		var groups []bus.Group
		for _, bb := range buses {
			g, err := bb.Join(ctx, "floor")
			require.NoError(b, err)
			groups = append(groups, g)
		}
		answers := make(chan string, 64)
		views := make(chan int, 64)
		done := make(chan struct{})
		for i, g := range groups {
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					ev, err := g.Recv(ctx)
					if err != nil {
						return
					}
					switch ev := ev.(type) {
					case *bus.View:
						views <- len(ev.Members)
					case *bus.Message:
						// The sender counts its own copy as applied; the
						// others answer it.
						if ev.Data[0] == 'Q' && ev.Sender != buses[i].Self() {
							_ = g.Send(ctx, bus.Reliable, append([]byte{'A'}, ev.Data[1:]...))
							continue
						}
						select {
						case answers <- strconv.Itoa(i) + string(ev.Data[1:]):
						case <-ctx.Done():
							return
						}
					}
				}
			}()
		}
		full := 0
		waitMembers(b, func() bool {
			for {
				select {
				case n := <-views:
					if n == 3 {
						full++
					}
				default:
					return full >= 3
				}
			}
		})
		var lat []time.Duration
		i := 0
		for b.Loop() {
			i++
			from := i % 3
			id := strconv.Itoa(i)
			start := time.Now()
			if err := groups[from].Send(ctx, bus.FIFO, []byte("Q"+id)); err != nil {
				b.Fatal(err)
			}
			// The sender's own copy and the two answers.
			got := 0
			for got < 3 {
				a := <-answers
				if a == strconv.Itoa(from)+id {
					got++
				}
			}
			lat = append(lat, time.Since(start))
		}
		report(b, lat)
		cancel()
		for range groups {
			<-done
		}
	})
}

// benchPurge times purges of cached URLs.
func benchPurge(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	origin, _ := url.Parse("http://origin.internal")
	var caches []*proxycache.Cache
	for _, bb := range startBuses(b, 3) {
		c, err := proxycache.New(b.TempDir(), map[string]*url.URL{"img.example.com": origin},
			proxycache.Config{Bus: bb, PurgeWaitAll: true, Logger: quiet, Transport: originTransport{}})
		require.NoError(b, err)
		b.Cleanup(func() { _ = c.Close() })
		caches = append(caches, c)
	}
	waitMembers(b, func() bool {
		for _, c := range caches {
			if c.Stats().ClusterMembers < 3 {
				return false
			}
		}
		return true
	})
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		u := fmt.Sprintf("http://img.example.com/%d.gif", i)
		b.StopTimer()
		for _, c := range caches {
			w := httptest.NewRecorder()
			c.ServeHTTP(w, httptest.NewRequest("GET", u, nil))
			if w.Code != http.StatusOK {
				b.Fatalf("fill: %d", w.Code)
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := caches[i%3].PurgeURL(b.Context(), u); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	for _, c := range caches {
		if st := c.Stats(); st.Objects != 0 {
			b.Fatalf("%d objects left after the purges", st.Objects)
		}
	}
	report(b, lat)
}
