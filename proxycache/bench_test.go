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
