package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerscale/peerscale/bus"
)

const benchSize = 200

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drainer counts the messages every handle receives, in the background.
type drainer struct {
	got  []atomic.Int64
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func startDrain(gs []bus.Group) *drainer {
	ctx, cancel := context.WithCancel(context.Background())
	d := &drainer{got: make([]atomic.Int64, len(gs)), stop: cancel}
	for i, g := range gs {
		d.wg.Go(func() {
			for {
				ev, err := g.Recv(ctx)
				if err != nil {
					return
				}
				if _, ok := ev.(*bus.Message); ok {
					d.got[i].Add(1)
				}
			}
		})
	}
	return d
}

// wait waits until every handle received want messages, then stops.
func (d *drainer) wait(tb testing.TB, want int64) {
	deadline := time.Now().Add(time.Minute)
	for i := range d.got {
		for d.got[i].Load() < want {
			if time.Now().After(deadline) {
				tb.Fatalf("member %d received %d of %d", i, d.got[i].Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	d.stop()
	d.wg.Wait()
}

func benchCluster(b *testing.B, n int) ([]*Bus, []bus.Group) {
	bs := startN(b, n, func(i int, c *Config) { c.Logger = testLogger() })
	return bs, joinAll(b, bs, "g")
}

// BenchmarkFIFO measures FIFO throughput on loopback with 200-byte
// messages: one sender to three members, and five members all sending.
// One op is one Send; sends/s counts Send calls per second of wall time,
// with every message delivered to every member (the sender included).
func BenchmarkFIFO(b *testing.B) {
	for _, tc := range []struct {
		name           string
		members, sends int
	}{{"members=3/senders=1", 3, 1}, {"members=5/senders=5", 5, 5}} {
		b.Run(tc.name, func(b *testing.B) { benchSends(b, bus.FIFO, tc.members, tc.sends) })
	}
}

// BenchmarkAgreed measures Agreed throughput on loopback with 200-byte
// messages, every member sending: three members, and five.
func BenchmarkAgreed(b *testing.B) {
	for _, tc := range []struct{ members, sends int }{{3, 1}, {3, 3}, {5, 5}} {
		b.Run(fmt.Sprintf("members=%d/senders=%d", tc.members, tc.sends), func(b *testing.B) { benchSends(b, bus.Agreed, tc.members, tc.sends) })
	}
}

func benchSends(b *testing.B, level bus.Level, members, sends int) {
	bs, gs := benchCluster(b, members)
	d := startDrain(gs)
	data := make([]byte, benchSize)
	b.ReportAllocs()
	start, cpu0 := time.Now(), cpuTime()
	var total int64
	var wg sync.WaitGroup
	// b.Loop drives sender 0; the other senders keep pace.
	var stop atomic.Bool
	counts := make([]int64, sends)
	for i := 1; i < sends; i++ {
		wg.Go(func() {
			for !stop.Load() {
				if bs[i].Send(context.Background(), "g", level, data) != nil {
					return
				}
				counts[i]++
			}
		})
	}
	for b.Loop() {
		if err := bs[0].Send(context.Background(), "g", level, data); err != nil {
			b.Fatal(err)
		}
		counts[0]++
	}
	stop.Store(true)
	wg.Wait()
	for _, c := range counts {
		total += c
	}
	d.wait(b, total)
	el := time.Since(start)
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(total)/1000, "cpu-µs/send")
	b.ReportMetric(float64(total)/el.Seconds(), "sends/s")
	b.ReportMetric(float64(total*int64(members))/el.Seconds(), "deliveries/s")
}

// BenchmarkFIFOLatency measures one-way latency with three members all
// sending FIFO at 1,000 messages/s each (one op is one millisecond tick in
// which each member sends one message).
func BenchmarkFIFOLatency(b *testing.B) { benchLatency(b, bus.FIFO) }

// BenchmarkAgreedLatency is BenchmarkFIFOLatency at Agreed: from Send to
// delivery in the agreed order, at every member.
func BenchmarkAgreedLatency(b *testing.B) { benchLatency(b, bus.Agreed) }

func benchLatency(b *testing.B, level bus.Level) {
	bs, gs := benchCluster(b, 3)
	var mu sync.Mutex
	var lat []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() {
			for {
				ev, err := g.Recv(b.Context())
				if err != nil {
					return
				}
				if m, ok := ev.(*bus.Message); ok && len(m.Data) >= 8 {
					d := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(m.Data)))
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	data := make([]byte, benchSize)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for b.Loop() {
		<-tick.C
		for _, m := range bs {
			binary.BigEndian.PutUint64(data, uint64(time.Now().UnixNano()))
			if err := m.Send(b.Context(), "g", level, data); err != nil {
				b.Fatal(err)
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // let the last messages land
	close(stop)
	for _, m := range bs {
		m.Close()
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no messages")
	}
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.5), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkCrashDetection measures, with the LAN profile, the time from a
// member's crash (no leave) to the view without it at both survivors.
func BenchmarkCrashDetection(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		b.StopTimer()
		bs := startN(b, 3, func(i int, c *Config) {
			lan := LANConfig()
			c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult = lan.ProbeInterval, lan.ProbeTimeout, lan.SuspicionMult
		})
		gs := joinAll(b, bs, "g")
		b.StartTimer()
		start := time.Now()
		bs[2].crash()
		for _, g := range gs[:2] {
			recvView(b, g, func(v *bus.View) bool { return len(v.Members) == 2 })
		}
		ds = append(ds, time.Since(start))
		b.StopTimer()
		for _, m := range bs {
			m.Close()
		}
		b.StartTimer()
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), "max-ms")
}

// BenchmarkGracefulLeave measures the time from Close to the view without
// the member at the survivors.
func BenchmarkGracefulLeave(b *testing.B) {
	var ds []time.Duration
	for b.Loop() {
		b.StopTimer()
		bs, gs := benchCluster(b, 3)
		b.StartTimer()
		start := time.Now()
		go bs[2].Close()
		for _, g := range gs[:2] {
			recvView(b, g, func(v *bus.View) bool { return len(v.Members) == 2 })
		}
		ds = append(ds, time.Since(start))
		b.StopTimer()
		for _, m := range bs {
			m.Close()
		}
		b.StartTimer()
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
}

type countDelegate struct{ n atomic.Int64 }

func (d *countDelegate) NodeMeta(int) []byte                 { return nil }
func (d *countDelegate) NotifyMsg([]byte)                    { d.n.Add(1) }
func (d *countDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *countDelegate) LocalState(bool) []byte              { return nil }
func (d *countDelegate) MergeRemoteState(buf []byte, _ bool) {}

// BenchmarkBaselineMemberlistSendReliable is the baseline FIFO is measured against
// in the same binary: memberlist's SendReliable (one TCP connection per
// message) between two nodes, 200-byte messages.
func BenchmarkBaselineMemberlistSendReliable(b *testing.B) {
	mk := func(name, addr string) (*memberlist.Memberlist, *countDelegate) {
		c := memberlist.DefaultLocalConfig()
		c.Name, c.BindAddr, c.BindPort = name, addr, 0
		d := &countDelegate{}
		c.Delegate = d
		c.LogOutput = io.Discard
		ml, err := memberlist.Create(c)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ml.Shutdown() })
		return ml, d
	}
	a, _ := mk("a", "127.0.0.1")
	c, dc := mk("c", "127.0.0.2")
	if _, err := c.Join([]string{a.LocalNode().Address()}); err != nil {
		b.Fatal(err)
	}
	var target *memberlist.Node
	for _, n := range a.Members() {
		if n.Name == "c" {
			target = n
		}
	}
	data := make([]byte, benchSize)
	start, cpu0 := time.Now(), cpuTime()
	var n int64
	for b.Loop() {
		if err := a.SendReliable(target, data); err != nil {
			b.Fatal(err)
		}
		n++
	}
	deadline := time.Now().Add(30 * time.Second)
	for dc.n.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(dc.n.Load())/time.Since(start).Seconds(), "sends/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n)/1000, "cpu-µs/send")
}

// BenchmarkBaselineRawTCP is the ceiling: one TCP stream of
// length-prefixed 200-byte frames through bufio, no protocol.
func BenchmarkBaselineRawTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReaderSize(c, 64<<10)
		var hdr [4]byte
		buf := make([]byte, 1<<16)
		for {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(r, buf[:binary.BigEndian.Uint32(hdr[:])]); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(c, 64<<10)
	frame := make([]byte, 4+benchSize)
	binary.BigEndian.PutUint32(frame, benchSize)
	start, cpu0 := time.Now(), cpuTime()
	var n int64
	for b.Loop() {
		w.Write(frame)
		n++
	}
	w.Flush()
	c.Close()
	<-done
	b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "sends/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(n)/1000, "cpu-µs/send")
}
