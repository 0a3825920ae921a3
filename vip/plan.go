package vip

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"slices"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// Holding is one virtual interface a member holds, with how long it has
// held it when it announced it (the age of its claim).
type Holding struct {
	VIF     string
	HeldFor time.Duration
}

// State is what one member announces about itself in a view: the input of
// the planner. Every member computes the same plan from the same States,
// whatever order they arrived in.
type State struct {
	// Member is the announcing member.
	Member bus.MemberID
	// Digest fingerprints the member's VIF list (see Digest). Only the
	// members that share the most common digest are eligible.
	Digest string
	// Mature is false while the member waits out Config.Mature after its
	// start; immature members acquire nothing.
	Mature bool
	// Draining is true once the member shuts down gracefully; draining
	// members hand their interfaces over and acquire nothing.
	Draining bool
	// Prefer lists the virtual interfaces the member prefers to own.
	Prefer []string
	// Holdings lists the virtual interfaces the member holds now.
	Holdings []Holding
	// Neighbors lists hosts found in the member's neighbour caches, shared
	// so that a new owner can refresh their caches directly (see
	// Config.ARPCache). The planner ignores it.
	Neighbors []netip.Addr `json:",omitempty"`
}

// holds reports whether s holds vif, and for how long.
func (s *State) holds(vif string) (time.Duration, bool) {
	for _, h := range s.Holdings {
		if h.VIF == vif {
			return h.HeldFor, true
		}
	}
	return 0, false
}

func (s *State) prefers(vif string) bool { return slices.Contains(s.Prefer, vif) }

// Conflict records a virtual interface that several eligible members held
// when a view started (typically after a partition healed). The Winner
// keeps it and announces it again; the Losers release it.
type Conflict struct {
	VIF    string
	Winner bus.MemberID
	Losers []bus.MemberID
}

// Assignment is the planner's output for one view.
type Assignment struct {
	// Owners maps every virtual interface to its owner. A VIF is absent
	// only when no member is eligible.
	Owners map[string]bus.MemberID
	// Eligible lists the eligible members in view order.
	Eligible []bus.MemberID
	// Conflicts lists the VIFs claimed by several eligible members, by VIF.
	Conflicts []Conflict
}

// Move reassigns one virtual interface. From is the zero MemberID when the
// interface had no owner.
type Move struct {
	VIF      string
	From, To bus.MemberID
}

// tieHash is the last tie-break between members for a VIF: stable across
// processes and spread evenly.
func tieHash(vif string, m bus.MemberID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(vif))
	h.Write([]byte{0})
	h.Write([]byte(m.String()))
	return h.Sum64()
}

// table indexes the States of the members of a view.
type table struct {
	members  []bus.MemberID
	states   map[bus.MemberID]*State
	eligible []bus.MemberID
	isElig   map[bus.MemberID]bool
}

func newTable(members []bus.MemberID, states []State) *table {
	t := &table{members: members, states: make(map[bus.MemberID]*State), isElig: make(map[bus.MemberID]bool)}
	inView := make(map[bus.MemberID]bool, len(members))
	for _, m := range members {
		inView[m] = true
	}
	for i := range states {
		s := &states[i]
		if !inView[s.Member] {
			continue
		}
		if old, dup := t.states[s.Member]; dup && compareStates(old, s) >= 0 {
			continue
		}
		t.states[s.Member] = s
	}
	// The most common digest wins; a tie goes to the oldest member's.
	count := make(map[string]int)
	for _, m := range members {
		if s, ok := t.states[m]; ok {
			count[s.Digest]++
		}
	}
	best, bestN := "", 0
	for _, m := range members {
		if s, ok := t.states[m]; ok && count[s.Digest] > bestN {
			best, bestN = s.Digest, count[s.Digest]
		}
	}
	for _, m := range members {
		if s, ok := t.states[m]; ok && s.Digest == best && s.Mature && !s.Draining {
			t.eligible = append(t.eligible, m)
			t.isElig[m] = true
		}
	}
	return t
}

