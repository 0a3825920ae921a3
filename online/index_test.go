package online

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/skiplist"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// model is the brute-force specification of an Index.
type model struct {
	max    int // MaxUsers, 0 for none
	window int64
	cutoff int64
	seq    uint64
	users  map[string]mrec
}

type mrec struct {
	url string
	t   int64
	seq uint64
}

func newModel(window time.Duration) *model {
	return &model{window: window.Milliseconds(), cutoff: -1 << 63, users: map[string]mrec{}}
}

func (m *model) hit(user, url string, t int64) bool {
	if t <= m.cutoff {
		return false
	}
	if r, ok := m.users[user]; ok && t < r.t {
		return false
	}
	if _, ok := m.users[user]; !ok && m.max > 0 && len(m.users) >= m.max {
		oldest := ""
		for u, r := range m.users {
			if o, ok := m.users[oldest]; !ok || r.t < o.t || r.t == o.t && r.seq < o.seq {
				oldest = u
			}
		}
		delete(m.users, oldest)
	}
	m.seq++
	m.users[user] = mrec{url: url, t: t, seq: m.seq}
	return true
}

func (m *model) expire(now int64) int {
	m.cutoff = max(m.cutoff, now-m.window)
	n := 0
	for u, r := range m.users {
		if r.t <= m.cutoff {
			delete(m.users, u)
			n++
		}
	}
	return n
}

func (m *model) onURL(url string, limit int) []Visit {
	type kv struct {
		user string
		r    mrec
	}
	var all []kv
	for u, r := range m.users {
		if r.url == url {
			all = append(all, kv{u, r})
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.r.t, a.r.t); c != 0 {
			return c
		}
		return cmp.Compare(b.r.seq, a.r.seq)
	})
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	var out []Visit
	for _, e := range all {
		out = append(out, Visit{User: e.user, URL: url, Time: time.UnixMilli(e.r.t)})
	}
	return out
}

func (m *model) urls() map[string]int {
	c := map[string]int{}
	for _, r := range m.users {
		c[r.url]++
	}
	return c
}

// checkInvariants verifies the internal structure: the time order and
// every URL's order sorted and walkable both ways, and consistent with the
// maps. (Package skiplist's tests check the links at every level.)
func checkInvariants(t testing.TB, x *Index) {
	t.Helper()
	require.Equal(t, len(x.users), x.tab.Len(), "table length")
	require.Equal(t, len(x.users), x.Count(), "count")
	checkOrder(t, "time", x.byTime.Front(), x.byTime.Back(), x.byTime.Next, x.byTime.Prev, len(x.users), nil)
	total := 0
	for name, ul := range x.urls {
		require.Equal(t, name, ul.name)
		n := ul.users.Len()
		require.NotZero(t, n, "empty url list %q kept", name)
		checkOrder(t, name, x.byURL.Front(&ul.users), x.byURL.Back(&ul.users), x.byURL.Next, x.byURL.Prev, n, ul)
		total += n
	}
	require.Equal(t, len(x.users), total, "sum of url list lengths")
	for u, e := range x.users {
		r := e.Value()
		if e.Removed() || u != r.user || x.urls[r.url.name] != r.url {
			t.Fatalf("user %s: record %s on %s not consistent with the maps", u, r.user, r.url.name)
		}
	}
}

func checkOrder(t testing.TB, what string, front, back *skiplist.Entry[rec], next, prev func(*skiplist.Entry[rec]) *skiplist.Entry[rec], n int, ul *urlList) {
	t.Helper()
	var fwd []*skiplist.Entry[rec]
	var last *rec
	for e := front; e != nil; e = next(e) {
		r := e.Value()
		if last != nil && last.t > r.t {
			t.Fatalf("%s: %s (%d) before %s (%d)", what, last.user, last.t, r.user, r.t)
		}
		if ul != nil && r.url != ul {
			t.Fatalf("%s linked in list of %s but points to %s", r.user, ul.name, r.url.name)
		}
		last = &r
		fwd = append(fwd, e)
	}
	if len(fwd) != n {
		t.Fatalf("%s: %d linked, want %d", what, len(fwd), n)
	}
	i := len(fwd)
	for e := back; e != nil; e = prev(e) {
		i--
		if i < 0 || fwd[i] != e {
			t.Fatalf("%s: backward walk differs at %d", what, i)
		}
	}
	if i != 0 {
		t.Fatalf("%s: backward walk stops at %d", what, i)
	}
}

