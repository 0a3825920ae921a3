package skiplist

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkMap verifies every structural invariant of m: each level sorted and
// doubly linked, tails, level count and length.
func checkMap[K, V any](t testing.TB, m *Map[K, V]) {
	t.Helper()
	h := m.first()
	if h.height != maxLevel+1 || h.self != headID {
		t.Fatalf("head tower has %d levels, id %#x", h.height, h.self)
	}
	count := 0
	for i := range maxLevel {
		prev := h
		for x := h.at(i).next; x != 0; {
			e := m.a.ptr(x)
			if e.self != x {
				t.Fatalf("element %#x has id %#x", x, e.self)
			}
			if int(e.height) <= i {
				t.Fatalf("element at level %d with height %d", i, e.height)
			}
			if classOf(int(e.height)) != int(x>>classShift) {
				t.Fatalf("element of height %d in class %d", e.height, x>>classShift)
			}
			if e.owner() != m.a {
				t.Fatalf("element %#x not owned by the map's arena", x)
			}
			if e.at(i).prev != prev.self {
				t.Fatalf("bad prev link at level %d", i)
			}
			if m.cmp(prev.at(i).nkey, e.key) != 0 {
				t.Fatalf("stale next key at level %d: %v, next is %v", i, prev.at(i).nkey, e.key)
			}
			if prev != h && m.cmp(prev.key, e.key) >= 0 {
				t.Fatalf("out of order at level %d: %v then %v", i, prev.key, e.key)
			}
			prev = e
			if i == 0 {
				count++
			}
			x = e.at(i).next
		}
		if h.at(i).prev != prev.self {
			t.Fatalf("bad tail at level %d", i)
		}
		if i >= m.level && h.at(i).next != 0 {
			t.Fatalf("level %d above m.level %d in use", i, m.level)
		}
	}
	if m.level > 0 && h.at(m.level-1).next == 0 {
		t.Fatalf("top level %d empty", m.level)
	}
	if count != m.n {
		t.Fatalf("Len %d, counted %d", m.n, count)
	}
	used := 0
	for c := range m.a.cls {
		used += m.a.cls[c].used
	}
	if used != m.n {
		t.Fatalf("arena holds %d elements, Len %d", used, m.n)
	}
}

// model is a sorted slice of unique keys with values.
type model struct {
	keys []int
	vals map[int]int
}

func (md *model) set(k, v int) bool {
	i, found := slices.BinarySearch(md.keys, k)
	if !found {
		md.keys = slices.Insert(md.keys, i, k)
	}
	md.vals[k] = v
	return !found
}

func (md *model) del(k int) bool {
	i, found := slices.BinarySearch(md.keys, k)
	if found {
		md.keys = slices.Delete(md.keys, i, i+1)
		delete(md.vals, k)
	}
	return found
}

// ceil returns the index of the first key >= k.
func (md *model) ceil(k int) int {
	i, _ := slices.BinarySearch(md.keys, k)
	return i
}

func collect[K, V any](seq func(func(K, V) bool)) ([]K, []V) {
	var ks []K
	var vs []V
	for k, v := range seq {
		ks = append(ks, k)
		vs = append(vs, v)
	}
	return ks, vs
}

func (md *model) values(keys []int) []int {
	out := make([]int, 0, len(keys))
	for _, k := range keys {
		out = append(out, md.vals[k])
	}
	return out
}

