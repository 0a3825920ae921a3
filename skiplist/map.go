package skiplist

import (
	"cmp"
	"iter"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// maxLevel bounds the height of a tower. With p = 1/2 a list of n
// elements uses about log2(n) levels; 32 levels serve 2^32 elements at
// full speed and any number correctly.
const maxLevel = 32

// link is one level of a tower: the neighbours at that level and a copy
// of the next element's key, so that a search compares without loading
// the next element and touches memory only for the elements it passes.
type link[K, V any] struct {
	next, prev *Element[K, V]
	nkey       K // next.key when next != nil
}

// Element is one key/value pair linked into a Map. Its tower of links
// follows it in the same allocation, so an insert costs one allocation.
//
// An Element stays valid after it is removed: Key and Value keep working,
// Next and Prev return nil.
type Element[K, V any] struct {
	key K
	val V
	// height is the number of links that follow the element in its
	// allocation (see tower): levels 0..height-1. The head sentinel of a
	// Map has maxLevel+1 links, which is how Prev recognises it. A
	// removed element has height 0.
	height int32
}

// tower is the memory layout of an element with n links. Every element
// is allocated as a tower of some n >= height, and the head sentinel of
// a Map is a tower of maxLevel+1, so the links of an element start at the
// same offset, linksOffset, whatever n is.
type tower[K, V any, L any] struct {
	e     Element[K, V]
	links L // [n]link[K, V]
}

// linksOffset is the offset of the first link from the start of an
// element in its tower.
func linksOffset[K, V any]() uintptr {
	var t tower[K, V, [1]link[K, V]]
	return unsafe.Offsetof(t.links)
}

// at returns the link of e at level i.
//
// Invariant: e was allocated as a tower of n > i links (newElement, or the
// head of a Map), so the address computed stays inside e's allocation and
// the garbage collector sees the link's pointers as part of it. Callers
// check i < e.height, or rely on e.height > i from the structure (an
// element is reached at level i only through a link at level i).
func (e *Element[K, V]) at(i int) *link[K, V] {
	var l link[K, V]
	return (*link[K, V])(unsafe.Add(unsafe.Pointer(e), linksOffset[K, V]()+uintptr(i)*unsafe.Sizeof(l)))
}

// Key returns the element's key.
func (e *Element[K, V]) Key() K { return e.key }

// Value returns the element's value.
func (e *Element[K, V]) Value() V { return e.val }

// SetValue replaces the element's value in place (no search).
func (e *Element[K, V]) SetValue(v V) { e.val = v }

// Next returns the element with the next larger key, or nil at the end or
// when e has been removed.
func (e *Element[K, V]) Next() *Element[K, V] {
	if e.height == 0 {
		return nil
	}
	return e.at(0).next
}

// Prev returns the element with the next smaller key, or nil at the front
// or when e has been removed.
func (e *Element[K, V]) Prev() *Element[K, V] {
	if e.height == 0 {
		return nil
	}
	p := e.at(0).prev
	if p.height > maxLevel {
		return nil // the head sentinel
	}
	return p
}

// Map is an ordered map from K to V on a skiplist: O(log n) expected
// Get, Set, Insert and Delete; O(1) expected Front, Back, PopFront,
// PopBack and appends of keys larger than every key present; Remove of a
// known element in O(height) without a search; ordered walks in both
// directions from any element.
//
// Each element is one allocation holding the key, the value, its height
// and its tower (p = 1/2, so 2 levels on average; a level is two pointers
// and a copy of the next key). On amd64 a Map[int64, int64] uses 76 bytes
// per element (measured).
//
// A Map is not safe for concurrent mutation: concurrent readers are fine,
// but a writer needs exclusive access (for example a sync.RWMutex). The zero
// Map is not usable; create one with New or NewFunc.
type Map[K, V any] struct {
	// head is the sentinel before the first element. Its link at level i
	// has next = the first element at level i and prev = the last one
	// (head itself when level i is empty).
	head  tower[K, V, [maxLevel + 1]link[K, V]]
	level int // number of levels in use
	n     int
	cmp   func(a, b K) int
	rng   uint64
	// find and seek are the searches: for cmp.Ordered keys (New) versions
	// that compare with the operators instead of calling cmp.
	find func(m *Map[K, V], k K) *Element[K, V]
	seek func(m *Map[K, V], k K, preds *[maxLevel]*Element[K, V]) (*Element[K, V], bool)
	// preds is the insertion point an insert fills: a field rather than a
	// local so that it does not escape through the seek call to the heap.
	preds [maxLevel]*Element[K, V]
}

// New returns an empty Map ordered by cmp.Compare on K.
func New[K cmp.Ordered, V any]() *Map[K, V] {
	m := NewFunc[K, V](cmp.Compare[K])
	m.find, m.seek = findOrdered[K, V], seekOrdered[K, V]
	return m
}

// NewFunc returns an empty Map ordered by compare, which must return a
// negative number, zero or a positive number as a < b, a == b or a > b and
// define a strict weak order. It panics if compare is nil.
func NewFunc[K, V any](compare func(a, b K) int) *Map[K, V] {
	if compare == nil {
		panic("skiplist: nil compare func")
	}
	m := &Map[K, V]{cmp: compare, rng: rand.Uint64() | 1}
	m.find, m.seek = findFunc[K, V], seekFunc[K, V]
	m.init()
	return m
}

func (m *Map[K, V]) init() {
	h := &m.head.e
	h.height = maxLevel + 1
	for i := range m.head.links {
		m.head.links[i] = link[K, V]{prev: h}
	}
	m.level = 0
	m.n = 0
}

// first returns the head sentinel as an element.
func (m *Map[K, V]) first() *Element[K, V] { return &m.head.e }

// Len returns the number of elements, in O(1).
func (m *Map[K, V]) Len() int { return m.n }

// Clear removes every element, in O(1). Elements obtained before keep
// their key and value but must not be passed to Remove.
func (m *Map[K, V]) Clear() { m.init() }

// randomHeight draws a tower height with P(h > k) = 2^-k.
func (m *Map[K, V]) randomHeight() int {
	x := m.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	m.rng = x
	return min(1+bits.TrailingZeros64(x), maxLevel)
}

// newElement allocates an element with a tower of h links in one
// allocation: exactly h links up to 8, rounded up above.
func newElement[K, V any](h int, k K, v V) *Element[K, V] {
	var e *Element[K, V]
	switch {
	case h == 1:
		e = &new(tower[K, V, [1]link[K, V]]).e
	case h == 2:
		e = &new(tower[K, V, [2]link[K, V]]).e
	case h == 3:
		e = &new(tower[K, V, [3]link[K, V]]).e
	case h == 4:
		e = &new(tower[K, V, [4]link[K, V]]).e
	case h <= 6:
		e = &new(tower[K, V, [6]link[K, V]]).e
	case h <= 8:
		e = &new(tower[K, V, [8]link[K, V]]).e
	case h <= 16:
		e = &new(tower[K, V, [16]link[K, V]]).e
	default:
		e = &new(tower[K, V, [maxLevel]link[K, V]]).e
	}
	e.key, e.val, e.height = k, v, int32(h)
	return e
}

// findFunc returns the element with key k, or nil.
func findFunc[K, V any](m *Map[K, V], k K) *Element[K, V] {
	x := m.first()
	for i := m.level - 1; i >= 0; i-- {
		for {
			l := x.at(i)
			if l.next == nil {
				break
			}
			c := m.cmp(l.nkey, k)
			if c < 0 {
				x = l.next
				continue
			}
			if c == 0 {
				return l.next
			}
			break
		}
	}
	return nil
}

// findOrdered is findFunc with the operators of an ordered K.
func findOrdered[K cmp.Ordered, V any](m *Map[K, V], k K) *Element[K, V] {
	x := m.first()
	for i := m.level - 1; i >= 0; i-- {
		for {
			l := x.at(i)
			if l.next == nil {
				break
			}
			if !cmp.Less(l.nkey, k) {
				if !cmp.Less(k, l.nkey) {
					return l.next
				}
				break
			}
			x = l.next
		}
	}
	return nil
}

// seekFunc fills preds with the last element before k at every level in
// use and returns the first element with key >= k (nil if none) and
// whether its key equals k.
func seekFunc[K, V any](m *Map[K, V], k K, preds *[maxLevel]*Element[K, V]) (*Element[K, V], bool) {
	h := m.first()
	// Appends: a key above the last key goes after the tails.
	if last := h.at(0).prev; last != h && m.cmp(last.key, k) < 0 {
		for i := range m.level {
			preds[i] = h.at(i).prev
		}
		return nil, false
	}
	x := h
	for i := m.level - 1; i >= 0; i-- {
		for {
			l := x.at(i)
			if l.next == nil || m.cmp(l.nkey, k) >= 0 {
				break
			}
			x = l.next
		}
		preds[i] = x
	}
	l := x.at(0)
	return l.next, l.next != nil && m.cmp(l.nkey, k) == 0
}

// seekOrdered is seekFunc with the operators of an ordered K.
func seekOrdered[K cmp.Ordered, V any](m *Map[K, V], k K, preds *[maxLevel]*Element[K, V]) (*Element[K, V], bool) {
	h := m.first()
	if last := h.at(0).prev; last != h && cmp.Less(last.key, k) {
		for i := range m.level {
			preds[i] = h.at(i).prev
		}
		return nil, false
	}
	x := h
	for i := m.level - 1; i >= 0; i-- {
		for {
			l := x.at(i)
			if l.next == nil || !cmp.Less(l.nkey, k) {
				break
			}
			x = l.next
		}
		preds[i] = x
	}
	l := x.at(0)
	return l.next, l.next != nil && !cmp.Less(k, l.nkey)
}

// link inserts e after preds at each level of its tower; levels at or
// above m.level have the head as predecessor.
func (m *Map[K, V]) link(e *Element[K, V], preds *[maxLevel]*Element[K, V]) {
	h := m.first()
	for i := range int(e.height) {
		p := h
		if i < m.level {
			p = preds[i]
		}
		pl := p.at(i)
		nx := pl.next
		*e.at(i) = link[K, V]{next: nx, prev: p, nkey: pl.nkey}
		pl.next, pl.nkey = e, e.key
		if nx == nil {
			h.at(i).prev = e
		} else {
			nx.at(i).prev = e
		}
	}
	m.level = max(m.level, int(e.height))
	m.n++
}

// unlink removes e from every level of its tower, in O(height), and
// clears its links so that a removed element keeps no neighbour alive.
func (m *Map[K, V]) unlink(e *Element[K, V]) {
	h := m.first()
	for i := range int(e.height) {
		l := e.at(i)
		pl := l.prev.at(i)
		pl.next, pl.nkey = l.next, l.nkey
		if l.next == nil {
			h.at(i).prev = l.prev
		} else {
			l.next.at(i).prev = l.prev
		}
		*l = link[K, V]{}
	}
	e.height = 0
	for m.level > 0 && h.at(m.level-1).next == nil {
		m.level--
	}
	m.n--
}

// Get returns the value stored under k and whether it was present.
func (m *Map[K, V]) Get(k K) (V, bool) {
	if e := m.find(m, k); e != nil {
		return e.val, true
	}
	var zero V
	return zero, false
}

// Find returns the element with key k, or nil.
func (m *Map[K, V]) Find(k K) *Element[K, V] { return m.find(m, k) }

// Set stores v under k, replacing the value of an existing element, and
// returns the element.
func (m *Map[K, V]) Set(k K, v V) *Element[K, V] {
	e, _ := m.insert(k, v, true)
	return e
}

// Insert adds k with value v if k is absent and returns the new element
// and true; if k is present it changes nothing and returns the existing
// element and false.
func (m *Map[K, V]) Insert(k K, v V) (*Element[K, V], bool) {
	return m.insert(k, v, false)
}

func (m *Map[K, V]) insert(k K, v V, replace bool) (*Element[K, V], bool) {
	if at, eq := m.seek(m, k, &m.preds); eq {
		if replace {
			at.val = v
		}
		return at, false
	}
	e := newElement(m.randomHeight(), k, v)
	m.link(e, &m.preds)
	return e, true
}

// Delete removes the element with key k and returns its value and whether
// it was present.
func (m *Map[K, V]) Delete(k K) (V, bool) {
	e := m.find(m, k)
	if e == nil {
		var zero V
		return zero, false
	}
	m.unlink(e)
	return e.val, true
}

// Remove unlinks e, an element of m, in O(height) without a search, and
// reports whether it was still linked. Removing an element of another Map
// corrupts both.
func (m *Map[K, V]) Remove(e *Element[K, V]) bool {
	if e == nil || e.height == 0 {
		return false
	}
	m.unlink(e)
	return true
}

// Front returns the element with the smallest key, or nil if m is empty.
func (m *Map[K, V]) Front() *Element[K, V] { return m.head.links[0].next }

// Back returns the element with the largest key, or nil if m is empty.
func (m *Map[K, V]) Back() *Element[K, V] {
	if last := m.head.links[0].prev; last != m.first() {
		return last
	}
	return nil
}

// PopFront removes and returns the element with the smallest key, or nil
// if m is empty. It costs O(1) expected.
func (m *Map[K, V]) PopFront() *Element[K, V] {
	e := m.Front()
	if e != nil {
		m.unlink(e)
	}
	return e
}

// PopBack removes and returns the element with the largest key, or nil if
// m is empty. It costs O(1) expected.
func (m *Map[K, V]) PopBack() *Element[K, V] {
	e := m.Back()
	if e != nil {
		m.unlink(e)
	}
	return e
}

// ceil returns the first element with key >= k (strict: key > k).
func (m *Map[K, V]) ceil(k K, strict bool) *Element[K, V] {
	x := m.first()
	for i := m.level - 1; i >= 0; i-- {
		for {
			l := x.at(i)
			if l.next == nil {
				break
			}
			c := m.cmp(l.nkey, k)
			if c < 0 || (strict && c == 0) {
				x = l.next
				continue
			}
			if c == 0 {
				return l.next
			}
			break
		}
	}
	return x.at(0).next
}

// floor returns the last element with key <= k (strict: key < k).
func (m *Map[K, V]) floor(k K, strict bool) *Element[K, V] {
	x := m.first()
	for i := m.level - 1; i >= 0; i-- {
		for {
			l := x.at(i)
			if l.next == nil {
				break
			}
			c := m.cmp(l.nkey, k)
			if c < 0 {
				x = l.next
				continue
			}
			if c == 0 && !strict {
				return l.next
			}
			break
		}
	}
	if x == m.first() {
		return nil
	}
	return x
}

// Ceil returns the element with the smallest key >= k, or nil.
func (m *Map[K, V]) Ceil(k K) *Element[K, V] { return m.ceil(k, false) }

// Floor returns the element with the largest key <= k, or nil.
func (m *Map[K, V]) Floor(k K) *Element[K, V] { return m.floor(k, false) }

// All returns an iterator over the pairs in ascending key order.
//
// The loop body may mutate m: after each pair, iteration continues with
// the smallest key greater than the one just yielded.
func (m *Map[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		m.ascend(m.Front(), nil, yield)
	}
}

// Ascend returns an iterator over the pairs with keys >= from, ascending.
// Mutation during the loop is allowed as for All.
func (m *Map[K, V]) Ascend(from K) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		m.ascend(m.ceil(from, false), nil, yield)
	}
}

