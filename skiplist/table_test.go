package skiplist

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type rec struct {
	ID    int // unique
	Group int // multi
	T     int // multi, ties broken by sequence
}

type testTable struct {
	t       *Table[rec]
	byID    *Index[rec, int]
	byGroup *Index[rec, [2]int] // (Group, T), multi
	byT     *Index[rec, int]
}

func newTestTable() *testTable {
	t := NewTable[rec]()
	return &testTable{
		t:    t,
		byID: NewIndex(t, Unique, func(r *rec) int { return r.ID }),
		byGroup: NewIndexFunc(t, Multi, func(r *rec) [2]int { return [2]int{r.Group, r.T} },
			func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) }),
		byT: NewIndex(t, Multi, func(r *rec) int { return r.T }),
	}
}

type modelEntry struct {
	e   *Entry[rec]
	val rec
	seq uint64
}

// tableModel is the reference: a slice of live entries and the sequence
// counter, sorted on demand.
type tableModel struct {
	items []modelEntry
	seq   uint64
}

func (md *tableModel) find(e *Entry[rec]) int {
	return slices.IndexFunc(md.items, func(m modelEntry) bool { return m.e == e })
}

func (md *tableModel) byID(id int) int {
	return slices.IndexFunc(md.items, func(m modelEntry) bool { return m.val.ID == id })
}

// sorted returns the entries in the order of index which (0 byID,
// 1 byGroup, 2 byT).
func (md *tableModel) sorted(which int) []modelEntry {
	out := slices.Clone(md.items)
	slices.SortFunc(out, func(a, b modelEntry) int {
		switch which {
		case 0:
			return cmp.Compare(a.val.ID, b.val.ID)
		case 1:
			return cmp.Or(cmp.Compare(a.val.Group, b.val.Group), cmp.Compare(a.val.T, b.val.T), cmp.Compare(a.seq, b.seq))
		default:
			return cmp.Or(cmp.Compare(a.val.T, b.val.T), cmp.Compare(a.seq, b.seq))
		}
	})
	return out
}

func checkIndex[K any](t testing.TB, x *Index[rec, K], want []modelEntry) {
	t.Helper()
	l := &x.l
	for i := range maxLevel {
		prev := &l.head
		for n := l.head.tower[i].next; n != nil; n = n.tower[i].next {
			if len(n.tower) <= i || n.tower[i].prev != prev {
				t.Fatalf("index %d: bad links at level %d", x.pos, i)
			}
			if &n.e.nodes[x.pos] != n {
				t.Fatalf("index %d: entry does not hold its node", x.pos)
			}
			if prev != &l.head && x.order(x.key(&prev.e.val), prev.e.seq, n) >= 0 {
				t.Fatalf("index %d: out of order at level %d", x.pos, i)
			}
			prev = n
		}
		if l.head.tower[i].prev != prev {
			t.Fatalf("index %d: bad tail at level %d", x.pos, i)
		}
		if i >= l.level && l.head.tower[i].next != nil {
			t.Fatalf("index %d: level %d in use above %d", x.pos, i, l.level)
		}
	}
	var got []*Entry[rec]
	for e := range x.All() {
		got = append(got, e)
	}
	if len(got) != len(want) {
		t.Fatalf("index %d: %d entries, want %d", x.pos, len(got), len(want))
	}
	for i, m := range want {
		if got[i] != m.e || got[i].val != m.val || got[i].seq != m.seq {
			t.Fatalf("index %d position %d: got %+v seq %d, want %+v seq %d", x.pos, i, got[i].val, got[i].seq, m.val, m.seq)
		}
	}
	var back []*Entry[rec]
	for e := x.Back(); e != nil; e = x.Prev(e) {
		back = append(back, e)
	}
	slices.Reverse(back)
	if !slices.Equal(got, back) {
		t.Fatalf("index %d: backward walk differs", x.pos)
	}
}

func (tt *testTable) check(t testing.TB, md *tableModel) {
	t.Helper()
	if tt.t.Len() != len(md.items) {
		t.Fatalf("Len %d, want %d", tt.t.Len(), len(md.items))
	}
	checkIndex(t, tt.byID, md.sorted(0))
	checkIndex(t, tt.byGroup, md.sorted(1))
	checkIndex(t, tt.byT, md.sorted(2))
}

