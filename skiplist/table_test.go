package skiplist

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"unsafe"

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
	inGroup *GroupIndex[rec, int] // T within Group
	groups  *[4]Group[rec]
}

func newTestTable() *testTable {
	t := NewTable[rec]()
	groups := new([4]Group[rec])
	return &testTable{
		t:    t,
		byID: NewIndex(t, Unique, func(r *rec) int { return r.ID }),
		byGroup: NewIndexFunc(t, Multi, func(r *rec) [2]int { return [2]int{r.Group, r.T} },
			func(a, b [2]int) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) }),
		byT:     NewIndex(t, Multi, func(r *rec) int { return r.T }),
		inGroup: NewGroupIndex(t, func(r *rec) *Group[rec] { return &groups[r.Group%len(groups)] }, func(r *rec) int { return r.T }),
		groups:  groups,
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

// checkList checks the links of every level of l against o's order and
// the entries at level 0 against want.
func checkList[K any](t testing.TB, o *order[rec, K], l *list[rec], want []modelEntry) {
	t.Helper()
	k := len(o.t.indexes)
	if l.n != len(want) {
		t.Fatalf("index %d: list length %d, want %d", o.pos, l.n, len(want))
	}
	if n := len(l.head); n > 0 && l.head[n-1].next == nil {
		t.Fatalf("index %d: empty top level %d", o.pos, n-1)
	}
	for j := range l.head {
		var prev *Entry[rec]
		i := 0
		for e := l.head[j].next; e != nil; e = lk(e, o.pos, j, k).next {
			if e.height() <= j || lk(e, o.pos, j, k).prev != prev {
				t.Fatalf("index %d: bad links at level %d", o.pos, j)
			}
			if prev != nil {
				c := o.cmp(o.key(&prev.val), o.key(&e.val))
				if c > 0 || c == 0 && (o.unique || prev.seq() >= e.seq()) {
					t.Fatalf("index %d: out of order at level %d", o.pos, j)
				}
			}
			if j == 0 {
				if i >= len(want) {
					t.Fatalf("index %d: more than %d entries", o.pos, len(want))
				}
				m := want[i]
				if e != m.e || e.val != m.val || e.seq() != m.seq {
					t.Fatalf("index %d position %d: got %+v seq %d, want %+v seq %d", o.pos, i, e.val, e.seq(), m.val, m.seq)
				}
			}
			prev = e
			i++
		}
		if l.head[j].prev != prev {
			t.Fatalf("index %d: bad tail at level %d", o.pos, j)
		}
		if j == 0 && i != len(want) {
			t.Fatalf("index %d: %d entries, want %d", o.pos, i, len(want))
		}
	}
	if len(l.head) == 0 && len(want) > 0 {
		t.Fatalf("index %d: no levels, want %d entries", o.pos, len(want))
	}
}

// checkWalks compares the iterators and Next/Prev walks with want.
func checkWalks(t testing.TB, pos int, all, backward iter.Seq[*Entry[rec]], front, back *Entry[rec], next, prev func(*Entry[rec]) *Entry[rec], want []modelEntry) {
	t.Helper()
	var w []*Entry[rec]
	for _, m := range want {
		w = append(w, m.e)
	}
	got := slices.Collect(all)
	if !slices.Equal(got, w) {
		t.Fatalf("index %d: All differs", pos)
	}
	got = slices.Collect(backward)
	slices.Reverse(got)
	if !slices.Equal(got, w) {
		t.Fatalf("index %d: Backward differs", pos)
	}
	got = nil
	for e := front; e != nil; e = next(e) {
		got = append(got, e)
	}
	if !slices.Equal(got, w) {
		t.Fatalf("index %d: Next walk differs", pos)
	}
	got = nil
	for e := back; e != nil; e = prev(e) {
		got = append(got, e)
	}
	slices.Reverse(got)
	if !slices.Equal(got, w) {
		t.Fatalf("index %d: Prev walk differs", pos)
	}
}

func checkIndex[K any](t testing.TB, x *Index[rec, K], want []modelEntry) {
	t.Helper()
	checkList(t, &x.order, &x.l, want)
	checkWalks(t, x.pos, x.All(), x.Backward(), x.Front(), x.Back(), x.Next, x.Prev, want)
}

