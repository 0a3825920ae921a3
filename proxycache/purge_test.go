package proxycache_test

import (
	"fmt"
	"math/rand/v2"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/proxycache"
)

func TestPurgeLocal(t *testing.T) {
	leakcheck.Check(t)
	h, n := counting("Cache-Control", "max-age=600")
	c, _, dir := newCache(t, h, proxycache.Config{})
	for _, p := range []string{"/img/a.gif", "/img/b.gif", "/img/sub/c.gif", "/imgx", "/css/site.css"} {
		do(t, c, "GET", p)
	}
	require.Equal(t, 5, c.Stats().Objects)

	require.NoError(t, c.PurgeURL(t.Context(), "http://www.example.com/img/a.gif"))
	assert.Equal(t, 4, c.Stats().Objects)
	assert.NoFileExists(t, filepath.Join(dir, "www.example.com", "img", "a.gif"))

	require.NoError(t, c.PurgePrefix(t.Context(), "http://www.example.com/img/"))
	assert.Equal(t, 2, c.Stats().Objects)
	assert.NoDirExists(t, filepath.Join(dir, "www.example.com", "img"))
	assert.Contains(t, do(t, c, "GET", "/imgx").header.Get("Cache-Status"), "hit")

	require.NoError(t, c.PurgeAll(t.Context()))
	assert.Equal(t, 0, c.Stats().Objects)
	assert.Contains(t, do(t, c, "GET", "/css/site.css").header.Get("Cache-Status"), "miss")
	assert.EqualValues(t, 6, n.Load())

	assert.ErrorIs(t, c.PurgeURL(t.Context(), "http://other.example.com/x"), proxycache.ErrBadPurge)
	assert.ErrorIs(t, c.PurgeURL(t.Context(), "/no-host"), proxycache.ErrBadPurge)
}

func TestFillBegunBeforePurgeIsNotStored(t *testing.T) {
	leakcheck.Check(t)
	release := make(chan struct{})
	var n atomic.Int64
	h := func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "v%d", n.Load())
	}
	c, tr, _ := newCache(t, h, proxycache.Config{})
	done := make(chan result)
	go func() { done <- do(t, c, "GET", "/a") }()
	require.Eventually(t, func() bool { return tr.calls.Load() == 1 }, 5e9, 1e6)
	require.NoError(t, c.PurgeURL(t.Context(), "http://www.example.com/a"))
	close(release)
	first := <-done
	assert.Equal(t, "v2", first.body, "an answer that raced a purge is fetched again")
	assert.Equal(t, 0, c.Stats().Objects, "and the one begun before the purge is not stored")
	r := do(t, c, "GET", "/a")
	assert.Equal(t, "v3", r.body)
	assert.Contains(t, r.header.Get("Cache-Status"), "stored")
}

func TestPurgeMethodAndAdmin(t *testing.T) {
	h, _ := counting("Cache-Control", "max-age=600")
	c, _, _ := newCache(t, h, proxycache.Config{Authorize: func(r *http.Request) bool {
		return r.Header.Get("X-Token") == "secret"
	}})
	do(t, c, "GET", "/a")
	do(t, c, "GET", "/d/b")
	assert.Equal(t, http.StatusForbidden, do(t, c, "PURGE", "/a").code)
	assert.Equal(t, 2, c.Stats().Objects)
	assert.Equal(t, http.StatusOK, do(t, c, "PURGE", "/a", "X-Token", "secret").code)
	assert.Equal(t, 1, c.Stats().Objects)
	assert.Equal(t, http.StatusOK, do(t, c, "PURGE", "/d/*", "X-Token", "secret").code)
	assert.Equal(t, 0, c.Stats().Objects)

	admin := c.AdminHandler()
	do(t, c, "GET", "/a")
	post := func(body string, hdr ...string) int {
		r := httptestRequest("POST", "http://admin/purge")
		r.Body = ioNopCloser(body)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := newRecorder()
		admin.ServeHTTP(w, r)
		return w.Code
	}
	assert.Equal(t, http.StatusForbidden, post(`{"all":true}`))
	assert.Equal(t, http.StatusBadRequest, post(`{"all":true,"url":"http://www.example.com/a"}`, "X-Token", "secret"))
	assert.Equal(t, http.StatusBadRequest, post(`{"url":"http://nope.example/a"}`, "X-Token", "secret"))
	assert.Equal(t, http.StatusBadRequest, post(`{"bogus":1}`, "X-Token", "secret"))
	assert.Equal(t, 1, c.Stats().Objects)
	assert.Equal(t, http.StatusOK, post(`{"url":"http://www.example.com/a"}`, "X-Token", "secret"))
	assert.Equal(t, 0, c.Stats().Objects)
}

