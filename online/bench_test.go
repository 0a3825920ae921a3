package online

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// benchTrace is a pre-generated stream of hits: users uniform over a
// population, URLs Zipf-distributed, time advancing with some hits late.
type benchTrace struct {
	users, urls []string
	u, p        []int32
	dt          []int64 // offset from the trace start, ms
	span        int64
}

const (
	benchUsers  = 100_000
	benchURLs   = 10_000
	benchWindow = 30 * time.Minute
)

func newBenchTrace(n int) *benchTrace {
	rng := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(rng, 1.1, 1, benchURLs-1)
	tr := &benchTrace{u: make([]int32, n), p: make([]int32, n), dt: make([]int64, n)}
	for i := range benchUsers {
		tr.users = append(tr.users, "user-"+strconv.Itoa(1_000_000+i))
	}
	for i := range benchURLs {
		tr.urls = append(tr.urls, "/articles/"+strconv.Itoa(i)+".html")
	}
	// 5,000 hits/s: 0.2 ms apart; one hit in ten up to 2 s late.
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

// fill makes every user of the trace online, spread over the window, and
// returns the index and the time of the last hit.
func (tr *benchTrace) fill(now *time.Time) *Index {
	x := NewIndex(Config{Window: benchWindow, Now: func() time.Time { return *now }})
	start := now.Add(-benchWindow / 2)
	step := (benchWindow / 2) / benchUsers
	for i, u := range tr.users {
		x.Hit(u, tr.urls[tr.p[i%len(tr.p)]], start.Add(time.Duration(i)*step))
	}
	return x
}

func BenchmarkIndex(b *testing.B) {
	tr := newBenchTrace(1 << 20)
	base := time.UnixMilli(1_800_000_000_000)
	b.Run("Hit", func(b *testing.B) {
		now := base
		x := tr.fill(&now)
		b.ReportAllocs()
		i, off := 0, base.UnixMilli()
		cpu0 := processCPU()
		for b.Loop() {
			x.Hit(tr.users[tr.u[i]], tr.urls[tr.p[i]], time.UnixMilli(off+tr.dt[i]))
			if i++; i == len(tr.u) {
				i, off = 0, off+tr.span
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hits/s")
	})
	b.Run("HitBytes", func(b *testing.B) {
		now := base
		x := tr.fill(&now)
		ub := make([][]byte, len(tr.users))
		for i, u := range tr.users {
			ub[i] = []byte(u)
		}
		pb := make([][]byte, len(tr.urls))
		for i, p := range tr.urls {
			pb[i] = []byte(p)
		}
		b.ReportAllocs()
		i, off := 0, base.UnixMilli()
		cpu0 := processCPU()
		for b.Loop() {
			x.HitBytes(ub[tr.u[i]], pb[tr.p[i]], off+tr.dt[i])
			if i++; i == len(tr.u) {
				i, off = 0, off+tr.span
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hits/s")
	})
	b.Run("HitExpire", func(b *testing.B) {
		// Users leave: the clock runs 400x faster than the trace, so the
		// window holds ~10,000 users and Expire removes as many as arrive.
		now := base
		x := tr.fill(&now)
		b.ReportAllocs()
		i, off := 0, base.UnixMilli()
		cpu0 := processCPU()
		for b.Loop() {
			ms := off + tr.dt[i]*400
			x.Hit(tr.users[tr.u[i]], tr.urls[tr.p[i]], time.UnixMilli(ms))
			if i%64 == 0 {
				now = time.UnixMilli(ms)
				x.Expire()
			}
			if i++; i == len(tr.u) {
				i, off = 0, off+tr.span*400
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hits/s")
	})
	b.Run("Count", func(b *testing.B) {
		now := base
		x := tr.fill(&now)
		n := 0
		cpu0 := processCPU()
		for b.Loop() {
			n += x.Count()
		}
		reportCPU(b, cpu0)
		if n == 0 {
			b.Fatal("no users")
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "counts/s")
	})
	b.Run("OnURL30", func(b *testing.B) {
		now := base
		x := tr.fill(&now)
		b.ReportAllocs()
		i := 0
		var buf []Visit
		cpu0 := processCPU()
		for b.Loop() {
			buf = x.AppendOnURL(buf[:0], tr.urls[tr.p[i]], 30)
			if i++; i == len(tr.p) {
				i = 0
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	})
	b.Run("OnURL30Alloc", func(b *testing.B) {
		now := base
		x := tr.fill(&now)
		b.ReportAllocs()
		i := 0
		cpu0 := processCPU()
		for b.Loop() {
			_ = x.OnURL(tr.urls[tr.p[i]], 30)
			if i++; i == len(tr.p) {
				i = 0
			}
		}
		reportCPU(b, cpu0)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
	})
}

// BenchmarkMemory reports the heap the index holds per tracked user,
// names included, as runtime.MemStats measures it.
func BenchmarkMemory(b *testing.B) {
	tr := newBenchTrace(benchUsers)
	var bytesPerUser float64
	for b.Loop() {
		bytesPerUser = heapPerUser(tr)
	}
	b.ReportMetric(bytesPerUser, "bytes/user")
}

func heapPerUser(tr *benchTrace) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	now := time.UnixMilli(1_800_000_000_000)
	x := NewIndex(Config{Window: benchWindow, Now: func() time.Time { return now }})
	buf := []byte("user-0000000")
	start := now.Add(-benchWindow / 2)
	for i := range benchUsers {
		strconv.AppendInt(buf[:5], int64(1_000_000+i), 10)
		x.HitBytes(buf, []byte(tr.urls[tr.p[i]]), start.Add(time.Duration(i)*time.Millisecond).UnixMilli())
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(x.Count())
}

func TestMemoryPerUser(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	got := heapPerUser(newBenchTrace(benchUsers))
	t.Logf("%.0f bytes per user, names included", got)
	if got > 200 {
		t.Errorf("%.0f bytes per user, want <= 200", got)
	}
}