func checkGroups(t testing.TB, x *GroupIndex[rec, int], groups *[4]Group[rec], byGroup []modelEntry) {
	t.Helper()
	for g := range groups {
		var want []modelEntry
		for _, m := range byGroup {
			if m.val.Group == g {
				want = append(want, m)
			}
		}
		gr := &groups[g]
		if gr.Len() != len(want) {
			t.Fatalf("group %d: Len %d, want %d", g, gr.Len(), len(want))
		}
		checkList(t, &x.order, &gr.l, want)
		checkWalks(t, x.pos, x.All(gr), x.Backward(gr), x.Front(gr), x.Back(gr), x.Next, x.Prev, want)
		for _, m := range want {
			if x.Group(m.e) != gr {
				t.Fatalf("group %d: entry names another group", g)
			}
		}
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
	checkGroups(t, tt.inGroup, tt.groups, md.sorted(1))
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
		// The same lookups within one group.
		g := b % 4
		want = slices.DeleteFunc(md.sorted(1), func(m modelEntry) bool { return m.val.Group != g })
		gr := &tt.groups[g]
		i = slices.IndexFunc(want, func(m modelEntry) bool { return m.val.T >= c })
		if e = tt.inGroup.Ceil(gr, c); i < 0 {
			require.Nil(t, e, "group Ceil(%d)", c)
		} else {
			require.Same(t, want[i].e, e, "group Ceil(%d)", c)
		}
		if f = tt.inGroup.Find(gr, c); i >= 0 && want[i].val.T == c {
			require.Same(t, want[i].e, f)
		} else {
			require.Nil(t, f)
		}
		j = -1
		for k, m := range want {
			if m.val.T <= c {
				j = k
			}
		}
		if e = tt.inGroup.Floor(gr, c); j < 0 {
			require.Nil(t, e, "group Floor(%d)", c)
		} else {
			require.Same(t, want[j].e, e, "group Floor(%d)", c)
		}
		var desc []*Entry[rec]
		for e := range tt.inGroup.Descend(gr, c) {
			desc = append(desc, e)
		}
		var wdesc []*Entry[rec]
		for k := j; k >= 0; k-- {
			wdesc = append(wdesc, want[k].e)
		}
		require.Equal(t, wdesc, desc, "group Descend(%d)", c)
		var asc []*Entry[rec]
		for e := range tt.inGroup.Ascend(gr, c) {
			asc = append(asc, e)
		}
		var wasc []*Entry[rec]
		for k := max(i, 0); i >= 0 && k < len(want); k++ {
			wasc = append(wasc, want[k].e)
		}
		require.Equal(t, wasc, asc, "group Ascend(%d)", c)
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
	assert.Less(t, len(byT.l.head), 10, "tower heights are random, not maximal")
}

func TestGroupIndex(t *testing.T) {
	type visit struct {
		user string
		page *Group[visit]
		t    int
	}
	var home, news Group[visit]
	tab := NewTable[visit]()
	byTime := NewIndex(tab, Multi, func(v *visit) int { return v.t })
	onPage := NewGroupIndex(tab, func(v *visit) *Group[visit] { return v.page }, func(v *visit) int { return v.t })
	users := map[string]*Entry[visit]{}
	hit := func(user string, page *Group[visit], at int) {
		if e := users[user]; e != nil {
			require.NoError(t, tab.Update(e, visit{user, page, at}))
			return
		}
		e, err := tab.Insert(visit{user, page, at})
		require.NoError(t, err)
		users[user] = e
	}
	names := func(g *Group[visit]) (out []string) {
		for e := range onPage.Backward(g) {
			out = append(out, e.Value().user)
		}
		return out
	}
	hit("alice", &home, 1)
	hit("bob", &news, 2)
	hit("carol", &news, 3)
	hit("dave", &home, 4)
	hit("alice", &news, 5) // moves from home to news
	assert.Equal(t, []string{"alice", "carol", "bob"}, names(&news))
	assert.Equal(t, []string{"dave"}, names(&home))
	assert.Equal(t, 3, news.Len())
	assert.Equal(t, 1, home.Len())
	assert.Same(t, &news, onPage.Group(users["alice"]))
	assert.Equal(t, 5, onPage.Key(users["alice"]))

	// A late hit goes into its place within the group, not at the end.
	hit("erin", &news, 4)
	assert.Equal(t, []string{"alice", "erin", "carol", "bob"}, names(&news))
	assert.Same(t, users["erin"], onPage.Prev(users["alice"]))
	assert.Same(t, users["alice"], onPage.Next(users["erin"]))
	assert.Nil(t, onPage.Next(users["alice"]))
	assert.Nil(t, onPage.Prev(users["dave"]))

	// Iteration within a group survives moves out of it.
	var seen []string
	for e := range onPage.All(&news) {
		seen = append(seen, e.Value().user)
		if e.Value().user == "carol" {
			hit("carol", &home, 6)
		}
	}
	assert.Equal(t, []string{"bob", "carol", "erin", "alice"}, seen)
	assert.Equal(t, []string{"carol", "dave"}, names(&home))

	// Expiring the oldest empties a group; the group is reusable.
	for e := byTime.Front(); e != nil && e.Value().t <= 4; e = byTime.Front() {
		tab.Remove(e)
	}
	assert.Equal(t, []string{"alice"}, names(&news))
	assert.Equal(t, []string{"carol"}, names(&home))
	tab.Remove(users["alice"])
	assert.Equal(t, 0, news.Len())
	assert.Nil(t, onPage.Front(&news))
	assert.Nil(t, onPage.Back(&news))
	hit("frank", &news, 7)
	assert.Equal(t, []string{"frank"}, names(&news))
	assert.Equal(t, 2, tab.Len())
	assert.Panics(t, func() { NewGroupIndex[visit, int](NewTable[visit](), nil, func(v *visit) int { return v.t }) })
}

// TestTableEntryBytes measures the heap an entry takes: one block of the
// record, a header word, a pointer and one link per index, plus the taller
// levels of one entry in four.
func TestTableEntryBytes(t *testing.T) {
	type rec32 struct {
		name string
		g    *Group[rec32]
		t    int64
	}
	var g Group[rec32]
	tab := NewTable[rec32]()
	NewIndex(tab, Multi, func(r *rec32) int64 { return r.t })
	NewGroupIndex(tab, func(r *rec32) *Group[rec32] { return r.g }, func(r *rec32) int64 { return r.t })
	const n = 20_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		if _, err := tab.Insert(rec32{"", &g, int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perEntry := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.1f bytes per entry", perEntry)
	assert.Equal(t, uintptr(48), unsafe.Sizeof(Entry[rec32]{}))
	assert.Less(t, perEntry, 96.0, "an 80-byte entry and ~11 bytes of taller levels")
	assert.Greater(t, perEntry, 80.0)
}
