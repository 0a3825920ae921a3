package proxycache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/proxycache"
)

type articles struct {
	runs  atomic.Int64
	gate  chan struct{} // when non-nil, each run waits for it
	mu    sync.Mutex
	title map[string]string
}

func (a *articles) Generate(ctx context.Context, key string, w io.Writer) error {
	n := a.runs.Add(1)
	if a.gate != nil {
		select {
		case <-a.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.mu.Lock()
	t := a.title[key]
	a.mu.Unlock()
	_, err := fmt.Fprintf(w, "<h1>%s</h1><!-- run %d -->", t, n)
	return err
}

func (a *articles) set(key, title string) {
	a.mu.Lock()
	a.title[key] = title
	a.mu.Unlock()
}

func newPages(t *testing.T, gen proxycache.Generator, cfg proxycache.PageConfig) (*proxycache.PageCache, string) {
	t.Helper()
	dir := t.TempDir()
	cfg.Logger = quiet
	p, err := proxycache.NewPageCache(dir, gen, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p, dir
}

func TestPageCacheWriteThrough(t *testing.T) {
	leakcheck.Check(t)
	a := &articles{title: map[string]string{"items/12345.html": "Hello"}, gate: make(chan struct{})}
	p, dir := newPages(t, a, proxycache.PageConfig{})

	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := range bodies {
		wg.Go(func() { bodies[i] = do(t, p, "GET", "/items/12345.html").body })
	}
	require.Eventually(t, func() bool { return p.Stats().Coalesced == 49 }, time.Minute, time.Millisecond)
	close(a.gate)
	wg.Wait()
	for _, b := range bodies {
		require.Equal(t, "<h1>Hello</h1><!-- run 1 -->", b)
	}
	b, err := os.ReadFile(filepath.Join(dir, "items", "12345.html"))
	require.NoError(t, err)
	assert.Equal(t, bodies[0], string(b))
	r := do(t, p, "GET", "/items/12345.html")
	assert.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	assert.EqualValues(t, 1, a.runs.Load())

	a.set("items/12345.html", "Updated")
	require.NoError(t, p.Invalidate(t.Context(), "items/12345.html"))
	assert.Equal(t, "<h1>Updated</h1><!-- run 2 -->", do(t, p, "GET", "/items/12345.html").body)

	require.NoError(t, p.InvalidateAll(t.Context()))
	assert.NoFileExists(t, filepath.Join(dir, "items", "12345.html"))
	assert.Equal(t, "<h1>Updated</h1><!-- run 3 -->", do(t, p, "GET", "/items/12345.html").body)

	for _, bad := range []string{"/../etc/passwd", "/.tmp/x", "/a//b", "/items/.hidden"} {
		assert.Equal(t, http.StatusNotFound, do(t, p, "GET", bad).code, bad)
	}
	assert.ErrorIs(t, p.Invalidate(t.Context(), "../x"), proxycache.ErrBadKey)
	assert.Equal(t, http.StatusMethodNotAllowed, do(t, p, "POST", "/items/12345.html").code)
}

func TestPageGeneratedBeforeInvalidationIsNotWritten(t *testing.T) {
	leakcheck.Check(t)
	a := &articles{title: map[string]string{"a.html": "old"}, gate: make(chan struct{})}
	p, _ := newPages(t, a, proxycache.PageConfig{})
	done := make(chan result)
	go func() { done <- do(t, p, "GET", "/a.html") }()
	require.Eventually(t, func() bool { return a.runs.Load() == 1 }, 5*time.Second, time.Millisecond)
	a.set("a.html", "new")
	require.NoError(t, p.Invalidate(t.Context(), "a.html"))
	close(a.gate)
	assert.Equal(t, "<h1>new</h1><!-- run 2 -->", (<-done).body)
	assert.EqualValues(t, 1, p.Stats().Discarded)
}

func TestPageInvalidationOverBus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		a := &articles{title: map[string]string{"x.html": "v1"}}
		var ps []*proxycache.PageCache
		for _, name := range []string{"web1", "web2", "web3"} {
			b, err := hub.NewMember(name)
			require.NoError(t, err)
			p, err := proxycache.NewPageCache(t.TempDir(), a, proxycache.PageConfig{Bus: b, WaitAll: true, Logger: quiet})
			require.NoError(t, err)
			ps = append(ps, p)
			defer b.Close()
			defer p.Close()
			synctest.Wait()
		}
		for _, p := range ps {
			assert.Contains(t, do(t, p, "GET", "/x.html").body, "v1")
		}
		a.set("x.html", "v2")
		require.NoError(t, ps[0].Invalidate(t.Context(), "x.html"))
		for _, p := range ps {
			assert.Contains(t, do(t, p, "GET", "/x.html").body, "v2")
		}
	})
}

func TestPageRestartCatchesUpOnWhatItMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		a := &articles{title: map[string]string{"x.html": "x1", "y.html": "y1"}}
		start := func(name, dir string) (*inproc.Bus, *proxycache.PageCache) {
			b, err := hub.NewMember(name)
			require.NoError(t, err)
			p, err := proxycache.NewPageCache(dir, a, proxycache.PageConfig{Bus: b, WaitAll: true, Logger: quiet})
			require.NoError(t, err)
			synctest.Wait()
			return b, p
		}
		b1, p1 := start("web1", t.TempDir())
		dir2 := t.TempDir()
		b2, p2 := start("web2", dir2)
		for _, p := range []*proxycache.PageCache{p1, p2} {
			do(t, p, "GET", "/x.html")
			do(t, p, "GET", "/y.html")
		}
		runs := a.runs.Load()
		time.Sleep(time.Minute)
		require.NoError(t, p2.Close())
		require.NoError(t, b2.Close())
		time.Sleep(time.Minute)
		a.set("x.html", "x2")
		require.NoError(t, p1.Invalidate(t.Context(), "x.html"))
		time.Sleep(time.Minute)

		b2, p2 = start("web2", dir2)
		assert.Contains(t, do(t, p2, "GET", "/y.html").body, "y1")
		assert.Equal(t, runs, a.runs.Load(), "y.html was kept")
		assert.Contains(t, do(t, p2, "GET", "/x.html").body, "x2", "x.html, invalidated meanwhile, was not")
		assert.Equal(t, runs+1, a.runs.Load())
		for _, c := range []io.Closer{p1, p2, b1, b2} {
			require.NoError(t, c.Close())
		}
		require.NoError(t, hub.Close())
	})
}
