package skiplist

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
	"unsafe"
)

// ErrDuplicate reports an insert or update that would give a Unique index
// two entries with the same key.
var ErrDuplicate = errors.New("skiplist: duplicate key in unique index")

// ErrRemoved reports an Update of an entry that is no longer in its table.
var ErrRemoved = errors.New("skiplist: entry removed")

// Uniqueness says whether an index admits several entries with equal keys.
type Uniqueness uint8

const (
	// Multi indexes keep entries with equal keys in the order they were
	// inserted or last updated.
	Multi Uniqueness = iota
	// Unique indexes refuse a second entry with an equal key (ErrDuplicate).
	Unique
)

// tableLevels bounds the height of an entry's towers. Heights are drawn
// with p = 1/4, so 16 levels serve 4^16 entries.
const tableLevels = 16

// maxIndexes bounds the indexes of a table: the level-0 links of every
// index are laid out inside the entry's own allocation.
const maxIndexes = 16

// Table holds records of type R, each stored once in an Entry and linked
// into every index of the table: Index orders all entries by a key
// computed from the record, GroupIndex orders the entries of each Group
// (one list per group the record names, such as the users of one URL).
// Each entry carries its own links in every index, so removing or moving
// an entry found through any index takes O(height) per index with no
// search, and an index's first entry is popped in O(height).
//
// Create the indexes with NewIndex, NewIndexFunc, NewGroupIndex or
// NewGroupIndexFunc before the first insert. Records must be changed only
// through Update (or an index's Upsert): an index computes keys from the
// stored record when it compares.
//
// An insert or update searches from the back of each index: an entry
// whose key is not below the last one is appended in O(height), and one
// that goes d places before the end is placed in O(log d) expected.
//
// # Memory
//
// An entry is one allocation holding the record, a word of sequence number
// and tower height, a pointer to the taller levels and one level-0 link
// (two pointers) per index. All its indexes share one tower height, drawn
// with p = 1/4: the three entries in four of height 1 allocate nothing
// more, the others a second block of 16 bytes per index and level above
// the first. An entry thus costs 8 + 8 + 16k bytes beyond its record in k
// indexes, plus 16k/3 bytes on average for the taller levels, rounded up
// to Go's size classes. Measured on amd64: with the who's-online record of
// package online (a name, a pointer and an int64: 32 bytes) in two
// indexes, an 80-byte entry and 11 bytes of taller levels on average
// (TestTableEntryBytes); with the record of the Table example (two strings
// and a time.Time: 56 bytes) in three indexes, 144 bytes per entry.
//
// # Concurrency
//
// A Table and its indexes are not safe for concurrent mutation: concurrent
// readers are fine, but a writer needs exclusive access. The zero Table is
// an empty table with no indexes, like NewTable's.
type Table[R any] struct {
	indexes []indexer[R]
	preds   [][tableLevels]*Entry[R] // scratch: one insertion point per index
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
	val R
	// meta is the sequence number of the last insert or update (which
	// orders equal keys in Multi indexes and lets iterators notice a
	// move) shifted left by 8, or'ed with the tower height; height 0
	// marks a removed entry.
	meta uint64
	// up points to the links of levels 1..h-1 of every index, level by
	// level: the link of index i at level j is up[(j-1)*k+i] in a table
	// of k indexes. Nil when h == 1.
	up unsafe.Pointer
	// The level-0 links of the k indexes follow in the same allocation.
}

// Value returns the record.
func (e *Entry[R]) Value() R { return e.val }

// Removed reports whether e has been removed from its table.
func (e *Entry[R]) Removed() bool { return e.meta&0xff == 0 }

func (e *Entry[R]) height() int     { return int(e.meta & 0xff) }
func (e *Entry[R]) seq() uint64     { return e.meta >> 8 }
func (e *Entry[R]) setSeq(s uint64) { e.meta = s<<8 | e.meta&0xff }

// tlink is one level of an entry's tower in one index. Nil means the end
// of the list: prev nil is the list's head.
type tlink[R any] struct {
	next, prev *Entry[R]
}

// lk returns the link of e at level j of index i of a table of k indexes.
func lk[R any](e *Entry[R], i, j, k int) *tlink[R] {
	if j == 0 {
		return (*tlink[R])(unsafe.Add(unsafe.Pointer(e), unsafe.Sizeof(*e)+uintptr(i)*unsafe.Sizeof(tlink[R]{})))
	}
	return (*tlink[R])(unsafe.Add(e.up, uintptr((j-1)*k+i)*unsafe.Sizeof(tlink[R]{})))
}

