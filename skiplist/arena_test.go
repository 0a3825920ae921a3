package skiplist

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestArenaLayout checks the invariants behind Element.at, arena.ptr and
// Element.owner: every height gets a slot with room for all its links in
// a chunk of its class, ids resolve to their elements across chunk
// boundaries, links do not overlap the element or each other, and the
// garbage collector keeps what keys and values point to. Run it with
// -race and with -gcflags=all=-d=checkptr, which verifies that each
// unsafe conversion stays inside its allocation.
func TestArenaLayout(t *testing.T) {
	m := New[string, *int]()
	a := m.a
	type placed struct {
		e   *Element[string, *int]
		h   int
		key string
		val int
	}
	var all []placed
	// Enough elements of every class to fill chunks of every length.
	for h := 1; h <= maxLevel; h++ {
		count := 20
		if h <= 2 {
			count = 600
		}
		for i := range count {
			key, val := fmt.Sprintf("k%d-%d", h, i), h*100000+i
			e := m.newElement(h, key, new(val))
			require.Equal(t, int32(h), e.height)
			require.Equal(t, classOf(h), int(e.self>>classShift), "class of height %d", h)
			require.NotZero(t, e.self)
			require.NotEqual(t, uint32(headID), e.self)
			all = append(all, placed{e, h, key, val})
		}
	}
	// Fill every link of every element with distinct values.
	for n, p := range all {
		for i := range p.h {
			*p.e.at(i) = link[string]{next: uint32(n), prev: uint32(i), nkey: strconv.Itoa(n*100 + i)}
		}
	}
	runtime.GC()
	seen := map[uint32]bool{}
	for n, p := range all {
		require.False(t, seen[p.e.self], "id %#x handed out twice", p.e.self)
		seen[p.e.self] = true
		require.Same(t, p.e, a.ptr(p.e.self))
		require.Same(t, a, p.e.owner())
		require.Equal(t, int32(p.h), p.e.height, "links overlapped the element")
		for i := range p.h {
			l := p.e.at(i)
			require.Equal(t, uint32(n), l.next)
			require.Equal(t, uint32(i), l.prev)
			require.Equal(t, strconv.Itoa(n*100+i), l.nkey)
		}
		require.Equal(t, p.key, p.e.key)
		require.Equal(t, p.val, *p.e.val)
	}
	// The head resolves to the Map's own tower.
	assert.Same(t, m.first(), a.ptr(headID))
	assert.Same(t, &m.head.links[maxLevel], m.first().at(maxLevel))
	// Chunks of every length were used: class 0 has 8 + 63 + 511 + 4095 slots.
	assert.Len(t, a.cls[0].chunks, 4)
}

// TestArenaReuse checks that freed slots are reused within their class and
// that an emptied map returns its chunks.
func TestArenaReuse(t *testing.T) {
	m := New[int64, int64]()
	for i := range int64(100) {
		m.Set(i, i)
	}
	slots := m.a.slots
	for range 200 {
		for i := range int64(50) {
			_, ok := m.Delete(i * 2)
			require.True(t, ok)
		}
		for i := range int64(50) {
			m.Set(i*2, -i)
		}
		checkMap(t, m)
	}
	// Freed slots are reused: the classes fill up to their peak
	// population, not one slot per insert (10,100 inserts here). Heights
	// are random, so a class's peak wanders above its first population;
	// twice the first total was exceeded about once in a hundred runs.
	assert.Less(t, m.a.slots, 4*slots, "chunks grew with the number of inserts")

	for i := range int64(1000) {
		m.Set(i, i)
	}
	old := m.a
	e := m.Find(500)
	for m.Len() > 0 {
		m.PopFront()
	}
	assert.NotSame(t, old, m.a, "an emptied large map keeps its arena")
	assert.Equal(t, int64(500), e.Key(), "removed element lost its key")
	assert.False(t, m.Remove(e))
	checkMap(t, m)
	m.Set(1, 1)
	checkMap(t, m)
}

// TestRemoveForeign checks that Remove refuses elements of another Map,
// elements from before Clear and removed elements.
func TestRemoveForeign(t *testing.T) {
	m1, m2 := New[int, int](), New[int, int]()
	e1 := m1.Set(1, 1)
	m2.Set(1, 1)
	assert.False(t, m2.Remove(e1))
	assert.Equal(t, 1, m2.Len())
	m1.Clear()
	assert.False(t, m1.Remove(e1))
	assert.Equal(t, 1, e1.Key())
	e := m1.Set(2, 2)
	assert.True(t, m1.Remove(e))
	assert.False(t, m1.Remove(e))
	assert.False(t, m1.Remove(nil))
	checkMap(t, m1)
	checkMap(t, m2)
}

// TestIterationSlotReuse deletes the element just yielded and inserts a
// key that takes its slot: iteration must continue after the yielded key.
func TestIterationSlotReuse(t *testing.T) {
	m := New[int, int]()
	for i := range 20 {
		m.Set(i*10, i)
	}
	var seen []int
	for k := range m.All() {
		seen = append(seen, k)
		if k == 50 {
			e := m.Find(50)
			h := e.height
			m.Delete(50)
			// Reuse the slot for a key behind the cursor (same class).
			for j := 1; ; j++ {
				if h == int32(m.randomHeightPeek()) {
					break
				}
				m.randomHeight()
				_ = j
			}
			e2 := m.Set(1, 1)
			require.Same(t, e, e2, "slot not reused")
		}
	}
	want := []int{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190}
	assert.Equal(t, want, seen)
}

// randomHeightPeek returns the height the next randomHeight will return.
func (m *Map[K, V]) randomHeightPeek() int {
	r := m.rng
	h := m.randomHeight()
	m.rng = r
	return h
}

// TestArenaRefillInAddressOrder checks that after a batch of removals the
// freed slots are handed out lowest id first: keys inserted in order then
// sit in ascending slots.
func TestArenaRefillInAddressOrder(t *testing.T) {
	m := New[int, int]()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, k := range rng.Perm(5000) {
		m.Set(k, k)
	}
	for range 2000 {
		m.PopFront()
	}
	last := map[uint32]uint32{} // class -> last id handed out
	for k := range 2000 {
		e := m.Set(k, k)
		c := e.self >> classShift
		if prev, ok := last[c]; ok {
			require.Greater(t, e.self, prev, "key %d", k)
		}
		last[c] = e.self
	}
	checkMap(t, m)
}