// applyMapOp performs one operation, chosen by op, on both m and md and
// compares the results.
func applyMapOp(t testing.TB, m *Map[int, int], md *model, op byte, k, v int) {
	t.Helper()
	switch op % 12 {
	case 0, 1:
		e := m.Set(k, v)
		md.set(k, v)
		require.Equal(t, k, e.Key())
		require.Equal(t, v, e.Value())
	case 2:
		e, ok := m.Insert(k, v)
		_, had := md.vals[k]
		require.Equal(t, !had, ok, "Insert(%d) inserted", k)
		if !had {
			md.set(k, v)
		}
		require.Equal(t, md.vals[k], e.Value())
	case 3:
		got, ok := m.Delete(k)
		want, had := md.vals[k]
		require.Equal(t, had, ok, "Delete(%d)", k)
		require.Equal(t, want, got)
		md.del(k)
	case 4:
		got, ok := m.Get(k)
		want, had := md.vals[k]
		require.Equal(t, had, ok, "Get(%d)", k)
		require.Equal(t, want, got)
	case 5:
		e := m.PopFront()
		if len(md.keys) == 0 {
			require.Nil(t, e)
			return
		}
		require.NotNil(t, e)
		require.Equal(t, md.keys[0], e.Key())
		require.Nil(t, e.Next())
		require.False(t, m.Remove(e), "second Remove of a popped element")
		md.del(md.keys[0])
	case 6:
		e := m.PopBack()
		if len(md.keys) == 0 {
			require.Nil(t, e)
			return
		}
		require.NotNil(t, e)
		require.Equal(t, md.keys[len(md.keys)-1], e.Key())
		md.del(e.Key())
	case 7:
		e := m.Ceil(k)
		i := md.ceil(k)
		if i == len(md.keys) {
			require.Nil(t, e, "Ceil(%d)", k)
			return
		}
		require.NotNil(t, e, "Ceil(%d)", k)
		require.Equal(t, md.keys[i], e.Key(), "Ceil(%d)", k)
		// Walk one step each way.
		if i > 0 {
			require.Equal(t, md.keys[i-1], e.Prev().Key())
		} else {
			require.Nil(t, e.Prev())
		}
		if i+1 < len(md.keys) {
			require.Equal(t, md.keys[i+1], e.Next().Key())
		} else {
			require.Nil(t, e.Next())
		}
	case 8:
		e := m.Floor(k)
		i, found := slices.BinarySearch(md.keys, k)
		if found {
			i++
		}
		if i == 0 {
			require.Nil(t, e, "Floor(%d)", k)
			return
		}
		require.NotNil(t, e, "Floor(%d)", k)
		require.Equal(t, md.keys[i-1], e.Key(), "Floor(%d)", k)
	case 9:
		// Remove a known element found by Find.
		e := m.Find(k)
		_, had := md.vals[k]
		require.Equal(t, had, e != nil)
		require.Equal(t, had, m.Remove(e))
		md.del(k)
	case 10:
		// Append above the largest key (the tail fast path).
		if n := len(md.keys); n > 0 {
			k = md.keys[n-1] + 1 + k%3
		}
		_, ok := m.Insert(k, v)
		require.True(t, ok)
		md.set(k, v)
	case 11:
		lo, hi := k, k+v%20
		ks, vs := collect(m.Range(lo, hi))
		i, j := md.ceil(lo), md.ceil(hi)
		if j < i {
			j = i
		}
		want := md.keys[i:j]
		assert.Equal(t, len(want), len(ks), "Range(%d, %d)", lo, hi)
		if len(want) > 0 {
			require.Equal(t, want, ks)
			require.Equal(t, md.values(want), vs)
		}
	}
}

func checkAgainstModel(t testing.TB, m *Map[int, int], md *model) {
	t.Helper()
	checkMap(t, m)
	require.Equal(t, len(md.keys), m.Len())
	ks, vs := collect(m.All())
	if len(md.keys) == 0 {
		require.Empty(t, ks)
		require.Nil(t, m.Front())
		require.Nil(t, m.Back())
		return
	}
	require.Equal(t, md.keys, ks)
	require.Equal(t, md.values(md.keys), vs)
	bk, _ := collect(m.Backward())
	slices.Reverse(bk)
	require.Equal(t, md.keys, bk)
	require.Equal(t, md.keys[0], m.Front().Key())
	require.Equal(t, md.keys[len(md.keys)-1], m.Back().Key())
}

func TestMapModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		m := New[int, int]()
		md := &model{vals: map[int]int{}}
		keyRange := 10 + rng.IntN(500)
		for range 1500 {
			applyMapOp(t, m, md, byte(rng.IntN(256)), rng.IntN(keyRange), rng.IntN(1000))
			checkAgainstModel(t, m, md)
		}
	}
}

func TestMapLarge(t *testing.T) {
	m := New[int, int]()
	md := &model{vals: map[int]int{}}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 20000 {
		k := rng.IntN(1 << 20)
		m.Set(k, i)
		md.set(k, i)
	}
	for range 5000 {
		k := rng.IntN(1 << 20)
		_, ok := m.Delete(k)
		require.Equal(t, md.del(k), ok)
	}
	checkAgainstModel(t, m, md)
	for m.Len() > 0 {
		require.Equal(t, md.keys[0], m.PopFront().Key())
		md.del(md.keys[0])
	}
	checkMap(t, m)
	assert.Equal(t, 0, m.level, "levels left in use in an empty map")
}