// newEntry allocates an entry of height h with links for k indexes.
func newEntry[R any](k, h int) *Entry[R] {
	var e *Entry[R]
	switch k {
	case 0:
		e = new(Entry[R])
	case 1:
		e = entryWith[R, [1]tlink[R]]()
	case 2:
		e = entryWith[R, [2]tlink[R]]()
	case 3:
		e = entryWith[R, [3]tlink[R]]()
	case 4:
		e = entryWith[R, [4]tlink[R]]()
	case 5:
		e = entryWith[R, [5]tlink[R]]()
	case 6:
		e = entryWith[R, [6]tlink[R]]()
	case 7:
		e = entryWith[R, [7]tlink[R]]()
	case 8:
		e = entryWith[R, [8]tlink[R]]()
	default:
		e = entryWith[R, [maxIndexes]tlink[R]]()
	}
	if h > 1 && k > 0 {
		up := make([]tlink[R], (h-1)*k)
		e.up = unsafe.Pointer(&up[0])
	}
	e.meta = uint64(h)
	return e
}

// entryWith allocates an entry followed by links L in one block.
func entryWith[R, L any]() *Entry[R] {
	return &new(struct {
		e Entry[R]
		l L
	}).e
}

// list is one ordered list of entries in one index: the whole index for
// an Index, one group for a GroupIndex.
type list[R any] struct {
	// head[j].next is the first entry at level j, head[j].prev the last;
	// len(head) is the number of levels in use.
	head []tlink[R]
	n    int
}

// next returns the entry after p at level j of index i, p == nil meaning
// the head.
func (l *list[R]) next(p *Entry[R], i, j, k int) *Entry[R] {
	if p == nil {
		return l.head[j].next
	}
	return lk(p, i, j, k).next
}

func (l *list[R]) first() *Entry[R] {
	if len(l.head) == 0 {
		return nil
	}
	return l.head[0].next
}

func (l *list[R]) last() *Entry[R] {
	if len(l.head) == 0 {
		return nil
	}
	return l.head[0].prev
}

// link links e, as index i, after preds[j] at each level j below its
// height (nil: at the front).
func (l *list[R]) link(e *Entry[R], i, k int, preds *[tableLevels]*Entry[R]) {
	h := e.height()
	for len(l.head) < h {
		l.head = append(l.head, tlink[R]{})
	}
	for j := range h {
		p := preds[j]
		var nx *Entry[R]
		if p == nil {
			nx = l.head[j].next
			l.head[j].next = e
		} else {
			pl := lk(p, i, j, k)
			nx = pl.next
			pl.next = e
		}
		if nx == nil {
			l.head[j].prev = e
		} else {
			lk(nx, i, j, k).prev = e
		}
		*lk(e, i, j, k) = tlink[R]{next: nx, prev: p}
	}
	l.n++
}

// unlink removes e, as index i, through its own links.
func (l *list[R]) unlink(e *Entry[R], i, k int) {
	for j := range e.height() {
		el := lk(e, i, j, k)
		if el.prev == nil {
			l.head[j].next = el.next
		} else {
			lk(el.prev, i, j, k).next = el.next
		}
		if el.next == nil {
			l.head[j].prev = el.prev
		} else {
			lk(el.next, i, j, k).prev = el.prev
		}
		*el = tlink[R]{}
	}
	for len(l.head) > 0 && l.head[len(l.head)-1].next == nil {
		l.head = l.head[:len(l.head)-1]
	}
	l.n--
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
	return min(1+bits.TrailingZeros64(x)/2, tableLevels)
}

// indexer is the part of an index the table drives.
type indexer[R any] interface {
	// seek fills preds[:h] with the insertion point of record v: after
	// every entry with a key below v's and, in a Multi index, after those
	// with an equal key. For a Unique index it returns the entry already
	// holding v's key, if any, instead.
	seek(v *R, h int, preds *[tableLevels]*Entry[R]) (conflict *Entry[R])
	// fits reports whether e, linked in this index, would still be in
	// order if its record were v and it were updated now.
	fits(e *Entry[R], v *R) bool
	// holder returns, for a Unique index, the entry holding v's key.
	holder(v *R) *Entry[R]
	// listOf returns the list an entry with record v belongs in.
	listOf(v *R) *list[R]
}

