package proxycache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/proxycache"
)

// counting answers with a body naming the request number.
func counting(hdr ...string) (http.HandlerFunc, *atomic.Int64) {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		for j := 0; j+1 < len(hdr); j += 2 {
			w.Header().Set(hdr[j], hdr[j+1])
		}
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		fmt.Fprintf(w, "body %d", i)
	}, &n
}

func TestHitAfterMiss(t *testing.T) {
	leakcheck.Check(t)
	h, n := counting("Cache-Control", "max-age=60", "Content-Type", "text/plain")
	c, _, dir := newCache(t, h, proxycache.Config{})

	r1 := do(t, c, "GET", "/logo.gif")
	assert.Equal(t, "body 1", r1.body)
	assert.Contains(t, r1.header.Get("Cache-Status"), "fwd=uri-miss")
	assert.Contains(t, r1.header.Get("Cache-Status"), "stored")
	r2 := do(t, c, "GET", "/logo.gif")
	assert.Equal(t, "body 1", r2.body)
	assert.Contains(t, r2.header.Get("Cache-Status"), "hit")
	assert.Equal(t, "text/plain", r2.header.Get("Content-Type"))
	assert.NotEmpty(t, r2.header.Get("Age"))
	assert.EqualValues(t, 1, n.Load())

	// The object is where an operator looks for it.
	b, err := os.ReadFile(filepath.Join(dir, "www.example.com", "logo.gif"))
	require.NoError(t, err)
	assert.Equal(t, "body 1", string(b))
	st := c.Stats()
	assert.EqualValues(t, 1, st.Hits)
	assert.EqualValues(t, 1, st.Misses)
	assert.EqualValues(t, 1, st.Stored)
	assert.Equal(t, 1, st.Objects)
}

func TestNotStored(t *testing.T) {
	cases := []struct {
		name string
		resp []string
		req  []string
	}{
		{"no-store", []string{"Cache-Control", "max-age=60, no-store"}, nil},
		{"private", []string{"Cache-Control", "private, max-age=60"}, nil},
		{"authorization", []string{"Cache-Control", "max-age=60"}, []string{"Authorization", "Basic eDp5"}},
		{"request no-store", []string{"Cache-Control", "max-age=60"}, []string{"Cache-Control", "no-store"}},
		{"vary star", []string{"Cache-Control", "max-age=60", "Vary", "*"}, nil},
		{"no freshness, no validator", []string{}, nil},
		{"Location only", []string{"Location", "/x"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, n := counting(tc.resp...)
			c, _, _ := newCache(t, h, proxycache.Config{})
			do(t, c, "GET", "/a", tc.req...)
			r := do(t, c, "GET", "/a", tc.req...)
			assert.Equal(t, "body 2", r.body)
			assert.EqualValues(t, 2, n.Load())
			assert.Equal(t, 0, c.Stats().Objects)
		})
	}
}

func TestAuthorizationWithPublicIsShared(t *testing.T) {
	h, n := counting("Cache-Control", "public, max-age=60")
	c, _, _ := newCache(t, h, proxycache.Config{})
	do(t, c, "GET", "/a", "Authorization", "Basic eDp5")
	r := do(t, c, "GET", "/a")
	assert.Equal(t, "body 1", r.body)
	assert.EqualValues(t, 1, n.Load())
}

func TestRevalidation304Merge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		h := func(w http.ResponseWriter, r *http.Request) {
			i := n.Add(1)
			w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("Etag", `"v1"`)
			w.Header().Set("X-Fetch", strconv.FormatInt(i, 10))
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			fmt.Fprint(w, "content")
		}
		c, _, _ := newCache(t, h, proxycache.Config{})
		do(t, c, "GET", "/a")
		time.Sleep(5 * time.Second)
		r := do(t, c, "GET", "/a")
		assert.Contains(t, r.header.Get("Cache-Status"), "hit")
		assert.Equal(t, "5", r.header.Get("Age"))
		time.Sleep(6 * time.Second)
		r = do(t, c, "GET", "/a")
		assert.Equal(t, "content", r.body)
		assert.Equal(t, "2", r.header.Get("X-Fetch"), "304 headers merged")
		assert.Contains(t, r.header.Get("Cache-Status"), "fwd-status=304")
		r = do(t, c, "GET", "/a")
		assert.Contains(t, r.header.Get("Cache-Status"), "hit")
		assert.EqualValues(t, 2, n.Load())
		assert.EqualValues(t, 1, c.Stats().NotModified)

		// The client's own conditional request is answered by the cache.
		r = do(t, c, "GET", "/a", "If-None-Match", `"v1"`)
		assert.Equal(t, http.StatusNotModified, r.code)
		assert.EqualValues(t, 2, n.Load())
	})
}