func TestMapIncreasingAppend(t *testing.T) {
	m := New[int64, int64]()
	for i := range int64(10000) {
		_, ok := m.Insert(i, -i)
		require.True(t, ok)
	}
	checkMap(t, m)
	for i := range int64(10000) {
		v, ok := m.Get(i)
		require.True(t, ok)
		require.Equal(t, -i, v)
	}
}

func TestMapMutateDuringIteration(t *testing.T) {
	m := New[int, string]()
	for i := range 10 {
		m.Set(i*10, "v")
	}
	var seen []int
	for k := range m.All() {
		seen = append(seen, k)
		m.Delete(k)      // the current element
		m.Delete(k + 10) // and the next one
		if k == 40 {
			m.Set(45, "new") // inserted ahead of the cursor: visited
			m.Set(5, "old")  // inserted behind the cursor: not visited
		}
	}
	assert.Equal(t, []int{0, 20, 40, 45, 60, 80}, seen)
	ks, _ := collect(m.All())
	assert.Equal(t, []int{5}, ks)

	for i := range 10 {
		m.Set(i*10, "v")
	}
	seen = nil
	for k := range m.Backward() {
		seen = append(seen, k)
		m.Delete(k)
		m.Delete(k - 10)
	}
	assert.Equal(t, []int{90, 70, 50, 30, 10, 5}, seen)
	assert.Equal(t, 0, m.Len())
}

func TestMapIteratorsRestartAndStop(t *testing.T) {
	m := New[int, int]()
	for i := range 5 {
		m.Set(i, i*i)
	}
	all := m.All()
	a, _ := collect(all)
	b, _ := collect(all)
	assert.Equal(t, a, b, "an iterator can be ranged over twice")

	var got []int
	for k := range m.Ascend(2) {
		got = append(got, k)
		if k == 3 {
			break
		}
	}
	assert.Equal(t, []int{2, 3}, got)
	got = nil
	for k := range m.Descend(2) {
		got = append(got, k)
	}
	assert.Equal(t, []int{2, 1, 0}, got)
	ks, _ := collect(m.Range(1, 1))
	assert.Empty(t, ks)
	ks, _ = collect(m.Range(3, 1))
	assert.Empty(t, ks)
}

func TestMapNewFunc(t *testing.T) {
	m := NewFunc[string, int](func(a, b string) int {
		return strings.Compare(strings.ToLower(a), strings.ToLower(b))
	})
	m.Set("b", 1)
	m.Set("A", 2)
	m.Set("B", 3) // same key as "b" under this order
	ks, vs := collect(m.All())
	assert.Equal(t, []string{"A", "b"}, ks)
	assert.Equal(t, []int{2, 3}, vs)
	assert.Panics(t, func() { NewFunc[int, int](nil) })
}

func TestMapClear(t *testing.T) {
	m := New[int, int]()
	for i := range 100 {
		m.Set(i, i)
	}
	m.Clear()
	checkMap(t, m)
	assert.Equal(t, 0, m.Len())
	assert.Nil(t, m.Front())
	m.Set(1, 1)
	checkMap(t, m)
}

func TestMapHeightDistribution(t *testing.T) {
	m := New[int, int]()
	const n = 1 << 17
	hist := make([]int, maxLevel+1)
	for range n {
		hist[m.randomHeight()]++
	}
	// P(h > k) = p^k with p = promote/256.
	p := float64(promote) / 256
	above := n
	for k := 1; k <= 6; k++ {
		above -= hist[k]
		assert.InDelta(t, math.Pow(p, float64(k)), float64(above)/n, 0.01, "P(h > %d)", k)
	}
	assert.Zero(t, hist[0])
}

func TestMapOneAllocationPerInsert(t *testing.T) {
	m := New[int64, int64]()
	var k int64
	allocs := testing.AllocsPerRun(1000, func() {
		k += 7919
		m.Set(k%1000003, k)
	})
	assert.LessOrEqual(t, allocs, 1.0)
	allocs = testing.AllocsPerRun(1000, func() { m.Get(k % 1000003) })
	assert.Equal(t, 0.0, allocs)
}
