package proxycache_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/proxycache"
)

// handlerTransport serves origin requests in process, without sockets, so
// tests can run inside a testing/synctest bubble.
type handlerTransport struct {
	h     http.Handler
	calls atomic.Int64
}

func (t *handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.calls.Add(1)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

var originURL = &url.URL{Scheme: "http", Host: "origin.internal"}

// newCache returns a Cache for host "www.example.com" in front of h.
func newCache(t testing.TB, h http.HandlerFunc, cfg proxycache.Config) (*proxycache.Cache, *handlerTransport, string) {
	t.Helper()
	tr := &handlerTransport{h: h}
	cfg.Transport = tr
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	dir := t.TempDir()
	c, err := proxycache.New(dir, map[string]*url.URL{"www.example.com": originURL}, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c, tr, dir
}

type result struct {
	code   int
	body   string
	header http.Header
}

// get sends one request to h and returns what a client would see.
func do(t testing.TB, h http.Handler, method, target string, hdr ...string) result {
	t.Helper()
	r := httptest.NewRequest(method, "http://www.example.com"+target, nil)
	r.RemoteAddr = "127.0.0.1:4000"
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, err := io.ReadAll(w.Result().Body)
	require.NoError(t, err)
	return result{w.Code, string(b), w.Result().Header}
}

func httptestRequest(method, target string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "127.0.0.1:4000"
	return r
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// synctestYield lets other goroutines of a synctest bubble run.
func synctestYield() { runtime.Gosched() }

var quiet = slog.New(slog.DiscardHandler)
