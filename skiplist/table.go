package skiplist

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
)

// ErrDuplicate reports an insert or update that would give a Unique index
// two entries with the same key.
var ErrDuplicate = errors.New("skiplist: duplicate key in unique index")

// Uniqueness says whether an index admits several entries with equal keys.
type Uniqueness uint8

const (
	// Multi indexes keep entries with equal keys in the order they were
	// inserted or last updated.
	Multi Uniqueness = iota
	// Unique indexes refuse a second entry with an equal key (ErrDuplicate).
	Unique
)

// Table holds records of type R, each stored once in an Entry and linked
// into every index of the table. An index orders the entries by a key
// computed from the record; each entry keeps its node in every index, so
// removing or moving an entry found through any index takes O(height) per
// index with no search.
//
// Create the indexes with NewIndex or NewIndexFunc before the first insert.
// Records must be changed only through Update (or an index's Upsert): an
// index computes keys from the stored record when it compares.
//
// Memory per entry is one Entry (the record, a sequence number and a slice
// of nodes), one node per index (32 bytes) and 4/3 tower levels per index
// on average (16 bytes each), in two allocations per insert (three with
// more than four indexes). Measured on
// amd64: 240 bytes per entry for the who's-online record (two strings and
// a time.Time, 56 bytes) in three indexes, not counting string contents.
//
// A Table and its indexes are not safe for concurrent mutation: concurrent
// readers are fine, but a writer needs exclusive access. The zero Table is
// an empty table with no indexes, like NewTable's.
type Table[R any] struct {
	indexes []indexer[R]
	preds   [][maxLevel]*tnode[R] // scratch: one insertion point per index
	n       int
	seq     uint64
	rng     uint64
	// tmp holds the record being inserted or updated while the indexes
	// examine it, so that it need not escape to the heap.
	tmp R
}

// NewTable returns an empty table with no indexes.
func NewTable[R any]() *Table[R] {
	return &Table[R]{rng: rand.Uint64() | 1}
}

// Entry is one record of a Table. It stays valid after removal: Value
// still returns the record and Removed reports true.
type Entry[R any] struct {
	val   R
	seq   uint64     // insertion/update order, breaks ties in Multi indexes
	nodes []tnode[R] // nodes[i] links the entry into index i; nil once removed
}

// Value returns the record.
func (e *Entry[R]) Value() R { return e.val }

// Removed reports whether e has been removed from its table.
func (e *Entry[R]) Removed() bool { return e.nodes == nil }

type tlink[R any] struct {
	next, prev *tnode[R]
}

// tnode is an entry's place in one index.
type tnode[R any] struct {
	e     *Entry[R]
	tower []tlink[R]
}

// indexer is the part of an index the table drives.
type indexer[R any] interface {
	list() *ilist[R]
	// seek fills preds with the insertion point of record v with sequence
	// seq and, for a Unique index, returns the entry already holding v's
	// key, if any.
	seek(v *R, seq uint64, preds *[maxLevel]*tnode[R]) (conflict *Entry[R])
	// fits reports whether n, linked in this index, would still be in
	// order if its record were v with sequence seq.
	fits(n *tnode[R], v *R, seq uint64) bool
	// holder returns, for a Unique index, the entry holding v's key.
	holder(v *R) *Entry[R]
}

// ilist is the linked structure of one index: a skiplist of tnodes whose
// order the owning index defines.
type ilist[R any] struct {
	head   tnode[R]
	htower [maxLevel + 1]tlink[R]
	level  int
}

func (l *ilist[R]) init() {
	l.head.tower = l.htower[:]
	for i := range l.htower {
		l.htower[i] = tlink[R]{prev: &l.head}
	}
	l.level = 0
}

func (l *ilist[R]) link(n *tnode[R], preds *[maxLevel]*tnode[R]) {
	for i := range n.tower {
		p := preds[i]
		nx := p.tower[i].next
		n.tower[i] = tlink[R]{next: nx, prev: p}
		p.tower[i].next = n
		if nx == nil {
			l.head.tower[i].prev = n
		} else {
			nx.tower[i].prev = n
		}
	}
	l.level = max(l.level, len(n.tower))
}

func (l *ilist[R]) unlink(n *tnode[R]) {
	for i, k := range n.tower {
		k.prev.tower[i].next = k.next
		if k.next == nil {
			l.head.tower[i].prev = k.prev
		} else {
			k.next.tower[i].prev = k.prev
		}
		n.tower[i] = tlink[R]{}
	}
	for l.level > 0 && l.head.tower[l.level-1].next == nil {
		l.level--
	}
}

// tails fills preds with the last node at every level.
func (l *ilist[R]) tails(preds *[maxLevel]*tnode[R]) {
	for i := range preds {
		preds[i] = l.head.tower[i].prev
	}
}

