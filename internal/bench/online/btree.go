// Package onlinebench compares online.Index (on skiplist.Table) with two
// variants of the same index in one benchmark binary: "towers", the index
// as it was when its records held their own skiplist towers, and "btree",
// a Go map by user, a google/btree ordered by (URL, time) and one ordered
// by time. All three have the same semantics (out-of-order hits ignored,
// expiry at or before Now - Window); TestVariantsAgree checks it.
//
//	cd internal/bench/online && go test -run '^$' -bench . -count 5
package onlinebench

import (
	"cmp"
	"math"
	"time"

	"github.com/google/btree"
)

type brec struct {
	user, url string
	t         int64
	seq       uint64
}

type urlKey struct {
	url string
	t   int64
	seq uint64
	r   *brec
}

type timeKey struct {
	t   int64
	seq uint64
	r   *brec
}

// btreeIndex is online.Index on B-trees.
type btreeIndex struct {
	window int64
	now    func() time.Time
	users  map[string]*brec
	byURL  *btree.BTreeG[urlKey]
	byTime *btree.BTreeG[timeKey]
	cutoff int64
	seq    uint64
}

func newBTreeIndex(window time.Duration, now func() time.Time) *btreeIndex {
	return &btreeIndex{
		window: window.Milliseconds(),
		now:    now,
		users:  map[string]*brec{},
		byURL: btree.NewG(32, func(a, b urlKey) bool {
			if c := cmp.Compare(a.url, b.url); c != 0 {
				return c < 0
			}
			if a.t != b.t {
				return a.t < b.t
			}
			return a.seq < b.seq
		}),
		byTime: btree.NewG(32, func(a, b timeKey) bool {
			if a.t != b.t {
				return a.t < b.t
			}
			return a.seq < b.seq
		}),
		cutoff: math.MinInt64,
	}
}

func (x *btreeIndex) Hit(user, url string, t time.Time) bool {
	ms := t.UnixMilli()
	if ms <= x.cutoff {
		return false
	}
	x.seq++
	r := x.users[user]
	if r != nil {
		if ms < r.t {
			return false
		}
		x.byURL.Delete(urlKey{url: r.url, t: r.t, seq: r.seq})
		x.byTime.Delete(timeKey{t: r.t, seq: r.seq})
		if r.url != url {
			r.url = url
		}
	} else {
		r = &brec{user: user, url: url}
		x.users[user] = r
	}
	r.t, r.seq = ms, x.seq
	x.byURL.ReplaceOrInsert(urlKey{url: r.url, t: r.t, seq: r.seq, r: r})
	x.byTime.ReplaceOrInsert(timeKey{t: r.t, seq: r.seq, r: r})
	return true
}

func (x *btreeIndex) Expire() int {
	x.cutoff = max(x.cutoff, x.now().UnixMilli()-x.window)
	n := 0
	for {
		k, ok := x.byTime.Min()
		if !ok || k.t > x.cutoff {
			return n
		}
		x.byTime.DeleteMin()
		x.byURL.Delete(urlKey{url: k.r.url, t: k.t, seq: k.seq})
		delete(x.users, k.r.user)
		n++
	}
}

func (x *btreeIndex) Count() int { return len(x.users) }

type visit struct {
	User, URL string
	Time      time.Time
}

func (x *btreeIndex) AppendOnURL(dst []visit, url string, limit int) []visit {
	x.byURL.DescendLessOrEqual(urlKey{url: url, t: math.MaxInt64, seq: math.MaxUint64}, func(k urlKey) bool {
		if k.url != url || limit == 0 {
			return false
		}
		dst = append(dst, visit{User: k.r.user, URL: k.url, Time: time.UnixMilli(k.t)})
		limit--
		return true
	})
	return dst
}
