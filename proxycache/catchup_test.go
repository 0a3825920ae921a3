package proxycache_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/proxycache"
)

// fill makes every member fetch paths once and checks they are stored.
func fill(t *testing.T, ms []*member, paths ...string) {
	t.Helper()
	for _, m := range ms {
		for _, p := range paths {
			do(t, m.c, "GET", p)
		}
		require.Equal(t, len(paths), m.c.Stats().Objects)
	}
}

// requireHit checks that m answers p from its cache with body want.
func requireHit(t *testing.T, m *member, p, want string) {
	t.Helper()
	r := do(t, m.c, "GET", p)
	assert.Equal(t, want, r.body, "%s on %s", p, m.b.Self())
	assert.Contains(t, r.header.Get("Cache-Status"), "hit", "%s on %s", p, m.b.Self())
}

func TestJoinKeepsEveryCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		synctest.Wait()
		fill(t, []*member{a, b}, "/x", "/img/y")
		fetches := origin.fetches.Load()

		c := startMember(t, hub, "c", t.TempDir(), origin)
		synctest.Wait()
		for _, m := range []*member{a, b} {
			requireHit(t, m, "/x", "0")
			requireHit(t, m, "/img/y", "0")
			assert.Zero(t, m.c.Stats().CatchUpFailures)
		}
		assert.Equal(t, fetches, origin.fetches.Load(), "a join costs no origin fetch")
		assert.Zero(t, origin.checks.Load(), "nor a revalidation")

		// Purges keep working with the newcomer.
		origin.bump("/x")
		require.NoError(t, c.c.PurgeURL(t.Context(), "http://www.example.com/x"))
		assert.Equal(t, "1", do(t, a.c, "GET", "/x").body)
		for _, m := range []*member{a, b, c} {
			m.stop(t)
		}
		require.NoError(t, hub.Close())
	})
}

func TestRestartCatchesUpOnWhatItMissed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		c := startMember(t, hub, "c", t.TempDir(), origin)
		synctest.Wait()
		fill(t, []*member{a, b, c}, "/x", "/img/y", "/img/z", "/w")
		time.Sleep(5 * time.Minute)

		a.stop(t)
		time.Sleep(time.Minute)
		origin.bump("/x")
		require.NoError(t, c.c.PurgeURL(t.Context(), "http://www.example.com/x"))
		origin.bump("/img/y")
		origin.bump("/img/z")
		require.NoError(t, b.c.PurgePrefix(t.Context(), "http://www.example.com/img/"))
		time.Sleep(time.Minute)

		fetches := origin.fetches.Load()
		a = startMember(t, hub, "a", a.dir, origin)
		synctest.Wait()
		st := a.c.Stats()
		assert.Equal(t, 1, st.Objects, "the store came back from disk without what was purged meanwhile")
		assert.EqualValues(t, 1, st.CatchUps)
		assert.EqualValues(t, 2*2, st.MissedPurges, "two purges, from each of b and c")
		assert.Zero(t, st.CatchUpFailures)
		requireHit(t, a, "/w", "0")
		assert.Equal(t, fetches, origin.fetches.Load(), "what was not purged is still served from the cache")
		assert.Equal(t, "1", do(t, a.c, "GET", "/x").body)
		assert.Equal(t, "1", do(t, a.c, "GET", "/img/y").body)
		assert.Equal(t, "1", do(t, a.c, "GET", "/img/z").body)
		for _, m := range []*member{b, c} {
			requireHit(t, m, "/w", "0")
		}
		for _, m := range []*member{a, b, c} {
			m.stop(t)
		}
		require.NoError(t, hub.Close())
	})
}

func TestPartitionHealKeepsBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		a := startMember(t, hub, "a", t.TempDir(), origin)
		b := startMember(t, hub, "b", t.TempDir(), origin)
		c := startMember(t, hub, "c", t.TempDir(), origin)
		ms := []*member{a, b, c}
		synctest.Wait()
		fill(t, ms, "/x", "/y", "/z")
		time.Sleep(10 * time.Second)

		hub.Partition([]*inproc.Bus{a.b}, []*inproc.Bus{b.b, c.b})
		synctest.Wait()
		time.Sleep(10 * time.Second)
		origin.bump("/x")
		require.NoError(t, b.c.PurgeURL(t.Context(), "http://www.example.com/x"))
		origin.bump("/y")
		require.NoError(t, a.c.PurgeURL(t.Context(), "http://www.example.com/y"))
		assert.Equal(t, "1", do(t, a.c, "GET", "/y").body)
		time.Sleep(10 * time.Second)
		fetches := origin.fetches.Load()

		hub.Heal()
		synctest.Wait()
		for _, m := range ms {
			st := m.c.Stats()
			assert.Equal(t, 3, st.ClusterMembers)
			assert.Zero(t, st.CatchUpFailures)
			assert.Positive(t, st.MissedPurges, "%s learnt the other side's purges", m.b.Self())
			requireHit(t, m, "/z", "0")
		}
		assert.Equal(t, fetches, origin.fetches.Load(), "the heal cost no fetch")
		for _, m := range ms {
			assert.Equal(t, "1", do(t, m.c, "GET", "/x").body, "%s", m.b.Self())
			assert.Equal(t, "1", do(t, m.c, "GET", "/y").body, "%s", m.b.Self())
		}
		requireHit(t, a, "/y", "1") // a's own fill after its purge stayed
		for _, m := range ms {
			m.stop(t)
		}
		require.NoError(t, hub.Close())
	})
}

// TestCatchUpBeyondLogRevalidates: when the others' logs no longer reach
// back far enough, the entries fetched before are revalidated with the
// origin, not deleted.
func TestCatchUpBeyondLogRevalidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		origin := &versioned{v: map[string]int{}}
		cfg := proxycache.Config{PurgeLog: 2}
		a := startMemberConfig(t, hub, "a", t.TempDir(), origin, cfg)
		b := startMemberConfig(t, hub, "b", t.TempDir(), origin, cfg)
		ms := []*member{a, b}
		synctest.Wait()
		paths := []string{"/p0", "/p1", "/p2", "/p3", "/keep"}
		fill(t, ms, paths...)
		time.Sleep(10 * time.Second)

		hub.Partition([]*inproc.Bus{a.b}, []*inproc.Bus{b.b})
		synctest.Wait()
		for i := range 4 {
			p := fmt.Sprintf("/p%d", i)
			origin.bump(p)
			require.NoError(t, b.c.PurgeURL(t.Context(), "http://www.example.com"+p))
			time.Sleep(time.Second)
		}
		fetches, checks := origin.fetches.Load(), origin.checks.Load()
		hub.Heal()
		synctest.Wait()
		st := a.c.Stats()
		assert.EqualValues(t, 1, st.CatchUpFailures, "b's log of 2 could not vouch for the partition")
		assert.EqualValues(t, 2, st.MissedPurges)
		assert.Equal(t, 3, st.Objects, "the two purges b still remembered were applied; the rest is kept")

		r := do(t, a.c, "GET", "/keep")
		assert.Equal(t, "0", r.body)
		assert.Contains(t, r.header.Get("Cache-Status"), "fwd=stale")
		assert.Equal(t, checks+1, origin.checks.Load(), "revalidated with a conditional request")
		requireHit(t, a, "/keep", "0")
		for i := range 4 {
			assert.Equal(t, "1", do(t, a.c, "GET", fmt.Sprintf("/p%d", i)).body)
		}
		assert.Equal(t, fetches+4, origin.fetches.Load())
		requireHit(t, b, "/keep", "0") // b had nothing to catch up on
		for _, m := range ms {
			m.stop(t)
		}
		require.NoError(t, hub.Close())
	})
}
