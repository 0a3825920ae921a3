package vip

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
)

func mid(name string) bus.MemberID { return bus.MemberID{Name: name, Incarnation: 1} }

func vifNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("vif%02d", i)
	}
	return out
}

// holdingsOf turns an owner map into States (everyone mature, same digest).
func statesFrom(members []bus.MemberID, owners map[string]bus.MemberID, age time.Duration) []State {
	var out []State
	for _, m := range members {
		s := State{Member: m, Digest: "d", Mature: true}
		for _, vif := range slices.Sorted(maps.Keys(owners)) {
			if owners[vif] == m {
				s.Holdings = append(s.Holdings, Holding{VIF: vif, HeldFor: age})
			}
		}
		out = append(out, s)
	}
	return out
}

func loads(members []bus.MemberID, owners map[string]bus.MemberID) map[bus.MemberID]int {
	l := make(map[bus.MemberID]int)
	for _, m := range members {
		l[m] = 0
	}
	for _, o := range owners {
		if _, ok := l[o]; ok {
			l[o]++
		}
	}
	return l
}

func spread(members []bus.MemberID, owners map[string]bus.MemberID) int {
	l := loads(members, owners)
	lo, hi := -1, 0
	for _, n := range l {
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return hi - lo
}

func apply(owners map[string]bus.MemberID, moves []Move) map[string]bus.MemberID {
	out := maps.Clone(owners)
	for _, mv := range moves {
		out[mv.VIF] = mv.To
	}
	return out
}

// minMoves is the least number of moves that brings loads to max−min ≤ 1.
func minMoves(members []bus.MemberID, owners map[string]bus.MemberID) int {
	l := loads(members, owners)
	counts := slices.Collect(maps.Values(l))
	slices.Sort(counts)
	slices.Reverse(counts)
	n := len(owners)
	q, r := n/len(members), n%len(members)
	moves := 0
	for i, c := range counts {
		target := q
		if i < r {
			target++
		}
		moves += max(0, c-target)
	}
	return moves
}

func TestPlanColdStartCoversAndBalances(t *testing.T) {
	for n := 1; n <= 6; n++ {
		for k := 0; k <= 13; k++ {
			members := make([]bus.MemberID, n)
			var states []State
			for i := range members {
				members[i] = mid(fmt.Sprintf("m%d", i))
				states = append(states, State{Member: members[i], Digest: "d", Mature: true})
			}
			a := Plan(members, vifNames(k), states)
			require.Len(t, a.Owners, k, "n=%d k=%d", n, k)
			assert.LessOrEqual(t, spread(members, a.Owners), 1, "n=%d k=%d", n, k)
			assert.Empty(t, a.Conflicts)
		}
	}
}

func TestPlanProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := 1 + rng.IntN(7)
		k := rng.IntN(20)
		members := make([]bus.MemberID, n)
		for i := range members {
			members[i] = bus.MemberID{Name: fmt.Sprintf("m%d", i), Incarnation: rng.Uint64()}
		}
		vifs := vifNames(k)
		// Random holdings, with overlaps (as after a partition heals).
		var states []State
		for _, m := range members {
			s := State{Member: m, Digest: "d", Mature: rng.IntN(8) != 0, Draining: rng.IntN(10) == 0}
			if rng.IntN(6) == 0 {
				s.Digest = "other"
			}
			for _, v := range vifs {
				if rng.IntN(3) == 0 {
					s.Holdings = append(s.Holdings, Holding{VIF: v, HeldFor: time.Duration(rng.IntN(4)) * time.Second})
				}
				if rng.IntN(10) == 0 {
					s.Prefer = append(s.Prefer, v)
				}
			}
			states = append(states, s)
		}
		a := Plan(members, vifs, states)
		elig := make(map[bus.MemberID]bool)
		for _, m := range a.Eligible {
			elig[m] = true
		}
		for _, s := range states {
			if elig[s.Member] {
				require.True(t, s.Mature && !s.Draining, "trial %d: ineligible member eligible", trial)
			}
		}
		if len(a.Eligible) == 0 {
			require.Empty(t, a.Owners, "trial %d", trial)
			continue
		}
		// Coverage and one owner, always an eligible member.
		require.Len(t, a.Owners, k, "trial %d", trial)
		for vif, o := range a.Owners {
			require.True(t, elig[o], "trial %d: %s owned by ineligible %s", trial, vif, o)
		}
		// A VIF held by an eligible member stays with the oldest claim.
		for _, v := range vifs {
			var best time.Duration = -1
			for _, s := range states {
				if h, ok := s.holds(v); ok && elig[s.Member] {
					best = max(best, h)
				}
			}
			if best < 0 {
				continue
			}
			s := stateOf(states, a.Owners[v])
			h, ok := s.holds(v)
			require.True(t, ok, "trial %d: %s held by an eligible member moved", trial, v)
			require.Equal(t, best, h, "trial %d: %s not kept by the oldest claim", trial, v)
		}
		// Order independence.
		for range 3 {
			shuffled := slices.Clone(states)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			b := Plan(members, vifs, shuffled)
			require.Equal(t, a, b, "trial %d: plan depends on message order", trial)
		}
	}
}

