package skiplistbench

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock accumulates the process CPU time (user + system, all threads,
// so GC work counts) spent while the benchmark timer runs. On a shared
// machine wall-clock ns/op includes time spent waiting for a core; CPU
// time per operation does not.
type cpuClock struct {
	b       *testing.B
	started time.Duration
	total   time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuClock {
	return &cpuClock{b: b, started: processCPU()}
}

// stop stops the CPU clock and the benchmark timer. The clock stops first
// and starts last: StopTimer and StartTimer read memory statistics, which
// stops the world, and that cost must not count as the operation's.
func (c *cpuClock) stop() {
	c.total += processCPU() - c.started
	c.b.StopTimer()
}

// start restarts both.
func (c *cpuClock) start() {
	c.b.StartTimer()
	c.started = processCPU()
}

// report adds the cpu-ns/op metric; call it after the loop.
func (c *cpuClock) report() {
	c.total += processCPU() - c.started
	c.b.ReportMetric(float64(c.total.Nanoseconds())/float64(c.b.N), "cpu-ns/op")
}