func (l *ilist[R]) last() *tnode[R] {
	if p := l.head.tower[0].prev; p != &l.head {
		return p
	}
	return nil
}

func (l *ilist[R]) entry(n *tnode[R]) *Entry[R] {
	if n == nil || n == &l.head {
		return nil
	}
	return n.e
}

// Len returns the number of entries, in O(1).
func (t *Table[R]) Len() int { return t.n }

func (t *Table[R]) randomHeight() int {
	x := t.rng
	if x == 0 {
		x = rand.Uint64() | 1
	}
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	t.rng = x
	return min(1+bits.TrailingZeros64(x)/2, maxLevel)
}

// Insert adds a record to every index. If a Unique index already holds the
// record's key, Insert changes nothing and returns the entry holding it
// and an error wrapping ErrDuplicate.
func (t *Table[R]) Insert(v R) (*Entry[R], error) {
	seq := t.seq + 1
	t.tmp = v
	defer t.clearTmp()
	for i, x := range t.indexes {
		if c := x.seek(&t.tmp, seq, &t.preds[i]); c != nil {
			return c, fmt.Errorf("%w (index %d)", ErrDuplicate, i)
		}
	}
	t.seq = seq
	e := t.newEntry(v, seq)
	for i, x := range t.indexes {
		x.list().link(&e.nodes[i], &t.preds[i])
	}
	t.n++
	return e, nil
}

func (t *Table[R]) clearTmp() {
	var zero R
	t.tmp = zero
}

// newEntry allocates an entry with its nodes and all their towers.
func (t *Table[R]) newEntry(v R, seq uint64) *Entry[R] {
	e := allocEntry[R](len(t.indexes))
	e.val, e.seq = v, seq
	var hs [16]int
	heights := hs[:0]
	total := 0
	for range t.indexes {
		h := t.randomHeight()
		heights = append(heights, h)
		total += h
	}
	links := make([]tlink[R], total)
	for i, h := range heights {
		e.nodes[i] = tnode[R]{e: e, tower: links[:h:h]}
		links = links[h:]
	}
	return e
}

// allocEntry allocates an entry together with its k nodes for up to four
// indexes.
func allocEntry[R any](k int) *Entry[R] {
	switch k {
	case 1:
		p := new(struct {
			e Entry[R]
			n [1]tnode[R]
		})
		p.e.nodes = p.n[:]
		return &p.e
	case 2:
		p := new(struct {
			e Entry[R]
			n [2]tnode[R]
		})
		p.e.nodes = p.n[:]
		return &p.e
	case 3:
		p := new(struct {
			e Entry[R]
			n [3]tnode[R]
		})
		p.e.nodes = p.n[:]
		return &p.e
	case 4:
		p := new(struct {
			e Entry[R]
			n [4]tnode[R]
		})
		p.e.nodes = p.n[:]
		return &p.e
	}
	return &Entry[R]{nodes: make([]tnode[R], k)}
}

// Remove unlinks e from every index in O(height) per index, without a
// search, and reports whether it was still in the table. Removing an entry
// of another table corrupts both.
func (t *Table[R]) Remove(e *Entry[R]) bool {
	if e == nil || e.nodes == nil {
		return false
	}
	for i, x := range t.indexes {
		x.list().unlink(&e.nodes[i])
	}
	e.nodes = nil
	t.n--
	return true
}

// Update replaces e's record with v and moves e in every index whose order
// v changes; in the others it stays put (two comparisons). In Multi indexes
// an updated entry goes after the entries with an equal key, as if newly
// inserted. If v's key is held by another entry in a Unique index, Update
// changes nothing and returns an error wrapping ErrDuplicate; if e has been
// removed it returns ErrRemoved. e must be an entry of t.
func (t *Table[R]) Update(e *Entry[R], v R) error {
	if e == nil || e.nodes == nil {
		return ErrRemoved
	}
	seq := t.seq + 1
	t.tmp = v
	defer t.clearTmp()
	var stayBits uint64
	for i, x := range t.indexes {
		n := &e.nodes[i]
		if x.fits(n, &t.tmp, seq) {
			stayBits |= 1 << i
			continue
		}
		if c := x.holder(&t.tmp); c != nil && c != e {
			return fmt.Errorf("%w (index %d)", ErrDuplicate, i)
		}
	}
	t.seq = seq
	e.val, e.seq = v, seq
	for i, x := range t.indexes {
		if stayBits&(1<<i) != 0 {
			continue
		}
		n := &e.nodes[i]
		l := x.list()
		l.unlink(n)
		x.seek(&e.val, seq, &t.preds[i])
		l.link(n, &t.preds[i])
	}
	return nil
}

// ErrRemoved reports an Update of an entry that is no longer in its table.
var ErrRemoved = errors.New("skiplist: entry removed")

