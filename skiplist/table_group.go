package skiplist

import (
	"cmp"
	"iter"
)

// Group is one ordered list of a GroupIndex: the entries whose records
// name it through the index's group function, such as the users last
// seen on one URL. The caller owns its groups, typically inside its own
// per-group value (found through a Go map, say), and records point to
// them. The zero Group is empty. A Group must not be copied once it has
// held entries; it may be dropped or reused once Len is zero.
type Group[R any] struct {
	l list[R]
}

// Len returns the number of entries in g, in O(1).
func (g *Group[R]) Len() int { return g.l.n }

// GroupIndex orders a Table's entries within groups: each entry is in the
// Group its record names, ordered there by a key of type K computed from
// the record, entries with equal keys in the order they were inserted or
// last updated (as in a Multi Index). An Update that names another group
// moves the entry from its old group to the new one through its own links,
// with no search in the old group; with a key not below the new group's
// last entry (a newest time, say) it is appended in O(height).
//
// Create it with NewGroupIndex or NewGroupIndexFunc. Queries take the
// group: who is in it (Group.Len), its first and last entries, walks in
// both directions, searches by key within it.
//
// A GroupIndex is not safe for concurrent mutation, like its Table.
type GroupIndex[R, K any] struct {
	order[R, K]
	group func(*R) *Group[R]
}

// NewGroupIndex adds to t an index that orders the entries of each group
// by cmp.Compare on key(record); group(record) names the record's group
// and must not return nil. It panics if t already holds entries or has 16
// indexes.
func NewGroupIndex[R any, K cmp.Ordered](t *Table[R], group func(*R) *Group[R], key func(*R) K) *GroupIndex[R, K] {
	return NewGroupIndexFunc(t, group, key, cmp.Compare[K])
}

// NewGroupIndexFunc is NewGroupIndex with a compare func (see
// NewIndexFunc). It also panics if group is nil.
func NewGroupIndexFunc[R, K any](t *Table[R], group func(*R) *Group[R], key func(*R) K, compare func(a, b K) int) *GroupIndex[R, K] {
	if group == nil {
		panic("skiplist: nil group func")
	}
	x := &GroupIndex[R, K]{order: newOrder(t, Multi, key, compare), group: group}
	x.register(x)
	return x
}

func (x *GroupIndex[R, K]) listOf(v *R) *list[R] { return &x.group(v).l }

func (x *GroupIndex[R, K]) seek(v *R, h int, preds *[tableLevels]*Entry[R]) *Entry[R] {
	x.seekIn(x.listOf(v), x.key(v), h, preds)
	return nil
}

func (x *GroupIndex[R, K]) fits(e *Entry[R], v *R) bool {
	g := x.group(v)
	return g == x.group(&e.val) && x.fitsIn(&g.l, e, v)
}

func (x *GroupIndex[R, K]) holder(*R) *Entry[R] { return nil }

// Group returns the group of e's record.
func (x *GroupIndex[R, K]) Group(e *Entry[R]) *Group[R] { return x.group(&e.val) }

// Key returns the key of e's record in this index.
func (x *GroupIndex[R, K]) Key(e *Entry[R]) K { return x.key(&e.val) }

// Front returns the first entry of g, or nil if g is empty.
func (x *GroupIndex[R, K]) Front(g *Group[R]) *Entry[R] { return g.l.first() }

// Back returns the last entry of g, or nil if g is empty.
func (x *GroupIndex[R, K]) Back(g *Group[R]) *Entry[R] { return g.l.last() }

// Next returns the entry after e in its group, or nil at the end or when
// e has been removed.
func (x *GroupIndex[R, K]) Next(e *Entry[R]) *Entry[R] { return x.next(e) }

// Prev returns the entry before e in its group, or nil at the front or
// when e has been removed.
func (x *GroupIndex[R, K]) Prev(e *Entry[R]) *Entry[R] { return x.prev(e) }

// Find returns the first entry of g whose key equals k, or nil.
func (x *GroupIndex[R, K]) Find(g *Group[R], k K) *Entry[R] { return x.find(&g.l, k) }

// Ceil returns the first entry of g with key >= k, or nil.
func (x *GroupIndex[R, K]) Ceil(g *Group[R], k K) *Entry[R] { return x.ceil(&g.l, k, false) }

// Floor returns the last entry of g with key <= k, or nil.
func (x *GroupIndex[R, K]) Floor(g *Group[R], k K) *Entry[R] { return x.floor(&g.l, k, false) }

// All returns an iterator over the entries of g in order. Mutation
// during the loop is allowed as for Index.All; iteration stays in g.
func (x *GroupIndex[R, K]) All(g *Group[R]) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.ascend(&g.l, g.l.first(), yield)
	}
}

// Ascend returns an iterator over the entries of g with key >= from, in
// order.
func (x *GroupIndex[R, K]) Ascend(g *Group[R], from K) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.ascend(&g.l, x.ceil(&g.l, from, false), yield)
	}
}

// Backward returns an iterator over the entries of g in reverse order.
func (x *GroupIndex[R, K]) Backward(g *Group[R]) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.descend(&g.l, g.l.last(), yield)
	}
}

// Descend returns an iterator over the entries of g with key <= from, in
// reverse order.
func (x *GroupIndex[R, K]) Descend(g *Group[R], from K) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.descend(&g.l, x.floor(&g.l, from, false), yield)
	}
}