// versioned is an origin whose content for each path has a version the test
// bumps before purging it.
type versioned struct {
	mu      sync.Mutex
	v       map[string]int
	fetches atomic.Int64 // full answers
	checks  atomic.Int64 // conditional requests answered 304
}

func (o *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	v := o.v[r.URL.Path]
	o.mu.Unlock()
	w.Header().Set("Cache-Control", "max-age=3600")
	etag := fmt.Sprintf(`"%d"`, v)
	w.Header().Set("Etag", etag)
	if r.Header.Get("If-None-Match") == etag {
		o.checks.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	o.fetches.Add(1)
	fmt.Fprintf(w, "%d", v)
}

func (o *versioned) bump(p string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.v[p]++
	return o.v[p]
}

type member struct {
	b   *inproc.Bus
	c   *proxycache.Cache
	dir string
}

func startMember(t *testing.T, hub *inproc.Hub, name, dir string, origin http.Handler) *member {
	t.Helper()
	return startMemberConfig(t, hub, name, dir, origin, proxycache.Config{})
}

func startMemberConfig(t *testing.T, hub *inproc.Hub, name, dir string, origin http.Handler, cfg proxycache.Config) *member {
	t.Helper()
	b, err := hub.NewMember(name)
	require.NoError(t, err)
	cfg.Transport, cfg.Bus, cfg.PurgeWaitAll, cfg.Logger = &handlerTransport{h: origin}, b, true, quiet
	c, err := proxycache.New(dir, map[string]*url.URL{"www.example.com": originURL}, cfg)
	require.NoError(t, err)
	return &member{b: b, c: c, dir: dir}
}

func (m *member) stop(t *testing.T) {
	require.NoError(t, m.c.Close())
	require.NoError(t, m.b.Close())
}

func TestClusterPurgeRandomInterleaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{Seed: 7})
		origin := &versioned{v: map[string]int{}}
		var ms []*member
		for i := range 3 {
			ms = append(ms, startMember(t, hub, "m"+strconv.Itoa(i), t.TempDir(), origin))
		}
		paths := []string{"/a", "/b", "/img/c", "/img/d"}
		var floor sync.Map // path -> lowest version a request may see
		for _, p := range paths {
			floor.Store(p, 0)
		}
		var wg sync.WaitGroup
		var stop atomic.Bool
		var checked atomic.Int64
		for r := range 6 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(r), 1))
				for !stop.Load() {
					p := paths[rng.IntN(len(paths))]
					min, _ := floor.Load(p)
					got := do(t, ms[rng.IntN(len(ms))].c, "GET", p)
					v, err := strconv.Atoi(got.body)
					require.NoError(t, err)
					if v < min.(int) {
						t.Errorf("%s: served version %d after the purge of version %d returned (%s)", p, v, min, got.header.Get("Cache-Status"))
					}
					checked.Add(1)
					synctestYield()
				}
			})
		}
		rng := rand.New(rand.NewPCG(99, 2))
		for range 200 {
			p := paths[rng.IntN(len(paths))]
			v := origin.bump(p)
			m := ms[rng.IntN(len(ms))]
			var err error
			switch rng.IntN(3) {
			case 0:
				err = m.c.PurgeURL(t.Context(), "http://www.example.com"+p)
			case 1:
				err = m.c.PurgePrefix(t.Context(), "http://www.example.com"+p[:strings.LastIndexByte(p, '/')+1])
			default:
				err = m.c.PurgePrefix(t.Context(), "http://www.example.com"+p)
			}
			require.NoError(t, err)
			floor.Store(p, v)
			synctestYield()
		}
		stop.Store(true)
		wg.Wait()
		assert.Greater(t, checked.Load(), int64(200))
		var hits uint64
		for _, m := range ms {
			hits += m.c.Stats().Hits
			m.stop(t)
		}
		assert.Positive(t, hits, "the cache was used between purges")
		require.NoError(t, hub.Close())
	})
}

