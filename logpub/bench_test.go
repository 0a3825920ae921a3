package logpub

import (
	"testing"
)

// BenchmarkAppendLine measures the formatter alone (target: combined+%T
// at most 300 ns per line, 0 allocations).
func BenchmarkAppendLine(b *testing.B) {
	for _, bc := range []struct{ name, layout string }{
		{"common", CommonFormat},
		{"combined+T", CombinedFormat + " %T"},
		{"vhost_combined+D", VhostCombinedFormat + " %D"},
		{"strftime", `%h %{%Y-%m-%dT%H:%M:%S}t.%{msec_frac}t "%r" %>s %B`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := MustCompile(bc.layout)
			e := testEntry(b)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				buf = f.AppendLine(buf[:0], e)
			}
			cpu.report(b, b.N)
			b.SetBytes(int64(len(buf)))
		})
	}
}