// apply performs one operation on the table and the model and compares
// the immediate results; check compares the whole state.
func (tt *testTable) apply(t testing.TB, md *tableModel, op byte, a, b, c int) {
	t.Helper()
	r := rec{ID: a, Group: b % 4, T: c}
	pick := func() *modelEntry {
		if len(md.items) == 0 {
			return nil
		}
		return &md.items[(a+b+c)%len(md.items)]
	}
	switch op % 10 {
	case 0, 1:
		e, err := tt.t.Insert(r)
		if i := md.byID(a); i >= 0 {
			require.ErrorIs(t, err, ErrDuplicate)
			require.Same(t, md.items[i].e, e, "Insert returns the holder of the key")
			return
		}
		require.NoError(t, err)
		md.seq++
		md.items = append(md.items, modelEntry{e: e, val: r, seq: md.seq})
	case 2:
		m := pick()
		if m == nil {
			return
		}
		err := tt.t.Update(m.e, r)
		if i := md.byID(a); i >= 0 && md.items[i].e != m.e {
			require.ErrorIs(t, err, ErrDuplicate)
			return
		}
		require.NoError(t, err)
		md.seq++
		m.val, m.seq = r, md.seq
	case 3:
		// Update keeping the ID: moves only in the multi indexes.
		m := pick()
		if m == nil {
			return
		}
		r.ID = m.val.ID
		require.NoError(t, tt.t.Update(m.e, r))
		md.seq++
		m.val, m.seq = r, md.seq
	case 4:
		m := pick()
		if m == nil {
			require.False(t, tt.t.Remove(nil))
			return
		}
		e := m.e
		require.True(t, tt.t.Remove(e))
		require.True(t, e.Removed())
		require.False(t, tt.t.Remove(e))
		require.ErrorIs(t, tt.t.Update(e, r), ErrRemoved)
		md.items = slices.Delete(md.items, md.find(e), md.find(e)+1)
	case 5:
		v, ok := tt.byT.PopFront()
		want := md.sorted(2)
		require.Equal(t, len(want) > 0, ok)
		if ok {
			require.Equal(t, want[0].val, v)
			md.items = slices.Delete(md.items, md.find(want[0].e), md.find(want[0].e)+1)
		}
	case 6:
		v, ok := tt.byGroup.PopBack()
		want := md.sorted(1)
		require.Equal(t, len(want) > 0, ok)
		if ok {
			last := want[len(want)-1]
			require.Equal(t, last.val, v)
			md.items = slices.Delete(md.items, md.find(last.e), md.find(last.e)+1)
		}
	case 7:
		v, ok := tt.byID.Delete(a)
		i := md.byID(a)
		require.Equal(t, i >= 0, ok)
		if ok {
			require.Equal(t, md.items[i].val, v)
			md.items = slices.Delete(md.items, i, i+1)
		}
	case 8:
		e, err := tt.byID.Upsert(r)
		require.NoError(t, err)
		md.seq++
		if i := md.byID(a); i >= 0 {
			require.Same(t, md.items[i].e, e)
			md.items[i].val, md.items[i].seq = r, md.seq
		} else {
			md.items = append(md.items, modelEntry{e: e, val: r, seq: md.seq})
		}
	case 9:
		// Lookups in the multi index by time.
		want := md.sorted(2)
		i := slices.IndexFunc(want, func(m modelEntry) bool { return m.val.T >= c })
		e := tt.byT.Ceil(c)
		if i < 0 {
			require.Nil(t, e, "Ceil(%d)", c)
		} else {
			require.Same(t, want[i].e, e, "Ceil(%d) is the first of equal keys", c)
		}
		f := tt.byT.Find(c)
		if i >= 0 && want[i].val.T == c {
			require.Same(t, want[i].e, f)
		} else {
			require.Nil(t, f)
		}
		j := -1
		for k, m := range want {
			if m.val.T <= c {
				j = k
			}
		}
		e = tt.byT.Floor(c)
		if j < 0 {
			require.Nil(t, e, "Floor(%d)", c)
		} else {
			require.Same(t, want[j].e, e, "Floor(%d) is the last of equal keys", c)
		}
	}
}

func TestTableModel(t *testing.T) {
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 2))
		tt := newTestTable()
		md := &tableModel{}
		ids := 5 + rng.IntN(200)
		times := 1 + rng.IntN(50)
		for range 1200 {
			tt.apply(t, md, byte(rng.IntN(256)), rng.IntN(ids), rng.IntN(100), rng.IntN(times))
			tt.check(t, md)
		}
	}
}

func TestTableIterateWhileMutating(t *testing.T) {
	tt := newTestTable()
	for i := range 10 {
		_, err := tt.t.Insert(rec{ID: i, T: i % 3})
		require.NoError(t, err)
	}
	// byT order: (T, seq): 0,3,6,9 | 1,4,7 | 2,5,8 by ID.
	var seen []int
	moved := false
	for e := range tt.byT.All() {
		v := e.Value()
		seen = append(seen, v.ID)
		switch v.ID {
		case 3:
			tt.t.Remove(e) // the current entry
		case 1:
			// Move the current entry to the end: visited again there.
			if !moved {
				require.NoError(t, tt.t.Update(e, rec{ID: 1, T: 7}))
				moved = true
			}
		case 4:
			tt.t.Remove(tt.byT.Next(e)) // the next entry (ID 7)
		}
	}
	assert.Equal(t, []int{0, 3, 6, 9, 1, 4, 2, 5, 8, 1}, seen)

	seen = nil
	moved = false
	for e := range tt.byT.Backward() {
		seen = append(seen, e.Value().ID)
		if e.Value().ID == 5 && !moved {
			moved = true
			require.NoError(t, tt.t.Update(e, rec{ID: 5, T: 0})) // moves behind the cursor: seen again
		}
	}
	assert.Equal(t, []int{1, 8, 5, 2, 4, 5, 9, 6, 0}, seen)
}

