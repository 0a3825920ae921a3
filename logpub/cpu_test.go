package logpub

import (
	"testing"
	"time"
)

// cpuTimer reports the process CPU time per operation as "cpu-ns/op", a
// figure that holds on a machine shared with other work where wall-clock
// ns/op does not.
type cpuTimer struct{ start time.Duration }

func startCPU() cpuTimer { return cpuTimer{start: processCPU()} }

func (c cpuTimer) report(b *testing.B, n int) {
	if n > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(n), "cpu-ns/op")
	}
}