// Range returns an iterator over the pairs with lo <= key < hi, ascending.
// Mutation during the loop is allowed as for All.
func (m *Map[K, V]) Range(lo, hi K) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		m.ascend(m.ceil(lo, false), &hi, yield)
	}
}

func (m *Map[K, V]) ascend(e *Element[K, V], hi *K, yield func(K, V) bool) {
	for e != nil {
		if hi != nil && m.cmp(e.key, *hi) >= 0 {
			return
		}
		if !yield(e.key, e.val) {
			return
		}
		if e.height != 0 {
			e = e.at(0).next
		} else {
			e = m.ceil(e.key, true)
		}
	}
}

// Backward returns an iterator over the pairs in descending key order.
// The loop body may mutate m: after each pair, iteration continues with
// the largest key smaller than the one just yielded.
func (m *Map[K, V]) Backward() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		m.descend(m.Back(), yield)
	}
}

// Descend returns an iterator over the pairs with keys <= from, descending.
// Mutation during the loop is allowed as for Backward.
func (m *Map[K, V]) Descend(from K) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		m.descend(m.floor(from, false), yield)
	}
}

func (m *Map[K, V]) descend(e *Element[K, V], yield func(K, V) bool) {
	for e != nil {
		if !yield(e.key, e.val) {
			return
		}
		if e.height != 0 {
			e = e.Prev()
		} else {
			e = m.floor(e.key, true)
		}
	}
}
