package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/logpub"
	"github.com/peerscale/peerscale/logsub"
	"github.com/stretchr/testify/require"
)

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPipeline runs the whole log path in one process: 2 logpub
// Publishers (journal on, AckQuorum 2) → 2 durable logsub Loggers (100 ms
// fsync), over bus/inproc and over bus/cluster on loopback. Each
// iteration logs one combined line; the clock stops once both loggers
// acknowledged every line. It reports lines/s, CPU per line (all
// goroutines: formatting, journal, bus, decoding, files, fsync) and lines
// per bus message.
func BenchmarkPipeline(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, impl := range []string{"inproc", "cluster"} {
		b.Run(impl, func(b *testing.B) {
			ctx := b.Context()
			var mk func(name string) bus.Bus
			switch impl {
			case "inproc":
				hub := inproc.New(inproc.Config{Logger: quiet})
				b.Cleanup(func() { hub.Close() })
				mk = func(name string) bus.Bus {
					m, err := hub.NewMember(name)
					require.NoError(b, err)
					return m
				}
			case "cluster":
				var seeds []string
				mk = func(name string) bus.Bus {
					cfg := cluster.LANConfig()
					cfg.Seeds, cfg.Logger = seeds, quiet
					m, err := cluster.New(name, cfg)
					require.NoError(b, err)
					b.Cleanup(func() { m.Close() })
					if seeds == nil {
						seeds = []string{m.GossipAddr()}
					}
					return m
				}
			}
			dir := b.TempDir()
			var loggers []*logsub.Logger
			for _, name := range []string{"logger-a", "logger-b"} {
				l, err := logsub.New(ctx, mk(name), []string{"www"},
					[]logsub.Output{{File: filepath.Join(dir, name, "access_log")}},
					logsub.Config{Name: name, Store: logsub.StoreConfig{StateFile: filepath.Join(dir, name, "state")}, Logger: quiet})
				require.NoError(b, err)
				b.Cleanup(func() { l.Close() })
				loggers = append(loggers, l)
			}
			var pubs []*logpub.Publisher
			for _, id := range []string{"web1", "web2"} {
				p, err := logpub.New(mk(id), "www", logpub.Config{ID: id, Dir: filepath.Join(dir, id), AckQuorum: 2, Block: time.Minute, Logger: quiet})
				require.NoError(b, err)
				b.Cleanup(func() { p.Close() })
				pubs = append(pubs, p)
			}
			time.Sleep(500 * time.Millisecond) // views settle
			reqs := make([]*http.Request, 1000)
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("http://www.example.com/page/%d?q=%d", i, i%7), nil)
				reqs[i].Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
				reqs[i].Header.Set("Referer", "https://search.example/")
			}
			b.ReportAllocs()
			cpu0 := processCPU()
			start := time.Now()
			i := 0
			for b.Loop() {
				now := time.Now()
				pubs[i&1].Log(&logpub.Entry{Request: reqs[i%len(reqs)], Status: 200, BodyBytes: 5120, Start: now, End: now})
				i++
			}
			var want, batches uint64
			for _, p := range pubs {
				p.Flush()
			}
			for _, p := range pubs {
				want += p.Stats().Records
			}
			deadline := time.Now().Add(5 * time.Minute)
			for {
				var acked uint64
				for _, p := range pubs {
					acked += p.Stats().Acked
				}
				if acked >= want {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("acknowledged %d of %d", acked, want)
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			cpu := processCPU() - cpu0
			var dropped, replayed, stalled uint64
			for _, p := range pubs {
				st := p.Stats()
				batches += st.Batches
				dropped += st.Dropped
				replayed += st.Replayed
				stalled += st.Stalled
			}
			b.ReportMetric(float64(want)/elapsed.Seconds(), "lines/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(max(want, 1)), "cpu-ns/line")
			b.ReportMetric(float64(want)/float64(max(batches, 1)), "lines/msg")
			b.ReportMetric(float64(dropped), "dropped")
			b.ReportMetric(float64(replayed), "replayed")
			b.ReportMetric(float64(stalled), "stalled")
		})
	}
}