func TestRequestDirectives(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, n := counting("Cache-Control", "max-age=10")
		c, _, _ := newCache(t, h, proxycache.Config{})
		do(t, c, "GET", "/a")
		time.Sleep(4 * time.Second)
		assert.Equal(t, "body 1", do(t, c, "GET", "/a", "Cache-Control", "max-age=5").body)
		assert.Equal(t, "body 2", do(t, c, "GET", "/a", "Cache-Control", "max-age=3").body)
		assert.Equal(t, "body 3", do(t, c, "GET", "/a", "Cache-Control", "no-cache").body)
		assert.Equal(t, "body 4", do(t, c, "GET", "/a", "Pragma", "no-cache").body)
		assert.Equal(t, "body 5", do(t, c, "GET", "/a", "Cache-Control", "min-fresh=20").body)
		time.Sleep(15 * time.Second)
		assert.Equal(t, "body 5", do(t, c, "GET", "/a", "Cache-Control", "max-stale=10").body)
		assert.Equal(t, http.StatusGatewayTimeout, do(t, c, "GET", "/b", "Cache-Control", "only-if-cached").code)
		assert.EqualValues(t, 5, n.Load())
	})
}

func TestStaleWhileRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, n := counting("Cache-Control", "max-age=1, stale-while-revalidate=60")
		c, _, _ := newCache(t, h, proxycache.Config{})
		do(t, c, "GET", "/a")
		time.Sleep(5 * time.Second)
		r := do(t, c, "GET", "/a")
		assert.Equal(t, "body 1", r.body, "stale served at once")
		assert.Contains(t, r.header.Get("Cache-Status"), "fwd=stale")
		synctest.Wait()
		assert.EqualValues(t, 2, n.Load(), "revalidated in the background")
		assert.Equal(t, "body 2", do(t, c, "GET", "/a").body)
	})
}

func TestStaleIfErrorAndMustRevalidate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var fail atomic.Bool
		var cc atomic.Value
		cc.Store("max-age=1, stale-if-error=60")
		h := func(w http.ResponseWriter, r *http.Request) {
			if fail.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Cache-Control", cc.Load().(string))
			fmt.Fprint(w, "good")
		}
		c, _, _ := newCache(t, h, proxycache.Config{})
		do(t, c, "GET", "/a")
		cc.Store("max-age=1, must-revalidate")
		do(t, c, "GET", "/b")
		time.Sleep(5 * time.Second)
		fail.Store(true)
		r := do(t, c, "GET", "/a")
		assert.Equal(t, http.StatusOK, r.code)
		assert.Equal(t, "good", r.body)
		assert.Contains(t, r.header.Get("Cache-Status"), "stale-if-error")
		r = do(t, c, "GET", "/b", "Cache-Control", "stale-if-error=60")
		assert.Equal(t, http.StatusServiceUnavailable, r.code, "must-revalidate forbids stale")
	})
}

func TestVary(t *testing.T) {
	var n atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, "lang "+r.Header.Get("Accept-Language"))
	}
	c, _, _ := newCache(t, h, proxycache.Config{})
	assert.Equal(t, "lang fr", do(t, c, "GET", "/a", "Accept-Language", "fr").body)
	assert.Equal(t, "lang fr", do(t, c, "GET", "/a", "Accept-Language", "fr").body)
	r := do(t, c, "GET", "/a", "Accept-Language", "de")
	assert.Equal(t, "lang de", r.body)
	assert.Contains(t, r.header.Get("Cache-Status"), "vary-miss")
	assert.EqualValues(t, 2, n.Load())
}

func TestUnsafeMethodInvalidates(t *testing.T) {
	var n atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/other")
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "%s %d", r.URL.Path, i)
	}
	c, _, _ := newCache(t, h, proxycache.Config{})
	assert.Equal(t, "/a 1", do(t, c, "GET", "/a").body)
	assert.Equal(t, "/other 2", do(t, c, "GET", "/other").body)
	assert.Equal(t, http.StatusSeeOther, do(t, c, "POST", "/a").code)
	assert.Equal(t, "/a 4", do(t, c, "GET", "/a").body)
	assert.Equal(t, "/other 5", do(t, c, "GET", "/other").body, "Location invalidated too")
}