func TestIndexDifferential(t *testing.T) {
	type shape struct {
		users, urls int
		skew        int64 // max milliseconds a hit is late
		step        int64 // max clock advance per op
		tie         int64 // time granularity (forces equal times)
		max         int   // MaxUsers
	}
	shapes := map[string]shape{
		"few-users-many-moves": {users: 8, urls: 4, skew: 50, step: 20, tie: 1},
		"skewed":               {users: 200, urls: 20, skew: 5000, step: 30, tie: 1},
		"ties":                 {users: 50, urls: 3, skew: 100, step: 40, tie: 100},
		"one-hot-url":          {users: 500, urls: 1, skew: 300, step: 5, tie: 1},
		"window-edge":          {users: 100, urls: 10, skew: 2000, step: 300, tie: 10},
		"evictions":            {users: 100, urls: 6, skew: 500, step: 10, tie: 5, max: 20},
	}
	for name, sh := range shapes {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(8) {
				rng := rand.New(rand.NewPCG(seed, 99))
				window := time.Duration(500+rng.IntN(2000)) * time.Millisecond
				clk := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
				x := NewIndex(Config{Window: window, Now: clk.Now, MaxUsers: sh.max})
				m := newModel(window)
				m.max = sh.max
				for op := range 3000 {
					now := clk.t.UnixMilli()
					switch p := rng.IntN(100); {
					case p < 80:
						u := "u" + strconv.Itoa(rng.IntN(sh.users))
						url := "/p/" + strconv.Itoa(rng.IntN(sh.urls))
						ts := now - rng.Int64N(sh.skew+1)
						if rng.IntN(50) == 0 {
							ts = now - window.Milliseconds() - rng.Int64N(100) // already expired
						}
						if rng.IntN(50) == 0 {
							ts = now + rng.Int64N(1000) // from a clock ahead
						}
						ts -= ts % sh.tie
						want := m.hit(u, url, ts)
						got := x.Hit(u, url, time.UnixMilli(ts))
						require.Equal(t, want, got, "op %d hit %s %s %d", op, u, url, ts)
					case p < 90:
						clk.t = clk.t.Add(time.Duration(rng.Int64N(sh.step*10+1)) * time.Millisecond)
						if rng.IntN(20) == 0 {
							clk.t = clk.t.Add(-time.Second) // clock stepping back
						}
						want := m.expire(clk.t.UnixMilli())
						require.Equal(t, want, x.Expire(), "op %d expire", op)
					default:
						url := "/p/" + strconv.Itoa(rng.IntN(sh.urls+1))
						limit := rng.IntN(12)
						require.Equal(t, m.onURL(url, limit), x.OnURL(url, limit), "op %d onurl %s %d", op, url, limit)
					}
					clk.t = clk.t.Add(time.Duration(rng.Int64N(sh.step+1)) * time.Millisecond)
					require.Equal(t, len(m.users), x.Count(), "op %d count", op)
					if op%100 == 0 {
						compareAll(t, x, m, sh.users, sh.urls)
					}
				}
				compareAll(t, x, m, sh.users, sh.urls)
				if sh.max > 0 {
					require.NotZero(t, x.Stats().Evicted, "the trace evicts")
					require.LessOrEqual(t, x.Count(), sh.max)
				}
			}
		})
	}
}

func compareAll(t *testing.T, x *Index, m *model, users, urls int) {
	t.Helper()
	checkInvariants(t, x)
	for i := range users {
		u := "u" + strconv.Itoa(i)
		r, ok := m.users[u]
		v, got := x.Lookup(u)
		require.Equal(t, ok, got, "lookup %s", u)
		if ok {
			assert.Equal(t, Visit{User: u, URL: r.url, Time: time.UnixMilli(r.t)}, v)
		}
	}
	mu := m.urls()
	st := x.Stats()
	require.Equal(t, len(m.users), st.Users)
	require.Equal(t, len(mu), st.URLs)
	for i := range urls {
		url := "/p/" + strconv.Itoa(i)
		require.Equal(t, m.onURL(url, 0), x.OnURL(url, 0), "full list %s", url)
		require.Equal(t, mu[url], x.CountURL(url))
	}
}

func TestIndexOutOfOrderNeverReplacesNewer(t *testing.T) {
	clk := &fakeClock{t: time.UnixMilli(10_000_000)}
	x := NewIndex(Config{Window: time.Minute, Now: clk.Now})
	t0 := clk.t
	require.True(t, x.Hit("alice", "/new", t0))
	assert.False(t, x.Hit("alice", "/old", t0.Add(-time.Second)), "older hit applied")
	v, ok := x.Lookup("alice")
	require.True(t, ok)
	assert.Equal(t, "/new", v.URL)
	assert.Empty(t, x.OnURL("/old", 0))
	assert.True(t, x.Hit("alice", "/same-ms", t0), "a hit with the same time applies")
	st := x.Stats()
	assert.Equal(t, uint64(1), st.OutOfOrder)
	assert.Equal(t, uint64(2), st.Hits)
	assert.Equal(t, 1, st.URLs)
}

