package appcache_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/proxycache/appcache"
)

var quiet = slog.New(slog.DiscardHandler)

// db is the expensive query: it counts loads per key and returns the
// current version of the data.
type db struct {
	mu      sync.Mutex
	loads   map[string]int
	version atomic.Int64
}

func (d *db) Get(ctx context.Context, key string) ([]byte, error) {
	d.mu.Lock()
	d.loads[key]++
	d.mu.Unlock()
	return fmt.Appendf(nil, "%s@v%d", key, d.version.Load()), nil
}

func (d *db) total() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, v := range d.loads {
		n += v
	}
	return n
}

func TestClusterFillsOnceAndInvalidates(t *testing.T) {
	leakcheck.Check(t)
	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	d := &db{loads: map[string]int{}}
	var cs []*appcache.Cache
	for i := range 3 {
		var h atomic.Pointer[http.Handler]
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := h.Load(); p != nil {
				(*p).ServeHTTP(w, r)
			}
		}))
		defer srv.Close()
		b, err := hub.NewMember("web" + strconv.Itoa(i))
		require.NoError(t, err)
		defer b.Close()
		c, err := appcache.New("news", d, appcache.Config{SelfURL: srv.URL + "/_appcache", Bus: b, Logger: quiet})
		require.NoError(t, err)
		defer c.Close()
		handler := c.Handler()
		h.Store(&handler)
		cs = append(cs, c)
	}
	require.Eventually(t, func() bool {
		g := cs[0].Generation()
		for _, c := range cs {
			if c.Stats().Peers != 3 || c.Generation() != g || g == 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond, "members learn each other and one generation")

	ctx := t.Context()
	for round := range 3 {
		for _, c := range cs {
			for k := range 20 {
				v, err := c.Get(ctx, "article/"+strconv.Itoa(k))
				require.NoError(t, err)
				assert.Equal(t, "article/"+strconv.Itoa(k)+"@v0", string(v), "round %d", round)
			}
		}
	}
	assert.Equal(t, 20, d.total(), "each key loaded once in the whole cluster")
	var fetched uint64
	for _, c := range cs {
		fetched += c.Stats().PeerFetches
	}
	assert.Positive(t, fetched, "non-owners fetch from the owner")

	d.version.Store(1)
	require.NoError(t, cs[1].InvalidateAll(ctx))
	require.Eventually(t, func() bool {
		g := cs[1].Generation()
		return cs[0].Generation() == g && cs[2].Generation() == g
	}, 10*time.Second, time.Millisecond)
	for _, c := range cs {
		v, err := c.Get(ctx, "article/3")
		require.NoError(t, err)
		assert.Equal(t, "article/3@v1", string(v))
	}
	assert.Equal(t, 21, d.total())
}

func TestSingleMember(t *testing.T) {
	leakcheck.Check(t)
	d := &db{loads: map[string]int{}}
	c, err := appcache.New("single", d, appcache.Config{Logger: quiet})
	require.NoError(t, err)
	defer c.Close()
	for range 3 {
		v, err := c.Get(t.Context(), "q")
		require.NoError(t, err)
		assert.Equal(t, "q@v0", string(v))
	}
	assert.Equal(t, 1, d.total())
	d.version.Store(1)
	require.NoError(t, c.InvalidateAll(t.Context()))
	v, err := c.Get(t.Context(), "q")
	require.NoError(t, err)
	assert.Equal(t, "q@v1", string(v))
	require.NoError(t, c.Close())
	_, err = c.Get(t.Context(), "q")
	assert.ErrorIs(t, err, appcache.ErrClosed)
}
