package skiplist_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/peerscale/peerscale/skiplist"
)

// Comparisons with other libraries live in internal/bench/skiplist; these
// benchmarks track this package alone.

func BenchmarkMap(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		keys := make([]int64, n)
		rng := rand.New(rand.NewPCG(1, 1))
		for i := range keys {
			keys[i] = rng.Int64()
		}
		m := skiplist.New[int64, int64]()
		for _, k := range keys {
			m.Set(k, k)
		}
		b.Run(fmt.Sprintf("Get/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, ok := m.Get(keys[i%n]); !ok {
					b.Fatal("missing")
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("DeleteSet/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%n]
				m.Delete(k)
				m.Set(k, k)
				i++
			}
		})
		b.Run(fmt.Sprintf("PopFrontAppend/n=%d", n), func(b *testing.B) {
			q := skiplist.New[int64, int64]()
			for i := range int64(n) {
				q.Set(i, i)
			}
			next := int64(n)
			b.ReportAllocs()
			for b.Loop() {
				q.PopFront()
				q.Set(next, next)
				next++
			}
		})
	}
}

// BenchmarkWhosOnline (Hit, urlTime: see the Table example) runs the who's-online workload on a Table with three
// indexes: a hit by a random user (upsert: the user moves to a new URL and
// to the newest time), and per 16 hits one expiry of the oldest user and
// one walk of the 10 newest users of a URL.
func BenchmarkWhosOnline(b *testing.B) {
	for _, users := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("users=%d", users), func(b *testing.B) {
			t := skiplist.NewTable[Hit]()
			byUser := skiplist.NewIndex(t, skiplist.Unique, func(h *Hit) string { return h.User })
			byURL := skiplist.NewIndexFunc(t, skiplist.Multi,
				func(h *Hit) urlTime { return urlTime{h.URL, h.Last} }, compareURLTime)
			byTime := skiplist.NewIndexFunc(t, skiplist.Multi,
				func(h *Hit) time.Time { return h.Last }, time.Time.Compare)
			names := make([]string, users)
			for i := range names {
				names[i] = fmt.Sprintf("user%07d", i)
			}
			urls := make([]string, 200)
			for i := range urls {
				urls[i] = fmt.Sprintf("/page/%d", i)
			}
			rng := rand.New(rand.NewPCG(2, 2))
			now := time.Unix(1_700_000_000, 0)
			hitOnce := func() {
				now = now.Add(time.Microsecond)
				h := Hit{names[rng.IntN(users)], urls[rng.IntN(len(urls))], now}
				if _, err := byUser.Upsert(h); err != nil {
					b.Fatal(err)
				}
			}
			for range users * 2 {
				hitOnce()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				hitOnce()
				if i++; i%16 == 0 {
					byTime.PopFront()
					url := urls[rng.IntN(len(urls))]
					n := 0
					for e := range byURL.Descend(urlTime{url, now}) {
						if e.Value().URL != url || n == 10 {
							break
						}
						n++
					}
				}
			}
			b.ReportMetric(float64(t.Len()), "online")
		})
	}
}