func TestIndexExpireAtWindowEdge(t *testing.T) {
	clk := &fakeClock{t: time.UnixMilli(10_000_000)}
	x := NewIndex(Config{Window: time.Minute, Now: clk.Now})
	start := clk.t
	x.Hit("a", "/", start)
	x.Hit("b", "/", start.Add(time.Millisecond))
	clk.t = start.Add(time.Minute - time.Millisecond)
	assert.Equal(t, 0, x.Expire())
	clk.t = start.Add(time.Minute)
	assert.Equal(t, 1, x.Expire(), "a hit exactly Window ago is offline")
	assert.Equal(t, 1, x.Count())
	assert.False(t, x.Hit("a", "/", start), "hit at the cutoff is stale")
	clk.t = start // clock steps back: the cutoff stays
	assert.Equal(t, 0, x.Expire())
	assert.False(t, x.Hit("a", "/", start))
	assert.Equal(t, uint64(2), x.Stats().Stale)
	assert.Equal(t, uint64(1), x.Stats().Expired)
}

func TestIndexDefaults(t *testing.T) {
	x := NewIndex(Config{})
	assert.Equal(t, DefaultWindow, x.Window())
	now := time.Now()
	x.Hit("a", "/", now.Add(-DefaultWindow-time.Second))
	x.Hit("b", "/", now)
	assert.Equal(t, 1, x.Expire())
	assert.Equal(t, []Visit{{User: "b", URL: "/", Time: time.UnixMilli(now.UnixMilli())}}, x.OnURL("/", 30))
}

func TestIndexHitBytesDoesNotRetainBuffers(t *testing.T) {
	x := NewIndex(Config{Window: time.Hour})
	buf := []byte("alice/home")
	ms := time.Now().UnixMilli()
	require.True(t, x.HitBytes(buf[:5], buf[5:], ms))
	copy(buf, "XXXXXXXXXX")
	v, ok := x.Lookup("alice")
	require.True(t, ok)
	assert.Equal(t, "/home", v.URL)
	assert.Equal(t, "alice", v.User)
	require.True(t, x.HitBytes([]byte("alice"), []byte("/home"), ms+1))
	require.True(t, x.HitBytes([]byte("alice"), []byte("/away"), ms+2))
	assert.Equal(t, 0, x.CountURL("/home"))
	assert.Equal(t, 1, x.CountURL("/away"))
	checkInvariants(t, x)
}

func TestIndexAppendOnURLReusesBuffer(t *testing.T) {
	x := NewIndex(Config{Window: time.Hour})
	now := time.Now()
	for i := range 50 {
		x.Hit(fmt.Sprint("u", i), "/hot", now.Add(time.Duration(i)*time.Millisecond))
	}
	buf := make([]Visit, 0, 30)
	allocs := testing.AllocsPerRun(100, func() {
		buf = x.AppendOnURL(buf[:0], "/hot", 30)
	})
	assert.Zero(t, allocs)
	require.Len(t, buf, 30)
	assert.Equal(t, "u49", buf[0].User)
	assert.Equal(t, "u20", buf[29].User)
}

func ExampleIndex() {
	start := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	now := start
	x := NewIndex(Config{Window: 30 * time.Minute, Now: func() time.Time { return now }})
	x.Hit("alice", "/index.html", start)
	x.Hit("bob", "/index.html", start.Add(time.Minute))
	x.Hit("carol", "/about.html", start.Add(2*time.Minute))
	x.Hit("alice", "/about.html", start.Add(3*time.Minute))
	x.Hit("bob", "/old.html", start) // late and older: ignored

	fmt.Println("online:", x.Count())
	for _, v := range x.OnURL("/about.html", 30) {
		fmt.Println(v.User, v.Time.Sub(start))
	}

	now = start.Add(31*time.Minute + 30*time.Second) // bob was last seen 30.5 minutes ago
	fmt.Println("expired:", x.Expire(), "online:", x.Count())
	// Output:
	// online: 3
	// alice 3m0s
	// carol 2m0s
	// expired: 1 online: 2
}

// TestIndexConcurrentUse runs writers, Expire and readers at once (for the
// race detector) and checks the structure afterwards.
func TestIndexConcurrentUse(t *testing.T) {
	var clock atomic.Int64
	clock.Store(1_000_000)
	x := NewIndex(Config{Window: 50 * time.Millisecond, Now: func() time.Time { return time.UnixMilli(clock.Load()) }})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := range 3000 {
				ms := clock.Add(1)
				x.HitBytes([]byte("u"+strconv.Itoa((w*7919+i)%300)), []byte("/p"+strconv.Itoa(i%5)), ms-int64(i%40))
			}
		})
	}
	wg.Go(func() {
		for range 2000 {
			x.Expire()
		}
	})
	wg.Go(func() {
		var buf []Visit
		for i := range 3000 {
			buf = x.AppendOnURL(buf[:0], "/p"+strconv.Itoa(i%5), 10)
			for j := 1; j < len(buf); j++ {
				if buf[j].Time.After(buf[j-1].Time) {
					t.Errorf("OnURL not newest first: %v", buf)
					return
				}
			}
			x.Lookup("u" + strconv.Itoa(i%300))
			_ = x.Count()
		}
	})
	wg.Wait()
	x.mu.Lock()
	defer x.mu.Unlock()
	checkInvariants(t, x)
}