func TestTableRangesAndSeek(t *testing.T) {
	tt := newTestTable()
	for i := range 20 {
		_, err := tt.t.Insert(rec{ID: i, Group: i % 2, T: i})
		require.NoError(t, err)
	}
	var got []int
	for e := range tt.byGroup.Descend([2]int{1, 12}) {
		if e.Value().Group != 1 || len(got) == 3 {
			break
		}
		got = append(got, e.Value().ID)
	}
	assert.Equal(t, []int{11, 9, 7}, got)
	got = nil
	for e := range tt.byID.Ascend(17) {
		got = append(got, e.Value().ID)
	}
	assert.Equal(t, []int{17, 18, 19}, got)
	assert.Equal(t, 5, tt.byT.Key(tt.byT.Find(5)))
	assert.Nil(t, tt.byT.Floor(-1))
	assert.Nil(t, tt.byT.Ceil(20))
	for range 20 {
		_, ok := tt.byT.PopFront()
		require.True(t, ok)
	}
	_, ok := tt.byT.PopFront()
	assert.False(t, ok)
	assert.Nil(t, tt.byT.Front())
	assert.Nil(t, tt.byT.Back())
}

func TestTableDuplicateLeavesNoTrace(t *testing.T) {
	tab := NewTable[rec]()
	byT := NewIndex(tab, Multi, func(r *rec) int { return r.T })
	byID := NewIndex(tab, Unique, func(r *rec) int { return r.ID })
	a, err := tab.Insert(rec{ID: 1, T: 1})
	require.NoError(t, err)
	b, err := tab.Insert(rec{ID: 2, T: 2})
	require.NoError(t, err)
	// The multi index comes first: the failure must not leave it linked.
	_, err = tab.Insert(rec{ID: 1, T: 0})
	require.ErrorIs(t, err, ErrDuplicate)
	err = tab.Update(b, rec{ID: 1, T: 3})
	require.ErrorIs(t, err, ErrDuplicate)
	assert.Equal(t, 2, tab.Len())
	assert.Equal(t, []*Entry[rec]{a, b}, slices.Collect(byT.All()))
	assert.Equal(t, rec{ID: 2, T: 2}, b.Value())
	assert.Same(t, b, byID.Find(2))
	assert.True(t, errors.Is(fmt.Errorf("x: %w", err), ErrDuplicate))
}

func TestNewIndexPanics(t *testing.T) {
	tab := NewTable[rec]()
	key := func(r *rec) int { return r.ID }
	assert.Panics(t, func() { NewIndexFunc[rec, int](tab, Unique, nil, cmp.Compare[int]) })
	assert.Panics(t, func() { NewIndexFunc(tab, Unique, key, nil) })
	NewIndex(tab, Unique, key)
	_, err := tab.Insert(rec{})
	require.NoError(t, err)
	assert.Panics(t, func() { NewIndex(tab, Multi, key) })
}

func TestTableAllocations(t *testing.T) {
	tt := newTestTable()
	id := 0
	allocs := testing.AllocsPerRun(500, func() {
		id++
		if _, err := tt.t.Insert(rec{ID: id, Group: id % 7, T: id % 13}); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 2.0, "allocations per insert")
	e := tt.byID.Find(10)
	require.NotNil(t, e)
	allocs = testing.AllocsPerRun(500, func() {
		v := e.Value()
		v.T++
		v.Group = (v.Group + 1) % 7
		if err := tt.t.Update(e, v); err != nil {
			t.Fatal(err)
		}
	})
	assert.Equal(t, 0.0, allocs, "allocations per update")
	allocs = testing.AllocsPerRun(500, func() {
		if _, err := tt.byID.Upsert(rec{ID: 10, T: 1}); err != nil {
			t.Fatal(err)
		}
	})
	assert.Equal(t, 0.0, allocs, "allocations per upsert of a present key")
}

func TestZeroTable(t *testing.T) {
	var tab Table[rec]
	byT := NewIndex(&tab, Multi, func(r *rec) int { return r.T })
	for i := range 100 {
		_, err := tab.Insert(rec{ID: i, T: 100 - i})
		require.NoError(t, err)
	}
	assert.Equal(t, 1, byT.Front().Value().T)
	assert.Less(t, byT.l.level, 10, "tower heights are random, not maximal")
}