// Index is one ordering of a Table's entries by a key of type K computed
// from each record. Create it with NewIndex or NewIndexFunc. Its methods
// that remove (Delete, PopFront, PopBack) remove the entry from the whole
// table.
//
// An Index is not safe for concurrent mutation, like its Table.
type Index[R, K any] struct {
	t      *Table[R]
	pos    int
	key    func(*R) K
	cmp    func(a, b K) int
	unique bool
	l      ilist[R]
}

// NewIndex adds to t an index ordered by cmp.Compare on key(record). It
// panics if t already holds entries or has 64 indexes.
func NewIndex[R any, K cmp.Ordered](t *Table[R], u Uniqueness, key func(*R) K) *Index[R, K] {
	return NewIndexFunc(t, u, key, cmp.Compare[K])
}

// NewIndexFunc adds to t an index ordered by compare on key(record);
// compare returns a negative number, zero or a positive number as a < b,
// a == b or a > b. It panics if t already holds entries, has 64 indexes,
// or key or compare is nil.
func NewIndexFunc[R, K any](t *Table[R], u Uniqueness, key func(*R) K, compare func(a, b K) int) *Index[R, K] {
	switch {
	case t.n > 0:
		panic("skiplist: NewIndex on a table that holds entries")
	case len(t.indexes) == 64:
		panic("skiplist: more than 64 indexes")
	case key == nil || compare == nil:
		panic("skiplist: nil key or compare func")
	}
	x := &Index[R, K]{t: t, pos: len(t.indexes), key: key, cmp: compare, unique: u == Unique}
	x.l.init()
	t.indexes = append(t.indexes, x)
	t.preds = append(t.preds, [maxLevel]*tnode[R]{})
	return x
}

func (x *Index[R, K]) list() *ilist[R] { return &x.l }

// order compares (k, seq) with the entry of n: by key, then, in a Multi
// index, by sequence.
func (x *Index[R, K]) order(k K, seq uint64, n *tnode[R]) int {
	c := x.cmp(k, x.key(&n.e.val))
	if c != 0 || x.unique {
		return c
	}
	return cmp.Compare(seq, n.e.seq)
}

func (x *Index[R, K]) seek(v *R, seq uint64, preds *[maxLevel]*tnode[R]) *Entry[R] {
	k := x.key(v)
	if last := x.l.last(); last != nil && x.order(k, seq, last) > 0 {
		x.l.tails(preds)
		return nil
	}
	n := &x.l.head
	for i := maxLevel - 1; i >= x.l.level; i-- {
		preds[i] = n
	}
	for i := x.l.level - 1; i >= 0; i-- {
		for {
			nx := n.tower[i].next
			if nx == nil || x.order(k, seq, nx) <= 0 {
				break
			}
			n = nx
		}
		preds[i] = n
	}
	if nx := n.tower[0].next; x.unique && nx != nil && x.cmp(k, x.key(&nx.e.val)) == 0 {
		return nx.e
	}
	return nil
}

func (x *Index[R, K]) fits(n *tnode[R], v *R, seq uint64) bool {
	k := x.key(v)
	if p := n.tower[0].prev; p != &x.l.head && x.order(k, seq, p) <= 0 {
		return false
	}
	if nx := n.tower[0].next; nx != nil && x.order(k, seq, nx) >= 0 {
		return false
	}
	return true
}

func (x *Index[R, K]) holder(v *R) *Entry[R] {
	if !x.unique {
		return nil
	}
	return x.Find(x.key(v))
}

// ceil returns the first node with key >= k (strict: key > k).
func (x *Index[R, K]) ceil(k K, strict bool) *tnode[R] {
	n := &x.l.head
	for i := x.l.level - 1; i >= 0; i-- {
		for {
			nx := n.tower[i].next
			if nx == nil {
				break
			}
			c := x.cmp(x.key(&nx.e.val), k)
			if c > 0 || (c == 0 && !strict) {
				break
			}
			n = nx
		}
	}
	return n.tower[0].next
}

// floor returns the last node with key <= k (strict: key < k), or the head.
func (x *Index[R, K]) floor(k K, strict bool) *tnode[R] {
	n := &x.l.head
	for i := x.l.level - 1; i >= 0; i-- {
		for {
			nx := n.tower[i].next
			if nx == nil {
				break
			}
			c := x.cmp(x.key(&nx.e.val), k)
			if c > 0 || (c == 0 && strict) {
				break
			}
			n = nx
		}
	}
	return n
}

// Len returns the number of entries (the table's), in O(1).
func (x *Index[R, K]) Len() int { return x.t.n }

// Key returns the key of e's record in this index.
func (x *Index[R, K]) Key(e *Entry[R]) K { return x.key(&e.val) }

// Find returns the first entry whose key equals k, or nil.
func (x *Index[R, K]) Find(k K) *Entry[R] {
	n := x.ceil(k, false)
	if n == nil || x.cmp(x.key(&n.e.val), k) != 0 {
		return nil
	}
	return n.e
}