func TestClusterMemberThatMissedPurges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		c := startMember(t, hub, "c", t.TempDir(), origin)
		synctest.Wait()
		for _, m := range []*member{a, b, c} {
			assert.Equal(t, "0", do(t, m.c, "GET", "/x").body)
		}

		// Partition: a misses a purge made on the other side.
		hub.Partition([]*inproc.Bus{a.b}, []*inproc.Bus{b.b, c.b})
		synctest.Wait()
		origin.bump("/x")
		require.NoError(t, b.c.PurgeURL(t.Context(), "http://www.example.com/x"))
		assert.Equal(t, "1", do(t, b.c, "GET", "/x").body)
		hub.Heal()
		synctest.Wait()
		assert.Equal(t, "1", do(t, a.c, "GET", "/x").body, "after the merge a never serves what was purged")

		// Restart: a's index comes back from disk, but purges happened
		// while it was down.
		assert.Equal(t, "1", do(t, a.c, "GET", "/x").body)
		a.stop(t)
		origin.bump("/x")
		require.NoError(t, c.c.PurgeURL(t.Context(), "http://www.example.com/x"))
		a = startMember(t, hub, "a", a.dir, origin)
		synctest.Wait()
		assert.Equal(t, "2", do(t, a.c, "GET", "/x").body)

		for _, m := range []*member{a, b, c} {
			m.stop(t)
		}
		require.NoError(t, hub.Close())
	})
}

func TestClusterPurgeWaitsForEveryMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		synctest.Wait()
		do(t, b.c, "GET", "/x")
		require.NoError(t, a.c.PurgeAll(t.Context()))
		// Returned: b has applied it already, no waiting needed.
		assert.Equal(t, 0, b.c.Stats().Objects)
		assert.Equal(t, 2, a.c.Stats().ClusterMembers)
		assert.Equal(t, 0, a.c.Stats().PendingPurges)
		a.stop(t)
		b.stop(t)
		require.NoError(t, hub.Close())
		_ = os.Getpid()
	})
}

func TestPurgerReachesEveryCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		pb, err := hub.NewMember("purge-cli")
		require.NoError(t, err)
		p, err := proxycache.NewPurger(pb, proxycache.PurgerConfig{WaitAll: true, Logger: quiet})
		require.NoError(t, err)
		synctest.Wait()
		assert.Equal(t, 3, p.Members())
		for _, m := range []*member{a, b} {
			do(t, m.c, "GET", "/img/x")
			do(t, m.c, "GET", "/y")
		}
		origin.bump("/img/x")
		require.NoError(t, p.PurgePrefix(t.Context(), "http://WWW.example.com:80/img/"))
		for _, m := range []*member{a, b} {
			assert.Equal(t, "1", do(t, m.c, "GET", "/img/x").body)
			assert.Contains(t, do(t, m.c, "GET", "/y").header.Get("Cache-Status"), "hit")
		}
		require.NoError(t, p.PurgeAll(t.Context()))
		assert.Equal(t, 0, a.c.Stats().Objects)
		assert.ErrorIs(t, p.PurgeURL(t.Context(), "not a url"), proxycache.ErrBadPurge)
		require.NoError(t, p.Close())
		require.NoError(t, p.Close())
		a.stop(t)
		b.stop(t)
		require.NoError(t, pb.Close())
		require.NoError(t, hub.Close())
	})
}

func TestUnsafeMethodInvalidatesClusterWide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		var n atomic.Int64
		origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i := n.Add(1)
			if r.Method == http.MethodPut {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Cache-Control", "max-age=600")
			fmt.Fprintf(w, "v%d", i)
		})
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		synctest.Wait()
		do(t, a.c, "GET", "/doc")
		do(t, b.c, "GET", "/doc")
		assert.Contains(t, do(t, b.c, "GET", "/doc").header.Get("Cache-Status"), "hit")
		assert.Equal(t, http.StatusNoContent, do(t, a.c, "PUT", "/doc").code)
		synctest.Wait()
		assert.Equal(t, "v4", do(t, b.c, "GET", "/doc").body, "b dropped its copy too")
		a.stop(t)
		b.stop(t)
		require.NoError(t, hub.Close())
	})
}
