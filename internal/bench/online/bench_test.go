package onlinebench

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peerscale/peerscale/online"
)

const (
	benchUsers  = 100_000
	benchURLs   = 10_000
	benchWindow = 30 * time.Minute
)

type trace struct {
	users, urls []string
	u, p        []int32
	dt          []int64
	span        int64
}

// newTrace: users uniform over 100,000, URLs Zipf (s = 1.1) over 10,000,
// 5,000 hits/s of trace time, one hit in ten up to 2 s late.
func newTrace(n int) *trace {
	rng := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(rng, 1.1, 1, benchURLs-1)
	tr := &trace{u: make([]int32, n), p: make([]int32, n), dt: make([]int64, n)}
	for i := range benchUsers {
		tr.users = append(tr.users, "user-"+strconv.Itoa(1_000_000+i))
	}
	for i := range benchURLs {
		tr.urls = append(tr.urls, "/articles/"+strconv.Itoa(i)+".html")
	}
	for i := range n {
		tr.u[i] = int32(rng.IntN(benchUsers))
		tr.p[i] = int32(z.Uint64())
		t := int64(i) / 5
		if rng.IntN(10) == 0 {
			t -= rng.Int64N(2000)
		}
		tr.dt[i] = t
	}
	tr.span = int64(n)/5 + 2000
	return tr
}

type index interface {
	Hit(user, url string, t time.Time) bool
	Expire() int
	Count() int
}

type variant struct {
	name  string
	new   func(now func() time.Time) index
	query func(x index, url string) int
}

func variants() []variant {
	var sv []online.Visit
	var bv []visit
	return []variant{
		{
			name: "skiplist",
			new: func(now func() time.Time) index {
				return online.NewIndex(online.Config{Window: benchWindow, Now: now})
			},
			query: func(x index, url string) int {
				sv = x.(*online.Index).AppendOnURL(sv[:0], url, 30)
				return len(sv)
			},
		},
		{
			name: "towers",
			new: func(now func() time.Time) index {
				return newTowersIndex(benchWindow, now)
			},
			query: func(x index, url string) int {
				bv = x.(*towersIndex).AppendOnURL(bv[:0], url, 30)
				return len(bv)
			},
		},
		{
			name: "btree",
			new: func(now func() time.Time) index {
				return newBTreeIndex(benchWindow, now)
			},
			query: func(x index, url string) int {
				bv = x.(*btreeIndex).AppendOnURL(bv[:0], url, 30)
				return len(bv)
			},
		},
	}
}

func fill(v variant, tr *trace, now *time.Time) index {
	x := v.new(func() time.Time { return *now })
	start := now.Add(-benchWindow / 2)
	step := (benchWindow / 2) / benchUsers
	for i, u := range tr.users {
		x.Hit(u, tr.urls[tr.p[i%len(tr.p)]], start.Add(time.Duration(i)*step))
	}
	return x
}

// BenchmarkHit runs the same trace through both variants: 100,000 users
// online, Expire every 64 hits.
func BenchmarkHit(b *testing.B) {
	tr := newTrace(1 << 20)
	for _, v := range variants() {
		b.Run(v.name, func(b *testing.B) {
			now := time.UnixMilli(1_800_000_000_000)
			x := fill(v, tr, &now)
			b.ReportAllocs()
			i, off := 0, now.UnixMilli()
			cpu0 := processCPU()
			for b.Loop() {
				ms := off + tr.dt[i]
				x.Hit(tr.users[tr.u[i]], tr.urls[tr.p[i]], time.UnixMilli(ms))
				if i%64 == 0 {
					now = time.UnixMilli(ms)
					x.Expire()
				}
				if i++; i == len(tr.u) {
					i, off = 0, off+tr.span
				}
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hits/s")
			if x.Count() < benchUsers/2 {
				b.Fatalf("%d users online", x.Count())
			}
		})
	}
}

// BenchmarkOnURL30 asks for the 30 newest users of URLs drawn like the
// hits (popular URLs more often).
func BenchmarkOnURL30(b *testing.B) {
	tr := newTrace(1 << 16)
	for _, v := range variants() {
		b.Run(v.name, func(b *testing.B) {
			now := time.UnixMilli(1_800_000_000_000)
			x := fill(v, tr, &now)
			b.ReportAllocs()
			i, n := 0, 0
			cpu0 := processCPU()
			for b.Loop() {
				n += v.query(x, tr.urls[tr.p[i]])
				if i++; i == len(tr.p) {
					i = 0
				}
			}
			reportCPU(b, cpu0)
			if n == 0 {
				b.Fatal("no results")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// TestVariantsAgree checks that the other variants answer like the index,
// so the benchmark compares equal work.
func TestVariantsAgree(t *testing.T) {
	tr := newTrace(1 << 14)
	now := time.UnixMilli(1_800_000_000_000)
	s := online.NewIndex(online.Config{Window: benchWindow, Now: func() time.Time { return now }})
	others := map[string]interface {
		index
		AppendOnURL([]visit, string, int) []visit
	}{
		"towers": newTowersIndex(benchWindow, func() time.Time { return now }),
		"btree":  newBTreeIndex(benchWindow, func() time.Time { return now }),
	}
	off := now.UnixMilli() - benchWindow.Milliseconds()/2
	for i := range tr.u {
		ms := off + tr.dt[i]*100
		a := s.Hit(tr.users[tr.u[i]], tr.urls[tr.p[i]], time.UnixMilli(ms))
		for name, o := range others {
			if c := o.Hit(tr.users[tr.u[i]], tr.urls[tr.p[i]], time.UnixMilli(ms)); a != c {
				t.Fatalf("hit %d: skiplist %v, %s %v", i, a, name, c)
			}
		}
		if i%100 == 0 {
			now = time.UnixMilli(ms)
			a := s.Expire()
			for name, o := range others {
				if c := o.Expire(); a != c {
					t.Fatalf("expire at %d: skiplist %d, %s %d", i, a, name, c)
				}
			}
		}
	}
	if s.Count() == 0 {
		t.Fatal("nobody online")
	}
	for name, o := range others {
		if s.Count() != o.Count() {
			t.Fatalf("count: skiplist %d, %s %d", s.Count(), name, o.Count())
		}
		for _, url := range tr.urls[:50] {
			a := s.OnURL(url, 30)
			c := o.AppendOnURL(nil, url, 30)
			if len(a) != len(c) {
				t.Fatalf("%s on %s: %d vs %d users", name, url, len(a), len(c))
			}
			for j := range a {
				if a[j].User != c[j].User || !a[j].Time.Equal(c[j].Time) {
					t.Fatalf("%s on %s #%d: %v vs %v", name, url, j, a[j], c[j])
				}
			}
		}
	}
}

// BenchmarkMemory reports the heap each variant holds per tracked user,
// user names included (URL names not), with 100,000 users online.
func BenchmarkMemory(b *testing.B) {
	tr := newTrace(benchUsers)
	for _, v := range variants() {
		b.Run(v.name, func(b *testing.B) {
			var perUser float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				now := time.UnixMilli(1_800_000_000_000)
				x := v.new(func() time.Time { return now })
				start := now.Add(-benchWindow / 2)
				for i, u := range tr.users {
					x.Hit(strings.Clone(u), tr.urls[tr.p[i]], start.Add(time.Duration(i)*time.Millisecond))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perUser = float64(after.HeapAlloc-before.HeapAlloc) / float64(x.Count())
				runtime.KeepAlive(x)
			}
			b.ReportMetric(perUser, "bytes/user")
		})
	}
}