// Insert adds a record to every index. If a Unique index already holds the
// record's key, Insert changes nothing and returns the entry holding it
// and an error wrapping ErrDuplicate.
func (t *Table[R]) Insert(v R) (*Entry[R], error) {
	h := t.randomHeight()
	t.tmp = v
	defer t.clearTmp()
	for i, x := range t.indexes {
		if c := x.seek(&t.tmp, h, &t.preds[i]); c != nil {
			return c, fmt.Errorf("%w (index %d)", ErrDuplicate, i)
		}
	}
	t.seq++
	k := len(t.indexes)
	e := newEntry[R](k, h)
	e.val = v
	e.setSeq(t.seq)
	for i, x := range t.indexes {
		x.listOf(&e.val).link(e, i, k, &t.preds[i])
	}
	t.n++
	return e, nil
}

func (t *Table[R]) clearTmp() {
	var zero R
	t.tmp = zero
}

// Remove unlinks e from every index in O(height) per index, without a
// search, and reports whether it was still in the table. Removing an entry
// of another table corrupts both.
func (t *Table[R]) Remove(e *Entry[R]) bool {
	if e == nil || e.Removed() {
		return false
	}
	k := len(t.indexes)
	for i, x := range t.indexes {
		x.listOf(&e.val).unlink(e, i, k)
	}
	e.meta &^= 0xff
	e.up = nil
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
	if e == nil || e.Removed() {
		return ErrRemoved
	}
	t.tmp = v
	defer t.clearTmp()
	var stayBits uint64
	for i, x := range t.indexes {
		if x.fits(e, &t.tmp) {
			stayBits |= 1 << i
			continue
		}
		if c := x.holder(&t.tmp); c != nil && c != e {
			return fmt.Errorf("%w (index %d)", ErrDuplicate, i)
		}
	}
	k := len(t.indexes)
	for i, x := range t.indexes {
		if stayBits&(1<<i) == 0 {
			x.listOf(&e.val).unlink(e, i, k)
		}
	}
	t.seq++
	e.val = v
	e.setSeq(t.seq)
	h := e.height()
	for i, x := range t.indexes {
		if stayBits&(1<<i) != 0 {
			continue
		}
		x.seek(&e.val, h, &t.preds[i])
		x.listOf(&e.val).link(e, i, k, &t.preds[i])
	}
	return nil
}

// order is what Index and GroupIndex share: the key of a record, its
// comparison, and the searches within one list.
type order[R, K any] struct {
	t      *Table[R]
	pos    int
	key    func(*R) K
	cmp    func(a, b K) int
	unique bool
}

func newOrder[R, K any](t *Table[R], u Uniqueness, key func(*R) K, compare func(a, b K) int) order[R, K] {
	switch {
	case t.n > 0:
		panic("skiplist: new index on a table that holds entries")
	case len(t.indexes) == maxIndexes:
		panic("skiplist: more than 16 indexes")
	case key == nil || compare == nil:
		panic("skiplist: nil key or compare func")
	}
	return order[R, K]{t: t, pos: len(t.indexes), key: key, cmp: compare, unique: u == Unique}
}

func (o *order[R, K]) register(x indexer[R]) {
	o.t.indexes = append(o.t.indexes, x)
	o.t.preds = append(o.t.preds, [tableLevels]*Entry[R]{})
}

// before reports whether entry e goes before a new entry with key k.
func (o *order[R, K]) before(e *Entry[R], k K) bool {
	c := o.cmp(o.key(&e.val), k)
	return c < 0 || (c == 0 && !o.unique)
}

// seekIn fills preds[:h] with the insertion point of key k in l and
// returns the entry after it. The search starts at the tail and climbs
// only as high as the distance back requires.
func (o *order[R, K]) seekIn(l *list[R], k K, h int, preds *[tableLevels]*Entry[R]) *Entry[R] {
	i, nk := o.pos, len(o.t.indexes)
	top := 0
	for top < len(l.head) && !o.before(l.head[top].prev, k) {
		top++
	}
	var p *Entry[R]
	if top < len(l.head) {
		p = l.head[top].prev
	}
	for j := top; j < h; j++ {
		if j < len(l.head) {
			preds[j] = l.head[j].prev
		} else {
			preds[j] = nil
		}
	}
	for j := top - 1; j >= 0; j-- {
		for nx := l.next(p, i, j, nk); nx != nil && o.before(nx, k); nx = l.next(p, i, j, nk) {
			p = nx
		}
		if j < h {
			preds[j] = p
		}
	}
	if len(l.head) == 0 {
		return nil
	}
	return l.next(preds[0], i, 0, nk)
}