func stateOf(states []State, m bus.MemberID) *State {
	for i := range states {
		if states[i].Member == m {
			return &states[i]
		}
	}
	return nil
}

func TestPlanFailureMovesOnlyTheFailedMembersVIFs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 500 {
		n := 2 + rng.IntN(6)
		k := rng.IntN(25)
		members := make([]bus.MemberID, n)
		for i := range members {
			members[i] = mid(fmt.Sprintf("m%d", i))
		}
		vifs := vifNames(k)
		var cold []State
		for _, m := range members {
			cold = append(cold, State{Member: m, Digest: "d", Mature: true})
		}
		before := Plan(members, vifs, cold).Owners
		dead := members[rng.IntN(n)]
		survivors := slices.DeleteFunc(slices.Clone(members), func(m bus.MemberID) bool { return m == dead })
		after := Plan(survivors, vifs, statesFrom(survivors, before, time.Second)).Owners
		for vif, o := range before {
			if o != dead {
				assert.Equal(t, o, after[vif], "trial %d: %s moved though its owner lives", trial, vif)
			} else {
				assert.NotEqual(t, dead, after[vif])
			}
		}
		assert.LessOrEqual(t, spread(survivors, after), 1, "trial %d", trial)
	}
}

func TestRebalanceMinimalMoves(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 1000 {
		n := 1 + rng.IntN(7)
		k := rng.IntN(30)
		members := make([]bus.MemberID, n)
		for i := range members {
			members[i] = mid(fmt.Sprintf("m%d", i))
		}
		vifs := vifNames(k)
		owners := make(map[string]bus.MemberID)
		for _, v := range vifs {
			owners[v] = members[rng.IntN(n)]
		}
		states := statesFrom(members, owners, time.Second)
		require.Empty(t, Repair(members, vifs, states, owners))
		moves := Rebalance(members, vifs, states, owners, 0)
		after := apply(owners, moves)
		assert.LessOrEqual(t, spread(members, after), 1, "trial %d", trial)
		assert.Len(t, moves, minMoves(members, owners), "trial %d: not the minimum number of moves", trial)
		// Rebalancing a balanced assignment moves nothing.
		assert.Empty(t, Rebalance(members, vifs, statesFrom(members, after, time.Second), after, 0))
		// A budget bounds each round, and rounds converge.
		cur := owners
		for round := 0; ; round++ {
			mv := Rebalance(members, vifs, statesFrom(members, cur, time.Second), cur, 2)
			require.LessOrEqual(t, len(mv), 2)
			if len(mv) == 0 {
				break
			}
			require.Less(t, round, k+1, "trial %d: rounds do not converge", trial)
			cur = apply(cur, mv)
		}
		assert.LessOrEqual(t, spread(members, cur), 1, "trial %d", trial)
	}
}

func TestJoinAndRebalance(t *testing.T) {
	a, b, c := mid("a"), mid("b"), mid("c")
	vifs := vifNames(9)
	p := Plan([]bus.MemberID{a, b}, vifs, []State{{Member: a, Digest: "d", Mature: true}, {Member: b, Digest: "d", Mature: true}})
	members := []bus.MemberID{a, b, c}
	states := statesFrom(members, p.Owners, time.Second)
	// The newcomer joins: nothing moves in the plan itself.
	q := Plan(members, vifs, states)
	assert.Equal(t, p.Owners, q.Owners)
	moves := Rebalance(members, vifs, states, q.Owners, 0)
	require.Len(t, moves, 3)
	for _, mv := range moves {
		assert.Equal(t, c, mv.To)
	}
}

func TestPartitionHeal(t *testing.T) {
	a, b, c, d := mid("a"), mid("b"), mid("c"), mid("d")
	vifs := vifNames(8)
	all := []bus.MemberID{a, b, c, d}
	var cold []State
	for _, m := range all {
		cold = append(cold, State{Member: m, Digest: "d", Mature: true})
	}
	before := Plan(all, vifs, cold).Owners
	// Partition {a,b} | {c,d}: each side takes the other side's VIFs.
	left := Plan([]bus.MemberID{a, b}, vifs, statesFrom([]bus.MemberID{a, b}, before, 10*time.Second)).Owners
	right := Plan([]bus.MemberID{c, d}, vifs, statesFrom([]bus.MemberID{c, d}, before, 10*time.Second)).Owners
	// Heal: each side held its original VIFs for 20 s, the taken ones for 10 s.
	var states []State
	for _, m := range all {
		s := State{Member: m, Digest: "d", Mature: true}
		for _, v := range vifs {
			side := left
			if m == c || m == d {
				side = right
			}
			if side[v] == m {
				age := 10 * time.Second
				if before[v] == m {
					age = 20 * time.Second
				}
				s.Holdings = append(s.Holdings, Holding{VIF: v, HeldFor: age})
			}
		}
		states = append(states, s)
	}
	healed := Plan(all, vifs, states)
	assert.Equal(t, before, healed.Owners, "the original owners win (oldest claim)")
	require.Len(t, healed.Conflicts, len(vifs))
	for _, cf := range healed.Conflicts {
		assert.Equal(t, before[cf.VIF], cf.Winner)
		require.Len(t, cf.Losers, 1)
	}
}

