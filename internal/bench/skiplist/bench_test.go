package skiplistbench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

// sizes are the benchmarked numbers of elements. PEERSCALE_BENCH_SIZES
// (comma-free list like "1000 100000") overrides them.
func sizes() []int {
	if s := os.Getenv("PEERSCALE_BENCH_SIZES"); s != "" {
		var out []int
		for _, f := range splitFields(s) {
			n, err := strconv.Atoi(f)
			if err == nil && n > 0 {
				out = append(out, n)
			}
		}
		return out
	}
	return []int{1_000, 100_000, 1_000_000}
}

func splitFields(s string) []string {
	var out []string
	start := -1
	for i, r := range s + " " {
		if r == ' ' || r == ',' {
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	return out
}

// distinctKeys returns n distinct random int64 keys in random order.
func distinctKeys(n int, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	seen := make(map[int64]struct{}, n)
	keys := make([]int64, 0, n)
	for len(keys) < n {
		k := rng.Int64()
		if _, dup := seen[k]; !dup {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	return keys
}

func filled(im impl, keys []int64) ordered {
	m := im.new()
	for _, k := range keys {
		m.set(k, k)
	}
	return m
}

func forEach(b *testing.B, f func(b *testing.B, n int, im impl)) {
	for _, n := range sizes() {
		for _, im := range impls {
			b.Run(fmt.Sprintf("n=%d/%s", n, im.name), func(b *testing.B) {
				f(b, n, im)
			})
		}
	}
}

// BenchmarkInsert inserts random keys into a structure holding n random
// keys; it grows to at most 1.25n before being trimmed back (untimed).
func BenchmarkInsert(b *testing.B) {
	forEach(b, func(b *testing.B, n int, im impl) {
		all := distinctKeys(n+max(n/4, 1), 1)
		base, pool := all[:n], all[n:]
		m := filled(im, base)
		b.ReportAllocs()
		clk := startCPU(b)
		defer clk.report()
		i := 0
		for b.Loop() {
			if i == len(pool) {
				clk.stop()
				for _, k := range pool {
					m.del(k)
				}
				i = 0
				clk.start()
			}
			m.set(pool[i], 1)
			i++
		}
	})
}

// BenchmarkGet looks up present random keys in a structure of n keys.
func BenchmarkGet(b *testing.B) {
	forEach(b, func(b *testing.B, n int, im impl) {
		keys := distinctKeys(n, 2)
		m := filled(im, keys)
		rand.New(rand.NewPCG(3, 3)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		b.ReportAllocs()
		clk := startCPU(b)
		defer clk.report()
		i := 0
		for b.Loop() {
			if _, ok := m.get(keys[i]); !ok {
				b.Fatal("missing key")
			}
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
}

// BenchmarkDelete deletes random present keys from a structure of n keys;
// every n/4 deletes the keys are put back (untimed).
func BenchmarkDelete(b *testing.B) {
	forEach(b, func(b *testing.B, n int, im impl) {
		keys := distinctKeys(n, 4)
		m := filled(im, keys)
		pool := keys[:max(n/4, 1)]
		b.ReportAllocs()
		clk := startCPU(b)
		defer clk.report()
		i := 0
		for b.Loop() {
			if i == len(pool) {
				clk.stop()
				for _, k := range pool {
					m.set(k, k)
				}
				i = 0
				clk.start()
			}
			if !m.del(pool[i]) {
				b.Fatal("missing key")
			}
			i++
		}
	})
}

// BenchmarkPopFront removes the smallest key of a structure of n random
// keys; every n/4 pops the keys are put back (untimed).
func BenchmarkPopFront(b *testing.B) {
	forEach(b, func(b *testing.B, n int, im impl) {
		keys := distinctKeys(n, 5)
		m := filled(im, keys)
		slices.Sort(keys)
		b.ReportAllocs()
		clk := startCPU(b)
		defer clk.report()
		popped := 0
		for b.Loop() {
			if popped == max(n/4, 1) {
				clk.stop()
				for _, k := range keys[:popped] {
					m.set(k, k)
				}
				popped = 0
				clk.start()
			}
			if !m.popFront() {
				b.Fatal("empty")
			}
			popped++
		}
	})
}

// BenchmarkAppend inserts increasing keys after n increasing keys; every
// n/4 appends they are popped from the back (untimed).
func BenchmarkAppend(b *testing.B) {
	forEach(b, func(b *testing.B, n int, im impl) {
		m := im.new()
		for k := range int64(n) {
			m.set(k, k)
		}
		b.ReportAllocs()
		clk := startCPU(b)
		defer clk.report()
		next, added := int64(n), 0
		for b.Loop() {
			if added == max(n/4, 1) {
				clk.stop()
				for range added {
					m.popBack()
				}
				next, added = int64(n), 0
				clk.start()
			}
			m.set(next, next)
			next++
			added++
		}
	})
}

// BenchmarkBuild builds a structure of n random keys per iteration and
// reports the heap bytes per element of the result (after GC) and the
// allocations per insert.
func BenchmarkBuild(b *testing.B) {
	forEach(b, func(b *testing.B, n int, im impl) {
		keys := distinctKeys(n, 6)
		var bytesPerElem, allocsPerInsert float64
		for b.Loop() {
			b.StopTimer()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.StartTimer()
			m := filled(im, keys)
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			bytesPerElem = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
			allocsPerInsert = float64(after.Mallocs-before.Mallocs) / float64(n)
			if m.len() != n {
				b.Fatalf("len %d, want %d", m.len(), n)
			}
			runtime.KeepAlive(m)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/insert")
		b.ReportMetric(bytesPerElem, "B/elem")
		b.ReportMetric(allocsPerInsert, "allocs/insert")
	})
}

// TestImplementations checks that the adapters agree, so the benchmarks
// compare equivalent work.
func TestImplementations(t *testing.T) {
	keys := distinctKeys(5000, 9)
	for _, im := range impls {
		m := filled(im, keys)
		if m.len() != len(keys) {
			t.Fatalf("%s: len %d", im.name, m.len())
		}
		for _, k := range keys[:100] {
			if v, ok := m.get(k); !ok || v != k {
				t.Fatalf("%s: get(%d) = %d, %v", im.name, k, v, ok)
			}
			if !m.del(k) || m.del(k) {
				t.Fatalf("%s: del(%d)", im.name, k)
			}
		}
		for m.len() > 0 {
			if !m.popFront() {
				t.Fatalf("%s: popFront on non-empty", im.name)
			}
		}
		if m.popFront() || m.popBack() {
			t.Fatalf("%s: pop on empty", im.name)
		}
	}
}
