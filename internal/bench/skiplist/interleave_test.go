package skiplistbench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestInterleaved measures each structure in short alternating batches of
// Get, Insert and Delete of random keys, PopFront and Append of increasing
// keys (process CPU time, as cpu-ns/op) and reports, per operation, the
// median time of each and the median of the per-round ratios to
// tidwall/btree.
// On a shared machine whose load drifts, this ratio is steadier than one
// computed from sub-benchmarks run minutes apart. It runs only when
// PEERSCALE_BENCH_INTERLEAVED is set; PEERSCALE_BENCH_SIZES selects sizes
// and PEERSCALE_BENCH_ROUNDS the number of rounds (default 15):
//
//	PEERSCALE_BENCH_INTERLEAVED=1 PEERSCALE_BENCH_SIZES=1000000 go test -run Interleaved -v -timeout 60m
func TestInterleaved(t *testing.T) {
	if os.Getenv("PEERSCALE_BENCH_INTERLEAVED") == "" {
		t.Skip("set PEERSCALE_BENCH_INTERLEAVED=1 to run")
	}
	rounds := 15
	if r, err := strconv.Atoi(os.Getenv("PEERSCALE_BENCH_ROUNDS")); err == nil && r > 0 {
		rounds = r
	}
	for _, n := range sizes() {
		// A batch changes at most n/4 elements; small sizes repeat
		// batches (restoring untimed in between) up to 50,000 operations.
		batch := min(max(n/4, 1), 50_000)
		reps := max(50_000/batch, 1)
		// Keys: n present, a pool of n/4 absent to insert.
		all := distinctKeys(n+n/4, 11)
		base, pool := all[:n], all[n:]
		lookups := slices.Clone(base)
		shuffle(lookups, 12)
		type state struct {
			m         ordered
			getAt     int
			insAt     int
			delAt     int
			delPool   []int64
			next      int64
			popped    int
			appendSet ordered
		}
		var sts []*state
		for _, im := range impls {
			st := &state{m: filled(im, base), delPool: base[:n/4]}
			st.appendSet = im.new()
			for k := range int64(n) {
				st.appendSet.set(k, k)
			}
			st.next = int64(n)
			sts = append(sts, st)
		}
		ops := []struct {
			name string
			run  func(st *state)
		}{
			{"Get", func(st *state) {
				for range batch {
					if _, ok := st.m.get(lookups[st.getAt]); !ok {
						t.Fatal("missing key")
					}
					st.getAt = (st.getAt + 1) % len(lookups)
				}
			}},
			{"Insert", func(st *state) {
				for range batch {
					st.m.set(pool[st.insAt], 1)
					st.insAt++
				}
			}},
			{"Delete", func(st *state) {
				for range batch {
					if !st.m.del(st.delPool[st.delAt]) {
						t.Fatal("missing key")
					}
					st.delAt++
				}
			}},
			{"PopFront", func(st *state) {
				for range batch {
					if !st.appendSet.popFront() {
						t.Fatal("empty")
					}
					st.popped++
				}
			}},
			{"Append", func(st *state) {
				for range batch {
					st.appendSet.set(st.next, st.next)
					st.next++
				}
			}},
		}
		// restore undoes Insert and Delete between rounds (untimed).
		restore := func(st *state) {
			for _, k := range pool[:st.insAt] {
				st.m.del(k)
			}
			for _, k := range st.delPool[:st.delAt] {
				st.m.set(k, k)
			}
			st.insAt, st.delAt = 0, 0
			for st.next > int64(n) {
				st.appendSet.popBack()
				st.next--
			}
			for k := range int64(st.popped) {
				st.appendSet.set(k, k)
			}
			st.popped = 0
		}
		times := make([][][]float64, len(ops)) // op, impl, round
		for o := range ops {
			times[o] = make([][]float64, len(impls))
		}
		for r := range rounds {
			for o, op := range ops {
				for i := range impls {
					// Alternate the order so that neither always runs first.
					i = (i + r) % len(impls)
					var cpu time.Duration
					for range reps {
						c0 := processCPU()
						op.run(sts[i])
						cpu += processCPU() - c0
						restore(sts[i])
					}
					times[o][i] = append(times[o][i], float64(cpu.Nanoseconds())/float64(batch*reps))
				}
			}
		}
		ref := slices.IndexFunc(impls, func(im impl) bool { return im.name == "tidwall-btree" })
		for o, op := range ops {
			line := fmt.Sprintf("n=%d %-8s", n, op.name)
			for i, im := range impls {
				var ratios []float64
				for r := range rounds {
					ratios = append(ratios, times[o][i][r]/times[o][ref][r])
				}
				line += fmt.Sprintf("  %s %6.0f ns (%.2f×)", im.name, median(times[o][i]), median(ratios))
			}
			t.Log(line)
		}
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func shuffle(keys []int64, seed uint64) {
	rand.New(rand.NewPCG(seed, seed)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
}