// Ceil returns the first entry with key >= k, or nil.
func (x *Index[R, K]) Ceil(k K) *Entry[R] { return x.l.entry(x.ceil(k, false)) }

// Floor returns the last entry with key <= k, or nil.
func (x *Index[R, K]) Floor(k K) *Entry[R] { return x.l.entry(x.floor(k, false)) }

// Front returns the first entry in this index's order, or nil.
func (x *Index[R, K]) Front() *Entry[R] { return x.l.entry(x.l.head.tower[0].next) }

// Back returns the last entry in this index's order, or nil.
func (x *Index[R, K]) Back() *Entry[R] { return x.l.entry(x.l.last()) }

// Next returns the entry after e in this index's order, or nil at the end
// or when e has been removed.
func (x *Index[R, K]) Next(e *Entry[R]) *Entry[R] {
	if e.nodes == nil {
		return nil
	}
	return x.l.entry(e.nodes[x.pos].tower[0].next)
}

// Prev returns the entry before e in this index's order, or nil at the
// front or when e has been removed.
func (x *Index[R, K]) Prev(e *Entry[R]) *Entry[R] {
	if e.nodes == nil {
		return nil
	}
	return x.l.entry(e.nodes[x.pos].tower[0].prev)
}

// PopFront removes the first entry from the table and returns its record;
// ok is false if the table is empty. It costs O(height) per index.
func (x *Index[R, K]) PopFront() (v R, ok bool) {
	return x.pop(x.Front())
}

// PopBack removes the last entry from the table and returns its record.
func (x *Index[R, K]) PopBack() (v R, ok bool) {
	return x.pop(x.Back())
}

func (x *Index[R, K]) pop(e *Entry[R]) (R, bool) {
	if e == nil {
		var zero R
		return zero, false
	}
	x.t.Remove(e)
	return e.val, true
}

// Delete removes the first entry whose key equals k from the table and
// returns its record.
func (x *Index[R, K]) Delete(k K) (R, bool) { return x.pop(x.Find(k)) }

// Upsert updates the first entry whose key in this index equals v's key
// to v, or inserts v if there is none, and returns the entry. Errors are
// those of Table.Update and Table.Insert.
func (x *Index[R, K]) Upsert(v R) (*Entry[R], error) {
	x.t.tmp = v
	k := x.key(&x.t.tmp)
	x.t.clearTmp()
	if e := x.Find(k); e != nil {
		return e, x.t.Update(e, v)
	}
	return x.t.Insert(v)
}

// All returns an iterator over the entries in this index's order.
//
// The loop body may mutate the table: after each entry, iteration
// continues with the entries ordered after the position the yielded entry
// had when it was yielded. An entry that an Update moves ahead of that
// position is visited again, so a loop that moves every entry it sees to
// the end of the index does not terminate.
func (x *Index[R, K]) All() iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.ascend(x.l.head.tower[0].next, yield)
	}
}

// Ascend returns an iterator over the entries with key >= from, in order.
// Mutation during the loop is allowed as for All.
func (x *Index[R, K]) Ascend(from K) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.ascend(x.ceil(from, false), yield)
	}
}

// Backward returns an iterator over the entries in reverse order.
// Mutation during the loop is allowed as for All, in reverse.
func (x *Index[R, K]) Backward() iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.descend(x.l.head.tower[0].prev, yield)
	}
}

// Descend returns an iterator over the entries with key <= from, in
// reverse order. Mutation during the loop is allowed as for Backward.
func (x *Index[R, K]) Descend(from K) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.descend(x.floor(from, false), yield)
	}
}

func (x *Index[R, K]) ascend(n *tnode[R], yield func(*Entry[R]) bool) {
	for n != nil {
		e := n.e
		k, seq := x.key(&e.val), e.seq
		if !yield(e) {
			return
		}
		if e.nodes != nil && e.seq == seq {
			n = n.tower[0].next
			continue
		}
		// e moved or left: resume after its old position.
		n = x.ceil(k, x.unique)
		for !x.unique && n != nil && x.cmp(x.key(&n.e.val), k) == 0 && n.e.seq <= seq {
			n = n.tower[0].next
		}
	}
}

func (x *Index[R, K]) descend(n *tnode[R], yield func(*Entry[R]) bool) {
	for n != nil && n != &x.l.head {
		e := n.e
		k, seq := x.key(&e.val), e.seq
		if !yield(e) {
			return
		}
		if e.nodes != nil && e.seq == seq {
			n = n.tower[0].prev
			continue
		}
		n = x.floor(k, x.unique)
		for !x.unique && n != &x.l.head && x.cmp(x.key(&n.e.val), k) == 0 && n.e.seq >= seq {
			n = n.tower[0].prev
		}
	}
}
