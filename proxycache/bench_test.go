package proxycache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/proxycache"
)

// BenchmarkHit measures cache hits over loopback TCP, the path that uses
// sendfile, with http.FileServer on the same files for comparison.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{1 << 10, 10 << 10, 1 << 20} {
		body := strings.Repeat("x", size)
		origin := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=36000")
			io.WriteString(w, body)
		}
		dir := b.TempDir()
		c, err := proxycache.New(dir, map[string]*url.URL{"127.0.0.1": originURL},
			proxycache.Config{Transport: &handlerTransport{h: http.HandlerFunc(origin)}, Logger: quiet})
		require.NoError(b, err)
		front := httptest.NewServer(c)
		files := httptest.NewServer(http.FileServer(http.Dir(dir + "/127.0.0.1")))
		for _, tc := range []struct{ name, url string }{
			{"proxycache", front.URL + "/obj"},
			{"FileServer", files.URL + "/obj"},
		} {
			b.Run(fmt.Sprintf("%s/%dKiB", tc.name, size>>10), func(b *testing.B) {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
				get := func() {
					resp, err := client.Get(tc.url)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if n != int64(size) {
						b.Fatalf("got %d bytes", n)
					}
				}
				get() // fill
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					get()
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
		files.Close()
		front.Close()
		require.NoError(b, c.Close())
	}
}

// BenchmarkCollapsedMiss measures 500 concurrent misses on one key; the
// origin fetches per batch are reported (the target is 1).
func BenchmarkCollapsedMiss(b *testing.B) {
	h, n := counting("Cache-Control", "max-age=3600")
	c, _, _ := newCache(b, h, proxycache.Config{})
	i := 0
	for b.Loop() {
		i++
		path := fmt.Sprintf("/k%d", i)
		done := make(chan struct{}, 500)
		for range 500 {
			go func() {
				do(b, c, "GET", path)
				done <- struct{}{}
			}()
		}
		for range 500 {
			<-done
		}
	}
	b.ReportMetric(float64(n.Load())/float64(i), "origin-fetches/500-misses")
}

// nullWriter is the least a ResponseWriter can be: a header map reused
// across requests and a discarded body.
type nullWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) WriteHeader(code int)        { w.code = code }
func (w *nullWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// BenchmarkHitHandler measures the cache's own work for a hit served from
// memory (10 KiB), without net/http: lookup, freshness, header and body
// handed to the ResponseWriter.
func BenchmarkHitHandler(b *testing.B) {
	body := strings.Repeat("x", 10<<10)
	origin := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=36000")
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	}
	c, _, _ := newCache(b, origin, proxycache.Config{})
	r := httptestRequest("GET", "http://www.example.com/obj")
	w := &nullWriter{h: http.Header{}}
	for range 3 {
		c.ServeHTTP(w, r)
	}
	require.Contains(b, w.h.Get("Cache-Status"), "hit")
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		c.ServeHTTP(w, r)
		if w.n != len(body) {
			b.Fatalf("wrote %d bytes", w.n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/hit")
}