func TestPlanTieBreaks(t *testing.T) {
	a, b := mid("a"), mid("b")
	both := []bus.MemberID{a, b}
	// Same age: the member that prefers it wins.
	st := []State{
		{Member: a, Digest: "d", Mature: true, Holdings: []Holding{{"x", time.Second}}},
		{Member: b, Digest: "d", Mature: true, Prefer: []string{"x"}, Holdings: []Holding{{"x", time.Second}}},
	}
	assert.Equal(t, b, Plan(both, []string{"x"}, st).Owners["x"])
	// Older claim beats Prefer.
	st[0].Holdings[0].HeldFor = 2 * time.Second
	assert.Equal(t, a, Plan(both, []string{"x"}, st).Owners["x"])
	// Orphans go to the preferring member even when it is more loaded.
	st = []State{
		{Member: a, Digest: "d", Mature: true},
		{Member: b, Digest: "d", Mature: true, Prefer: []string{"x", "y"}},
	}
	p := Plan(both, []string{"x", "y"}, st)
	assert.Equal(t, b, p.Owners["x"])
	assert.Equal(t, b, p.Owners["y"])
	// Rebalance gives a preferred VIF to its preferring member.
	owners := map[string]bus.MemberID{"x": a, "y": a}
	st = []State{
		{Member: a, Digest: "d", Mature: true, Holdings: []Holding{{"x", time.Second}, {"y", time.Second}}},
		{Member: b, Digest: "d", Mature: true, Prefer: []string{"y"}},
	}
	assert.Equal(t, []Move{{VIF: "y", From: a, To: b}}, Rebalance(both, []string{"x", "y"}, st, owners, 0))
}

func TestPlanEligibility(t *testing.T) {
	a, b, c := mid("a"), mid("b"), mid("c")
	all := []bus.MemberID{a, b, c}
	// The most common digest wins; a's odd config makes it ineligible.
	st := []State{
		{Member: a, Digest: "odd", Mature: true, Holdings: []Holding{{"x", time.Hour}}},
		{Member: b, Digest: "d", Mature: true},
		{Member: c, Digest: "d", Mature: true},
	}
	p := Plan(all, []string{"x"}, st)
	assert.Equal(t, []bus.MemberID{b, c}, p.Eligible)
	assert.NotEqual(t, a, p.Owners["x"])
	// A tie goes to the oldest member's digest.
	p = Plan([]bus.MemberID{a, b}, []string{"x"}, st[:2])
	assert.Equal(t, []bus.MemberID{a}, p.Eligible)
	// Immature and draining members get nothing; Repair moves a draining
	// owner's VIFs.
	st = []State{
		{Member: a, Digest: "d", Mature: true, Draining: true},
		{Member: b, Digest: "d", Mature: false},
		{Member: c, Digest: "d", Mature: true},
	}
	p = Plan(all, []string{"x", "y"}, st)
	assert.Equal(t, map[string]bus.MemberID{"x": c, "y": c}, p.Owners)
	moves := Repair(all, []string{"x", "y"}, st, map[string]bus.MemberID{"x": a, "y": c})
	assert.Equal(t, []Move{{VIF: "x", From: a, To: c}}, moves)
}

func BenchmarkPlan(b *testing.B) {
	for _, size := range []struct{ members, vifs int }{{3, 8}, {8, 64}, {32, 256}} {
		b.Run(fmt.Sprintf("members=%d/vifs=%d", size.members, size.vifs), func(b *testing.B) {
			members := make([]bus.MemberID, size.members)
			for i := range members {
				members[i] = mid(fmt.Sprintf("m%d", i))
			}
			vifs := vifNames(size.vifs)
			var cold []State
			for _, m := range members {
				cold = append(cold, State{Member: m, Digest: "d", Mature: true})
			}
			owners := Plan(members, vifs, cold).Owners
			survivors := members[1:]
			states := statesFrom(survivors, owners, time.Second)
			b.ReportAllocs()
			for b.Loop() {
				Plan(survivors, vifs, states)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/plan")
		})
	}
}