func TestHeadAndRange(t *testing.T) {
	h, n := counting("Cache-Control", "max-age=60", "Etag", `"e"`)
	c, _, _ := newCache(t, h, proxycache.Config{})
	r := do(t, c, "HEAD", "/a")
	assert.Equal(t, http.StatusOK, r.code)
	assert.Empty(t, r.body)
	assert.Equal(t, "6", r.header.Get("Content-Length"))
	r = do(t, c, "GET", "/a", "Range", "bytes=2-4")
	assert.Equal(t, http.StatusPartialContent, r.code)
	assert.Equal(t, "dy ", r.body)
	assert.Equal(t, "bytes 2-4/6", r.header.Get("Content-Range"))
	assert.EqualValues(t, 1, n.Load())
}

func TestUnknownHostRefused(t *testing.T) {
	h, n := counting()
	c, _, _ := newCache(t, h, proxycache.Config{})
	r := httptestRequest("GET", "http://evil.example.net/x")
	w := newRecorder()
	c.ServeHTTP(w, r)
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.EqualValues(t, 0, n.Load())
	assert.EqualValues(t, 1, c.Stats().Refused)
}

func TestReplacedBodyIsMiss(t *testing.T) {
	h, n := counting("Cache-Control", "max-age=60")
	c, _, dir := newCache(t, h, proxycache.Config{})
	do(t, c, "GET", "/img/a.gif?w=10")
	body := filepath.Join(dir, "www.example.com", "img", "a.gif%3Fw=10")
	require.FileExists(t, body)
	require.FileExists(t, body+"%m")
	// Replaced by hand with a file of the same size: a different inode.
	require.NoError(t, os.Remove(body))
	require.NoError(t, os.WriteFile(body, []byte("EVIL 1"), 0o644))
	r := do(t, c, "GET", "/img/a.gif?w=10")
	assert.Equal(t, "body 2", r.body)
	assert.Contains(t, r.header.Get("Cache-Status"), "stored")
	require.NoError(t, os.Remove(body))
	assert.Equal(t, "body 3", do(t, c, "GET", "/img/a.gif?w=10").body)
	assert.EqualValues(t, 3, n.Load())
}

func TestIndexRebuiltAtStart(t *testing.T) {
	h, n := counting("Cache-Control", "max-age=600")
	tr := &handlerTransport{h: h}
	dir := t.TempDir()
	origins := map[string]*url.URL{"www.example.com": originURL}
	c, err := proxycache.New(dir, origins, proxycache.Config{Transport: tr, Logger: quiet})
	require.NoError(t, err)
	do(t, c, "GET", "/a")
	do(t, c, "GET", "/b/")
	do(t, c, "GET", "/c")
	require.NoError(t, c.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, "www.example.com", "c")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "www.example.com", "orphan"), []byte("x"), 0o644))

	c, err = proxycache.New(dir, origins, proxycache.Config{Transport: tr, Logger: quiet})
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, 2, c.Stats().Objects)
	assert.Equal(t, "body 1", do(t, c, "GET", "/a").body)
	assert.Equal(t, "body 2", do(t, c, "GET", "/b/").body)
	assert.Equal(t, "body 4", do(t, c, "GET", "/c").body)
	assert.NoFileExists(t, filepath.Join(dir, "www.example.com", "orphan"))
	assert.EqualValues(t, 4, n.Load())
}

func TestMaxBytesEvictsLeastRecentlyUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := strings.Repeat("x", 4000)
		h := func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=600")
			fmt.Fprint(w, big)
		}
		c, _, _ := newCache(t, h, proxycache.Config{MaxBytes: 10000, MaxObjectSize: 5000})
		do(t, c, "GET", "/1")
		time.Sleep(2 * time.Second)
		do(t, c, "GET", "/2")
		time.Sleep(2 * time.Second)
		do(t, c, "GET", "/1") // /1 is now the most recently used
		time.Sleep(2 * time.Second)
		do(t, c, "GET", "/3")
		assert.Contains(t, do(t, c, "GET", "/1").header.Get("Cache-Status"), "hit")
		assert.Contains(t, do(t, c, "GET", "/2").header.Get("Cache-Status"), "miss")
		assert.Positive(t, c.Stats().Evictions)
		assert.LessOrEqual(t, c.Stats().StoreBytes, int64(10000))
	})
}

func TestInactiveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := counting("Cache-Control", "max-age=100000")
		c, _, _ := newCache(t, h, proxycache.Config{InactiveTimeout: time.Minute})
		do(t, c, "GET", "/a")
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		assert.Equal(t, 0, c.Stats().Objects)
	})
}

