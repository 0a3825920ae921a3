package bustest

import (
	"fmt"
	"testing"

	"github.com/peerscale/peerscale/bus"
)

// BenchmarkChainAdd measures what a chaos test pays per delivered event to
// keep a hash chain of a stream.
func BenchmarkChainAdd(b *testing.B) {
	for _, size := range []int{0, 200, 4096} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			m := &bus.Message{Group: "g", Sender: ma, Level: bus.Agreed, View: vid(1), Data: Payload("s", 1, size)}
			var c Chain
			b.ReportAllocs()
			for b.Loop() {
				c.Add(m)
				if c.Len() >= 1<<16 {
					c = Chain{}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkFIFOCheck measures the per-message cost of the FIFO checker.
func BenchmarkFIFOCheck(b *testing.B) {
	msgs := make([]*bus.Message, 1<<12)
	for i := range msgs {
		msgs[i] = &bus.Message{Sender: ma, Level: bus.FIFO, Data: Payload("s", uint64(i), 200)}
	}
	var f FIFO
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i == len(msgs) {
			f, i = FIFO{}, 0
		}
		if err := f.Check(msgs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
