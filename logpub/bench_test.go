package logpub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/require"
)

// BenchmarkAppendLine measures the formatter alone (target: combined+%T
// at most 300 ns per line, 0 allocations).
func BenchmarkAppendLine(b *testing.B) {
	for _, bc := range []struct{ name, layout string }{
		{"common", CommonFormat},
		{"combined+T", CombinedFormat + " %T"},
		{"vhost_combined+D", VhostCombinedFormat + " %D"},
		{"strftime", `%h %{%Y-%m-%dT%H:%M:%S}t.%{msec_frac}t "%r" %>s %B`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := MustCompile(bc.layout)
			e := testEntry(b)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				buf = f.AppendLine(buf[:0], e)
			}
			cpu.report(b, b.N)
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkPublish measures Log into a Publisher on a bus/inproc hub with
// one logger draining the group and acknowledging (target: at least
// 500,000 lines/s). The lines/s metric counts until the logger holds every
// record.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name    string
		journal bool
	}{{"memory", false}, {"journal", true}} {
		b.Run(bc.name, func(b *testing.B) {
			hub := inproc.New(inproc.Config{})
			defer hub.Close()
			pb, err := hub.NewMember("web")
			require.NoError(b, err)
			lb, err := hub.NewMember("logger")
			require.NoError(b, err)
			g, err := lb.Join(b.Context(), "logs")
			require.NoError(b, err)
			cfg := Config{ID: "web", Format: MustCompile(CombinedFormat + " %T"), Block: time.Second, MaxMemory: 256 << 20}
			if bc.journal {
				cfg.Dir = b.TempDir()
			}
			p, err := New(pb, "logs", cfg)
			require.NoError(b, err)
			defer p.Close()

			var got atomic.Uint64
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan struct{})
			go func() {
				defer close(done)
				var next uint64 = 1
				for {
					ev, err := g.Recv(ctx)
					if err != nil {
						return
					}
					m, ok := ev.(*bus.Message)
					if !ok {
						continue
					}
					h, _, err := logwire.DecodeBatchHeader(m.Data)
					if err != nil || h.FirstSeq > next {
						panic(fmt.Sprintf("bad batch: %v %d>%d", err, h.FirstSeq, next))
					}
					if end := h.FirstSeq + uint64(h.Count); end > next {
						got.Add(end - next)
						next = end
						a := &logwire.Ack{Logger: "logger", Flags: logwire.AckDurable,
							Entries: []logwire.AckEntry{{Publisher: h.Publisher, Epoch: h.Epoch, Next: next}}}
						_ = lb.Send(ctx, "logs.ack", bus.FIFO, logwire.AppendAck(nil, a))
					}
				}
			}()
			e := testEntry(b)
			b.ReportAllocs()
			cpu := startCPU()
			start := time.Now()
			for b.Loop() {
				p.Log(e)
			}
			p.Flush()
			want := p.Stats().Records
			for got.Load() < want {
				time.Sleep(100 * time.Microsecond)
			}
			elapsed := time.Since(start)
			cpu.report(b, b.N)
			if used := processCPU() - cpu.start; used > 0 {
				b.ReportMetric(float64(b.N)/used.Seconds(), "lines/cpu-s")
			}
			cancel()
			<-done
			st := p.Stats()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "lines/s")
			b.ReportMetric(float64(st.Dropped), "dropped")
		})
	}
}

// BenchmarkLogLatency reports the latency of Publisher.Log on the request
// path (p50 and p99, target p99 at most 2 µs) with the flusher running.
func BenchmarkLogLatency(b *testing.B) {
	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	pb, _ := hub.NewMember("web")
	lb, _ := hub.NewMember("logger")
	g, _ := lb.Join(b.Context(), "logs")
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := g.Recv(ctx); err != nil {
				return
			}
		}
	}()
	p, err := New(pb, "logs", Config{ID: "web", AckQuorum: -1, Format: MustCompile(CombinedFormat + " %T")})
	require.NoError(b, err)
	e := testEntry(b)
	lat := make([]time.Duration, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		p.Log(e)
		if len(lat) < cap(lat) {
			lat = append(lat, time.Since(t0))
		}
	}
	require.NoError(b, p.Close())
	cancel()
	<-done
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	}
}

// BenchmarkMiddleware measures the middleware's overhead per request with
// a discarding sink and an empty handler.
func BenchmarkMiddleware(b *testing.B) {
	f := MustCompile(CombinedFormat + " %T")
	sink := SinkFunc(func(e *Entry) {})
	_ = f
	h := Middleware(sink, HandlerConfig{ServerName: "bench"})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(benchBody)
	}))
	r := httptest.NewRequest("GET", "/index.html", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
	cpu.report(b, b.N)
}

var benchBody = []byte("hello, world\n")

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