// compareStates orders two States of one member so that duplicates are
// resolved the same way whatever their order.
func compareStates(a, b *State) int {
	return cmp.Or(
		cmp.Compare(len(a.Holdings), len(b.Holdings)),
		cmp.Compare(a.Digest, b.Digest),
		boolCmp(a.Mature, b.Mature),
		boolCmp(a.Draining, b.Draining),
	)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (t *table) prefers(m bus.MemberID, vif string) bool {
	s, ok := t.states[m]
	return ok && s.prefers(vif)
}

// pick chooses among candidates for vif: the least loaded, then one that
// prefers vif, then the smallest tie hash.
func (t *table) pick(vif string, candidates []bus.MemberID, load map[bus.MemberID]int) bus.MemberID {
	var preferring []bus.MemberID
	for _, m := range candidates {
		if t.prefers(m, vif) {
			preferring = append(preferring, m)
		}
	}
	if len(preferring) > 0 {
		candidates = preferring
	}
	return slices.MinFunc(candidates, func(a, b bus.MemberID) int {
		return cmp.Or(cmp.Compare(load[a], load[b]), cmp.Compare(tieHash(vif, a), tieHash(vif, b)))
	})
}

// Plan computes the assignment of the virtual interfaces vifs for a view
// whose members are members (in view order), from the States they
// announced for that view. It is a pure function: the order of states does
// not matter, and every member computes the same result.
//
// Eligible members are those whose State shares the most common digest
// (ties: the oldest member's), are mature and are not draining. Then:
//
//  1. A VIF held by eligible members stays with one of them: the oldest
//     claim (longest HeldFor), then the one that prefers it, then the
//     smallest hash of (VIF, member). Other claimants are Losers.
//  2. Every other VIF goes, in name order, to an eligible member that
//     prefers it if any, else to the least loaded (ties by hash).
//
// So when a member fails, only its interfaces move, and a balanced
// assignment stays balanced (max − min ≤ 1). States of non-members are
// ignored; of several States for one member the planner keeps one by a
// fixed rule.
func Plan(members []bus.MemberID, vifs []string, states []State) Assignment {
	t := newTable(members, states)
	names := slices.Clone(vifs)
	slices.Sort(names)
	names = slices.Compact(names)
	a := Assignment{Owners: make(map[string]bus.MemberID), Eligible: slices.Clone(t.eligible)}
	load := make(map[bus.MemberID]int)
	var orphans []string
	for _, vif := range names {
		var claimants []bus.MemberID
		for _, m := range t.eligible {
			if _, ok := t.states[m].holds(vif); ok {
				claimants = append(claimants, m)
			}
		}
		if len(claimants) == 0 {
			orphans = append(orphans, vif)
			continue
		}
		slices.SortFunc(claimants, func(x, y bus.MemberID) int {
			hx, _ := t.states[x].holds(vif)
			hy, _ := t.states[y].holds(vif)
			return cmp.Or(
				cmp.Compare(hy, hx), // oldest claim first
				-boolCmp(t.prefers(x, vif), t.prefers(y, vif)),
				cmp.Compare(tieHash(vif, x), tieHash(vif, y)),
			)
		})
		a.Owners[vif] = claimants[0]
		load[claimants[0]]++
		if len(claimants) > 1 {
			a.Conflicts = append(a.Conflicts, Conflict{VIF: vif, Winner: claimants[0], Losers: claimants[1:]})
		}
	}
	if len(t.eligible) == 0 {
		return a
	}
	for _, vif := range orphans {
		m := t.pick(vif, t.eligible, load)
		a.Owners[vif] = m
		load[m]++
	}
	return a
}

// Repair returns the moves that give every VIF of vifs without an eligible
// owner in owners (no owner, an owner that left, drains, or is not
// eligible) to an eligible member, chosen as Plan does for orphans. The
// leader runs it when States change within a view (a member matures or
// starts draining). It does not modify owners.
func Repair(members []bus.MemberID, vifs []string, states []State, owners map[string]bus.MemberID) []Move {
	t := newTable(members, states)
	if len(t.eligible) == 0 {
		return nil
	}
	names := slices.Clone(vifs)
	slices.Sort(names)
	names = slices.Compact(names)
	load := make(map[bus.MemberID]int)
	var orphans []string
	for _, vif := range names {
		if o, ok := owners[vif]; ok && t.isElig[o] {
			load[o]++
		} else {
			orphans = append(orphans, vif)
		}
	}
	var moves []Move
	for _, vif := range orphans {
		m := t.pick(vif, t.eligible, load)
		load[m]++
		moves = append(moves, Move{VIF: vif, From: owners[vif], To: m})
	}
	return moves
}

// Rebalance returns at most budget moves (all needed when budget ≤ 0)
// that bring owners, an assignment without orphans (see Repair), towards
// balance: first VIFs move to an eligible member that prefers them from an
// owner that does not; then, while the most and least loaded eligible
// members differ by more than one, a VIF the most loaded owner does not
// prefer moves to the least loaded, one the receiver prefers first. Each
// move is needed: without Prefer, the number of moves is the minimum that
// reaches max − min ≤ 1. It does not modify owners.
func Rebalance(members []bus.MemberID, vifs []string, states []State, owners map[string]bus.MemberID, budget int) []Move {
	t := newTable(members, states)
	if len(t.eligible) < 2 {
		return nil
	}
	names := slices.Clone(vifs)
	slices.Sort(names)
	names = slices.Compact(names)
	cur := make(map[string]bus.MemberID, len(names))
	load := make(map[bus.MemberID]int)
	for _, vif := range names {
		if o, ok := owners[vif]; ok && t.isElig[o] {
			cur[vif] = o
			load[o]++
		}
	}
	var moves []Move
	full := func() bool { return budget > 0 && len(moves) >= budget }
	move := func(vif string, to bus.MemberID) {
		from := cur[vif]
		load[from]--
		load[to]++
		cur[vif] = to
		moves = append(moves, Move{VIF: vif, From: from, To: to})
	}
	// Preferences first.
	for _, vif := range names {
		if full() {
			return moves
		}
		o, ok := cur[vif]
		if !ok || t.prefers(o, vif) {
			continue
		}
		var pref []bus.MemberID
		for _, m := range t.eligible {
			if t.prefers(m, vif) {
				pref = append(pref, m)
			}
		}
		if len(pref) > 0 {
			move(vif, t.pick(vif, pref, load))
		}
	}
	// Then balance: from the most loaded member that can give, to the
	// least loaded.
	byLoad := func(a, b bus.MemberID) int {
		return cmp.Or(cmp.Compare(load[a], load[b]), a.Compare(b))
	}
	for !full() {
		to := slices.MinFunc(t.eligible, byLoad)
		var from bus.MemberID
		var give []string
		donors := slices.Clone(t.eligible)
		slices.SortStableFunc(donors, func(a, b bus.MemberID) int { return byLoad(b, a) })
		for _, d := range donors {
			if load[d]-load[to] <= 1 {
				break
			}
			give = give[:0]
			for _, vif := range names {
				if cur[vif] == d && !t.prefers(d, vif) {
					give = append(give, vif)
				}
			}
			if len(give) > 0 {
				from = d
				break
			}
		}
		if from.IsZero() {
			return moves
		}
		vif := slices.MinFunc(give, func(x, y string) int {
			return cmp.Or(-boolCmp(t.prefers(to, x), t.prefers(to, y)), cmp.Compare(tieHash(x, to), tieHash(y, to)))
		})
		move(vif, to)
	}
	return moves
}