// fitsIn reports whether e, linked in l, stays in order with record v.
// It loads as few other entries as it can: an entry whose key grows is
// compared with the tail (recently used, so cached) before its next
// neighbour, and one whose key shrinks only with its previous neighbour.
func (o *order[R, K]) fitsIn(l *list[R], e *Entry[R], v *R) bool {
	k := o.key(v)
	c := o.cmp(k, o.key(&e.val))
	el := lk(e, o.pos, 0, len(o.t.indexes))
	switch {
	case c > 0 || c == 0 && !o.unique:
		// Only the entries after e can be out of order.
		if el.next == nil {
			return true
		}
		if o.before(l.last(), k) {
			return false // e goes after the tail, which is not e
		}
		return o.cmp(o.key(&el.next.val), k) > 0
	case c == 0:
		return true // same key in a Unique index
	default:
		return el.prev == nil || o.before(el.prev, k)
	}
}

// ceil returns the first entry of l with key >= k (strict: key > k).
func (o *order[R, K]) ceil(l *list[R], k K, strict bool) *Entry[R] {
	i, nk := o.pos, len(o.t.indexes)
	var p *Entry[R]
	for j := len(l.head) - 1; j >= 0; j-- {
		for {
			nx := l.next(p, i, j, nk)
			if nx == nil {
				break
			}
			c := o.cmp(o.key(&nx.val), k)
			if c > 0 || (c == 0 && !strict) {
				break
			}
			p = nx
		}
	}
	if len(l.head) == 0 {
		return nil
	}
	return l.next(p, i, 0, nk)
}

// floor returns the last entry of l with key <= k (strict: key < k).
func (o *order[R, K]) floor(l *list[R], k K, strict bool) *Entry[R] {
	i, nk := o.pos, len(o.t.indexes)
	var p *Entry[R]
	for j := len(l.head) - 1; j >= 0; j-- {
		for {
			nx := l.next(p, i, j, nk)
			if nx == nil {
				break
			}
			c := o.cmp(o.key(&nx.val), k)
			if c > 0 || (c == 0 && strict) {
				break
			}
			p = nx
		}
	}
	return p
}

func (o *order[R, K]) find(l *list[R], k K) *Entry[R] {
	e := o.ceil(l, k, false)
	if e == nil || o.cmp(o.key(&e.val), k) != 0 {
		return nil
	}
	return e
}

// next and prev return e's neighbours at level 0, nil at the ends or when
// e has been removed.
func (o *order[R, K]) next(e *Entry[R]) *Entry[R] {
	if e.Removed() {
		return nil
	}
	return lk(e, o.pos, 0, len(o.t.indexes)).next
}

func (o *order[R, K]) prev(e *Entry[R]) *Entry[R] {
	if e.Removed() {
		return nil
	}
	return lk(e, o.pos, 0, len(o.t.indexes)).prev
}

// ascend yields the entries of l from e on. After each yield it continues
// from the position the yielded entry had, whatever the loop body did.
func (o *order[R, K]) ascend(l *list[R], e *Entry[R], yield func(*Entry[R]) bool) {
	for e != nil {
		k, seq := o.key(&e.val), e.seq()
		if !yield(e) {
			return
		}
		if !e.Removed() && e.seq() == seq {
			e = lk(e, o.pos, 0, len(o.t.indexes)).next
			continue
		}
		// e moved or left: resume after its old position.
		e = o.ceil(l, k, o.unique)
		for !o.unique && e != nil && o.cmp(o.key(&e.val), k) == 0 && e.seq() <= seq {
			e = lk(e, o.pos, 0, len(o.t.indexes)).next
		}
	}
}

func (o *order[R, K]) descend(l *list[R], e *Entry[R], yield func(*Entry[R]) bool) {
	for e != nil {
		k, seq := o.key(&e.val), e.seq()
		if !yield(e) {
			return
		}
		if !e.Removed() && e.seq() == seq {
			e = lk(e, o.pos, 0, len(o.t.indexes)).prev
			continue
		}
		e = o.floor(l, k, o.unique)
		for !o.unique && e != nil && o.cmp(o.key(&e.val), k) == 0 && e.seq() >= seq {
			e = lk(e, o.pos, 0, len(o.t.indexes)).prev
		}
	}
}

