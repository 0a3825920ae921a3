package logpubbench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/handlers"
	"github.com/peerscale/peerscale/logpub"
	"golang.org/x/sys/unix"
)

var body = []byte("<html><body>hello, world</body></html>\n")

func site() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func request() *http.Request {
	r := httptest.NewRequest("GET", "/articles/2024/scalable-internet-architectures.html?page=2&lang=en", nil)
	r.RemoteAddr = "203.0.113.77:51812"
	r.Header.Set("Referer", "https://www.example.com/search?q=spread+toolkit")
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
	return r
}

func handlersUnderTest() map[string]http.Handler {
	return map[string]http.Handler{
		"none":    site(),
		"gorilla": handlers.CombinedLoggingHandler(io.Discard, site()),
		"logpub": logpub.Middleware(logpub.NewWriterSink(io.Discard, logpub.MustCompile(logpub.CombinedFormat)),
			logpub.HandlerConfig{ServerName: "bench"})(site()),
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMiddleware serves one request through each handler: none (the
// bare handler), gorilla/handlers' CombinedLoggingHandler and logpub's
// Middleware with a WriterSink in the combined format, both writing to
// io.Discard.
func BenchmarkMiddleware(b *testing.B) {
	hs := handlersUnderTest()
	for _, name := range []string{"none", "gorilla", "logpub"} {
		b.Run(name, func(b *testing.B) {
			h, r, w := hs[name], request(), &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			c0 := processCPU()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
			b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkOverheadRatio alternates rounds of the three handlers within
// each iteration on one locked OS thread and times them in thread CPU time,
// so that machine noise hits all of them alike. It reports each logger's
// overhead over the bare handler and the ratio gorilla/logpub (target: at
// least 4).
func BenchmarkOverheadRatio(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hs := handlersUnderTest()
	names := []string{"none", "gorilla", "logpub"}
	var total [3]time.Duration
	r, w := request(), &discardWriter{h: http.Header{}}
	const round = 500
	rounds := 0
	for b.Loop() {
		for i, name := range names {
			h := hs[name]
			t0 := threadCPU()
			for range round {
				h.ServeHTTP(w, r)
			}
			total[i] += threadCPU() - t0
		}
		rounds++
	}
	n := float64(rounds * round)
	base := float64(total[0]) / n
	g := float64(total[1])/n - base
	l := float64(total[2])/n - base
	b.ReportMetric(g, "gorilla-overhead-cpu-ns")
	b.ReportMetric(l, "logpub-overhead-cpu-ns")
	if l > 0 {
		b.ReportMetric(g/l, "ratio")
	}
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
