package proxycache_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/proxycache"
)

// TestHitsOverTCP serves hits through a real server on loopback, where
// bodies on disk go out with sendfile(2) and small hot ones from memory:
// same bytes and fields either way, for GET, HEAD, a range and a
// conditional request.
func TestHitsOverTCP(t *testing.T) {
	leakcheck.Check(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB: served from the file
	small := []byte("small body")                           // kept in memory once hot
	origin := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Etag", `"v1"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Path == "/big" {
			_, _ = w.Write(big)
			return
		}
		_, _ = w.Write(small)
	}
	c, _, _ := newCache(t, origin, proxycache.Config{})
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	client := srv.Client()
	get := func(method, path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		require.NoError(t, err)
		req.Host = "www.example.com"
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}
	for _, tc := range []struct {
		path string
		body []byte
	}{{"/big", big}, {"/small", small}} {
		t.Run(tc.path, func(t *testing.T) {
			_, b := get("GET", tc.path) // miss
			require.Equal(t, tc.body, b)
			for range 3 { // hits: the third one from memory for /small
				resp, b := get("GET", tc.path)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
				assert.Equal(t, strconv.Itoa(len(tc.body)), resp.Header.Get("Content-Length"))
				assert.Equal(t, "bytes", resp.Header.Get("Accept-Ranges"))
				assert.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
				assert.Equal(t, tc.body, b)
			}
			resp, b := get("HEAD", tc.path)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, int64(len(tc.body)), resp.ContentLength)
			assert.Empty(t, b)
			resp, b = get("GET", tc.path, "Range", "bytes=3-6")
			assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
			assert.Equal(t, tc.body[3:7], b)
			resp, b = get("GET", tc.path, "If-None-Match", `"v1"`)
			assert.Equal(t, http.StatusNotModified, resp.StatusCode)
			assert.Empty(t, b)
		})
	}
	srv.Close() // waits for the handlers, which count after answering
	st := c.Stats()
	assert.EqualValues(t, 2, st.Misses)
	assert.EqualValues(t, 2*(3+3), st.Hits)
}

// addingWriter adds a field to the header when it is written, as a
// wrapping middleware might.
type addingWriter struct{ http.ResponseWriter }

func (w addingWriter) WriteHeader(code int) {
	w.Header().Add("Cache-Status", "outer")
	w.ResponseWriter.WriteHeader(code)
}

func (w addingWriter) Write(b []byte) (int, error) { return w.ResponseWriter.Write(b) }

func TestPreparedHitHeaderIsNotShared(t *testing.T) {
	origin := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		_, _ = w.Write([]byte("body"))
	}
	c, _, _ := newCache(t, origin, proxycache.Config{})
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.ServeHTTP(addingWriter{w}, r) })
	for i := range 4 {
		r := do(t, wrapped, "GET", "/a")
		cs := r.header.Values("Cache-Status")
		require.Len(t, cs, 2, "answer %d: %q", i, cs)
		assert.Equal(t, "outer", cs[1])
		assert.Equal(t, []string{"a", "b"}, r.header.Values("X-Multi"))
		if i > 0 {
			assert.Contains(t, cs[0], "hit")
		}
	}
}