// Index is one ordering of all of a Table's entries by a key of type K
// computed from each record. Create it with NewIndex or NewIndexFunc. Its
// methods that remove (Delete, PopFront, PopBack) remove the entry from the
// whole table.
//
// An Index is not safe for concurrent mutation, like its Table.
type Index[R, K any] struct {
	order[R, K]
	l list[R]
}

// NewIndex adds to t an index ordered by cmp.Compare on key(record). It
// panics if t already holds entries or has 16 indexes.
func NewIndex[R any, K cmp.Ordered](t *Table[R], u Uniqueness, key func(*R) K) *Index[R, K] {
	return NewIndexFunc(t, u, key, cmp.Compare[K])
}

// NewIndexFunc adds to t an index ordered by compare on key(record);
// compare returns a negative number, zero or a positive number as a < b,
// a == b or a > b. It panics if t already holds entries, has 16 indexes,
// or key or compare is nil.
func NewIndexFunc[R, K any](t *Table[R], u Uniqueness, key func(*R) K, compare func(a, b K) int) *Index[R, K] {
	x := &Index[R, K]{order: newOrder(t, u, key, compare)}
	x.register(x)
	return x
}

func (x *Index[R, K]) listOf(*R) *list[R] { return &x.l }

func (x *Index[R, K]) seek(v *R, h int, preds *[tableLevels]*Entry[R]) *Entry[R] {
	k := x.key(v)
	nx := x.seekIn(&x.l, k, h, preds)
	if x.unique && nx != nil && x.cmp(k, x.key(&nx.val)) == 0 {
		return nx
	}
	return nil
}

func (x *Index[R, K]) fits(e *Entry[R], v *R) bool { return x.fitsIn(&x.l, e, v) }

func (x *Index[R, K]) holder(v *R) *Entry[R] {
	if !x.unique {
		return nil
	}
	return x.Find(x.key(v))
}

// Len returns the number of entries (the table's), in O(1).
func (x *Index[R, K]) Len() int { return x.t.n }

// Key returns the key of e's record in this index.
func (x *Index[R, K]) Key(e *Entry[R]) K { return x.key(&e.val) }

// Find returns the first entry whose key equals k, or nil.
func (x *Index[R, K]) Find(k K) *Entry[R] { return x.find(&x.l, k) }

// Ceil returns the first entry with key >= k, or nil.
func (x *Index[R, K]) Ceil(k K) *Entry[R] { return x.ceil(&x.l, k, false) }

// Floor returns the last entry with key <= k, or nil.
func (x *Index[R, K]) Floor(k K) *Entry[R] { return x.floor(&x.l, k, false) }

// Front returns the first entry in this index's order, or nil.
func (x *Index[R, K]) Front() *Entry[R] { return x.l.first() }

// Back returns the last entry in this index's order, or nil.
func (x *Index[R, K]) Back() *Entry[R] { return x.l.last() }

// Next returns the entry after e in this index's order, or nil at the end
// or when e has been removed.
func (x *Index[R, K]) Next(e *Entry[R]) *Entry[R] { return x.next(e) }

// Prev returns the entry before e in this index's order, or nil at the
// front or when e has been removed.
func (x *Index[R, K]) Prev(e *Entry[R]) *Entry[R] { return x.prev(e) }

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
		x.ascend(&x.l, x.l.first(), yield)
	}
}

// Ascend returns an iterator over the entries with key >= from, in order.
// Mutation during the loop is allowed as for All.
func (x *Index[R, K]) Ascend(from K) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.ascend(&x.l, x.ceil(&x.l, from, false), yield)
	}
}

// Backward returns an iterator over the entries in reverse order.
// Mutation during the loop is allowed as for All, in reverse.
func (x *Index[R, K]) Backward() iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.descend(&x.l, x.l.last(), yield)
	}
}

// Descend returns an iterator over the entries with key <= from, in
// reverse order. Mutation during the loop is allowed as for Backward.
func (x *Index[R, K]) Descend(from K) iter.Seq[*Entry[R]] {
	return func(yield func(*Entry[R]) bool) {
		x.descend(&x.l, x.floor(&x.l, from, false), yield)
	}
}