func TestCollapsedForwarding(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	var n atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "shared")
	}
	c, _, _ := newCache(t, h, proxycache.Config{})
	const clients = 500
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := range clients {
		wg.Go(func() { bodies[i] = do(t, c, "GET", "/hot").body })
	}
	require.Eventually(t, func() bool { return c.Stats().Coalesced == clients-1 }, time.Minute, time.Millisecond)
	close(release)
	wg.Wait()
	assert.EqualValues(t, 1, n.Load())
	for _, b := range bodies {
		require.Equal(t, "shared", b)
	}
}

func TestFillSurvivesLeaderLeaving(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "done")
	}
	c, tr, _ := newCache(t, h, proxycache.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		r := httptestRequest("GET", "http://www.example.com/x").WithContext(ctx)
		c.ServeHTTP(newRecorder(), r)
	}()
	require.Eventually(t, func() bool { return tr.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	var waiter result
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		waiter = do(t, c, "GET", "/x")
	}()
	require.Eventually(t, func() bool { return c.Stats().Coalesced == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	<-leaderDone
	close(release)
	<-waiterDone
	assert.Equal(t, "done", waiter.body)
	assert.EqualValues(t, 1, tr.calls.Load())
}

func TestPrivateAnswerReleasesWaiters(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "private, max-age=60")
		fmt.Fprint(w, "for "+r.Header.Get("X-User"))
	}
	c, tr, _ := newCache(t, h, proxycache.Config{})
	const clients = 20
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	for i := range clients {
		wg.Go(func() { bodies[i] = do(t, c, "GET", "/me", "X-User", strconv.Itoa(i)).body })
	}
	require.Eventually(t, func() bool { return c.Stats().Coalesced == clients-1 }, time.Minute, time.Millisecond)
	close(release)
	wg.Wait()
	for i, b := range bodies {
		assert.Equal(t, "for "+strconv.Itoa(i), b, "a private answer is never shared")
	}
	assert.EqualValues(t, clients, tr.calls.Load())
}

func TestCloseIsIdempotent(t *testing.T) {
	leakcheck.Check(t)
	h, _ := counting()
	c, _, _ := newCache(t, h, proxycache.Config{})
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.PurgeAll(t.Context()), proxycache.ErrClosed)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, c, "GET", "/a").code)
}

func TestHotBodyInMemoryStillChecksFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, n := counting("Cache-Control", "max-age=60")
		c, _, dir := newCache(t, h, proxycache.Config{})
		for range 4 {
			assert.Equal(t, "body 1", do(t, c, "GET", "/hot").body)
		}
		assert.Equal(t, "dy 1", do(t, c, "GET", "/hot", "Range", "bytes=2-").body, "ranges from memory")
		require.NoError(t, os.Remove(filepath.Join(dir, "www.example.com", "hot")))
		time.Sleep(time.Second)
		assert.Equal(t, "body 2", do(t, c, "GET", "/hot").body, "a body deleted by hand is a miss a second later")
		assert.EqualValues(t, 2, n.Load())

		// Replaced by hand: the same within a second.
		for range 3 {
			assert.Equal(t, "body 2", do(t, c, "GET", "/hot").body)
		}
		body := filepath.Join(dir, "www.example.com", "hot")
		require.NoError(t, os.Remove(body))
		require.NoError(t, os.WriteFile(body, []byte("EVIL 2"), 0o644))
		time.Sleep(time.Second)
		assert.Equal(t, "body 3", do(t, c, "GET", "/hot").body)
		assert.EqualValues(t, 3, n.Load())
	})
}

func TestShutdownLetsFillsFinish(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "late")
	}
	c, tr, _ := newCache(t, h, proxycache.Config{})
	got := make(chan result)
	go func() { got <- do(t, c, "GET", "/slow") }()
	require.Eventually(t, func() bool { return tr.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	shut := make(chan error)
	go func() { shut <- c.Shutdown(context.Background()) }()
	select {
	case <-shut:
		t.Fatal("Shutdown returned with a fill under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-shut)
	assert.Equal(t, "late", (<-got).body)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, c, "GET", "/slow").code)

	// A Shutdown whose ctx ends first still closes everything.
	c2, _, _ := newCache(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, proxycache.Config{})
	go do(t, c2, "GET", "/stuck")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.Eventually(t, func() bool { return c2.Stats().Fills == 1 }, 5*time.Second, time.Millisecond)
	assert.ErrorIs(t, c2.Shutdown(ctx), context.DeadlineExceeded)
}
