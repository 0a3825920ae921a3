// Package skiplistbench compares peerscale's skiplist.Map with other Go
// ordered maps in one benchmark binary: github.com/huandu/skiplist,
// github.com/google/btree (BTreeG) and github.com/tidwall/btree (BTreeG
// with locks off). It is a separate module so that the main go.mod lists
// only what the packages use.
//
//	cd internal/bench/skiplist
//	go test -run '^$' -bench . -count 3 -timeout 80m | tee bench.txt
//
// PEERSCALE_BENCH_SIZES="1000 100000" limits the sizes (default 1k, 100k
// and 1M). Read the cpu-ns/op metric (process CPU time per operation) on a
// shared machine: wall ns/op includes time spent waiting for a core.
//
// TestInterleaved measures the same operations in short alternating
// batches in one process and reports medians and per-round ratios to
// tidwall/btree, which hold better than the sequential sub-benchmarks when
// the machine's load drifts:
//
//	PEERSCALE_BENCH_INTERLEAVED=1 go test -run Interleaved -v -timeout 60m
package skiplistbench

import (
	gbtree "github.com/google/btree"
	hskiplist "github.com/huandu/skiplist"
	"github.com/peerscale/peerscale/skiplist"
	tbtree "github.com/tidwall/btree"
)

// ordered is the common surface of the compared structures, all keyed by
// int64 with int64 values.
type ordered interface {
	set(k, v int64)
	get(k int64) (int64, bool)
	del(k int64) bool
	popFront() bool
	popBack() bool
	len() int
}

type impl struct {
	name string
	new  func() ordered
}

var impls = []impl{
	{"peerscale", func() ordered { return psMap{skiplist.New[int64, int64]()} }},
	{"huandu", func() ordered { return huMap{hskiplist.New(hskiplist.Int64)} }},
	{"google-btree", func() ordered {
		return gMap{gbtree.NewG(32, func(a, b kv) bool { return a.k < b.k })}
	}},
	{"tidwall-btree", func() ordered {
		return tMap{tbtree.NewBTreeGOptions(func(a, b kv) bool { return a.k < b.k }, tbtree.Options{NoLocks: true})}
	}},
}

type kv struct{ k, v int64 }

type psMap struct{ m *skiplist.Map[int64, int64] }

func (m psMap) set(k, v int64)            { m.m.Set(k, v) }
func (m psMap) get(k int64) (int64, bool) { return m.m.Get(k) }
func (m psMap) del(k int64) bool          { _, ok := m.m.Delete(k); return ok }
func (m psMap) popFront() bool            { return m.m.PopFront() != nil }
func (m psMap) popBack() bool             { return m.m.PopBack() != nil }
func (m psMap) len() int                  { return m.m.Len() }

type huMap struct{ m *hskiplist.SkipList }

func (m huMap) set(k, v int64) { m.m.Set(k, v) }
func (m huMap) get(k int64) (int64, bool) {
	e := m.m.Get(k)
	if e == nil {
		return 0, false
	}
	return e.Value.(int64), true
}
func (m huMap) del(k int64) bool { return m.m.Remove(k) != nil }
func (m huMap) popFront() bool   { return m.m.RemoveFront() != nil }
func (m huMap) popBack() bool    { return m.m.RemoveBack() != nil }
func (m huMap) len() int         { return m.m.Len() }

type gMap struct{ t *gbtree.BTreeG[kv] }

func (m gMap) set(k, v int64) { m.t.ReplaceOrInsert(kv{k, v}) }
func (m gMap) get(k int64) (int64, bool) {
	x, ok := m.t.Get(kv{k: k})
	return x.v, ok
}
func (m gMap) del(k int64) bool { _, ok := m.t.Delete(kv{k: k}); return ok }
func (m gMap) popFront() bool   { _, ok := m.t.DeleteMin(); return ok }
func (m gMap) popBack() bool    { _, ok := m.t.DeleteMax(); return ok }
func (m gMap) len() int         { return m.t.Len() }

type tMap struct{ t *tbtree.BTreeG[kv] }

func (m tMap) set(k, v int64) { m.t.Set(kv{k, v}) }
func (m tMap) get(k int64) (int64, bool) {
	x, ok := m.t.Get(kv{k: k})
	return x.v, ok
}
func (m tMap) del(k int64) bool { _, ok := m.t.Delete(kv{k: k}); return ok }
func (m tMap) popFront() bool   { _, ok := m.t.PopMin(); return ok }
func (m tMap) popBack() bool    { _, ok := m.t.PopMax(); return ok }
func (m tMap) len() int         { return m.t.Len() }
