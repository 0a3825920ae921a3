package cluster

import (
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultTransport wraps memberlist's UDP packets with loss, duplication and
// delay.
type faultTransport struct {
	inner            *memberlist.NetTransport
	drop, dup, delay float64
	maxDelay         time.Duration

	mu      sync.Mutex
	rng     *rand.Rand
	pending sync.WaitGroup
	closed  atomic.Bool
	dropped atomic.Int64
}

func (f *faultTransport) roll() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64()
}

func (f *faultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return f.inner.FinalAdvertiseAddr(ip, port)
}
func (f *faultTransport) PacketCh() <-chan *memberlist.Packet { return f.inner.PacketCh() }
func (f *faultTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	return f.inner.DialTimeout(addr, d)
}
func (f *faultTransport) StreamCh() <-chan net.Conn { return f.inner.StreamCh() }
func (f *faultTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return f.WriteTo(b, addr.Addr)
}
func (f *faultTransport) DialAddressTimeout(addr memberlist.Address, d time.Duration) (net.Conn, error) {
	return f.inner.DialTimeout(addr.Addr, d)
}

func (f *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if f.roll() < f.drop {
		f.dropped.Add(1)
		return time.Now(), nil
	}
	if f.roll() < f.dup {
		f.inner.WriteTo(b, addr)
	}
	if f.roll() < f.delay {
		p := slices.Clone(b)
		d := time.Duration(f.roll() * float64(f.maxDelay))
		f.mu.Lock()
		if f.closed.Load() {
			f.mu.Unlock()
			return time.Now(), nil
		}
		f.pending.Add(1)
		f.mu.Unlock()
		time.AfterFunc(d, func() {
			defer f.pending.Done()
			if !f.closed.Load() {
				f.inner.WriteTo(p, addr)
			}
		})
		return time.Now(), nil
	}
	return f.inner.WriteTo(b, addr)
}

func (f *faultTransport) Shutdown() error {
	f.mu.Lock()
	f.closed.Store(true)
	f.mu.Unlock()
	err := f.inner.Shutdown()
	f.pending.Wait()
	return err
}

func withFaultTransport(t testing.TB, seed uint64, drop, dup, delay float64) func(*memberlist.Config) {
	return func(c *memberlist.Config) {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{c.BindAddr},
			BindPort:  c.BindPort,
			Logger:    c.Logger,
		})
		require.NoError(t, err)
		c.Transport = &faultTransport{inner: nt, drop: drop, dup: dup, delay: delay, maxDelay: 30 * time.Millisecond, rng: rand.New(rand.NewPCG(seed, 1))}
	}
}

// viewIDs returns the ids of the views in a recorded stream.
func viewIDs(evs []bus.Event) []bus.ViewID {
	var out []bus.ViewID
	for _, ev := range evs {
		if v, ok := ev.(*bus.View); ok {
			out = append(out, v.ID)
		}
	}
	return out
}

// recorder drains a group in the background.
type recorder struct {
	mu   sync.Mutex
	evs  []bus.Event
	fifo fifoChecker
	done chan struct{}
}

func record(t *testing.T, g bus.Group) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			ev, err := g.Recv(t.Context())
			if err != nil {
				return
			}
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			if m, ok := ev.(*bus.Message); ok && len(m.Data) >= 8 {
				r.fifo.add(m)
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { <-r.done })
	return r
}

func (r *recorder) snapshot() ([]bus.Event, map[bus.MemberID]uint64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[bus.MemberID]uint64, len(r.fifo.next))
	for k, v := range r.fifo.next {
		next[k] = v
	}
	return slices.Clone(r.evs), next, slices.Clone(r.fifo.errs)
}

func (r *recorder) lastView() *bus.View {
	evs, _, _ := r.snapshot()
	for i := len(evs) - 1; i >= 0; i-- {
		if v, ok := evs[i].(*bus.View); ok {
			return v
		}
	}
	return nil
}

func sendN(t *testing.T, wg *sync.WaitGroup, b *Bus, n uint64, stop *atomic.Bool) {
	wg.Go(func() {
		for i := range n {
			if stop != nil && stop.Load() {
				return
			}
			if err := b.Send(t.Context(), "g", bus.FIFO, payload(i, 200)); err != nil {
				return
			}
		}
	})
}

// TestLinkSevered cuts the data connections again and again under load:
// every message still arrives once, in order.
func TestLinkSevered(t *testing.T) {
	leakcheck.Check(t)
	var mu sync.Mutex
	var conns []net.Conn
	bs := startN(t, 3, func(i int, c *Config) {
		c.wrapConn = func(nc net.Conn) net.Conn {
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			return nc
		}
	})
	gs := joinAll(t, bs, "g")
	const n = 3000
	var wg sync.WaitGroup
	for _, b := range bs {
		sendN(t, &wg, b, n, nil)
	}
	stop := make(chan struct{})
	var cuts atomic.Int64
	go func() {
		tk := time.NewTicker(15 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			mu.Lock()
			if len(conns) > 0 {
				conns[rand.IntN(len(conns))].Close()
				cuts.Add(1)
			}
			mu.Unlock()
		}
	}()
	checkFIFO(t, gs, 3*n)
	close(stop)
	wg.Wait()
	var reconnects uint64
	for _, b := range bs {
		for _, l := range b.Stats().Links {
			reconnects += l.Reconnects
		}
	}
	t.Logf("%d cuts, %d reconnects", cuts.Load(), reconnects)
	assert.Positive(t, reconnects)
}

// stallConn blocks reads while stalled is set.
type stallConn struct {
	net.Conn
	stalled *atomic.Bool
}

func (c stallConn) Read(p []byte) (int, error) {
	for c.stalled.Load() {
		time.Sleep(time.Millisecond)
	}
	return c.Conn.Read(p)
}

// TestLinkStalled stops one member's links from reading: senders block on
// the full window, then everything flows again without loss.
func TestLinkStalled(t *testing.T) {
	leakcheck.Check(t)
	var stalled atomic.Bool
	bs := startN(t, 2, func(i int, c *Config) {
		c.Window = 64
		if i == 1 {
			c.wrapConn = func(nc net.Conn) net.Conn { return stallConn{nc, &stalled} }
		}
	})
	gs := joinAll(t, bs, "g")
	r := record(t, gs[1])
	stalled.Store(true)
	var sent uint64
	for ; ; sent++ {
		ctx := ctxT(t, 300*time.Millisecond)
		if err := bs[0].Send(ctx, "g", bus.FIFO, payload(sent, 1000)); err != nil {
			require.ErrorIs(t, err, ctx.Err())
			break
		}
		require.Less(t, sent, uint64(100000), "Send never blocked")
	}
	t.Logf("blocked after %d sends", sent)
	stalled.Store(false)
	for i := sent; i < sent+100; i++ {
		require.NoError(t, bs[0].Send(ctxT(t, 20*time.Second), "g", bus.FIFO, payload(i, 1000)))
	}
	waitFor(t, 20*time.Second, func() bool {
		_, next, _ := r.snapshot()
		return next[bs[0].Self()] == sent+100
	}, "all messages after the stall")
	_, _, errs := r.snapshot()
	assert.Empty(t, errs)
}

// TestMemberlistPacketFaults runs the bus over memberlist packets that are
// lost, duplicated and delayed, kills a member under load and checks FIFO
// streams and identical views at the survivors.
func TestMemberlistPacketFaults(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 4, func(i int, c *Config) {
		c.Memberlist = withFaultTransport(t, uint64(i), 0.02, 0.05, 0.2)
	})
	gs := joinAll(t, bs, "g")
	rs := make([]*recorder, len(gs))
	for i, g := range gs {
		rs[i] = record(t, g)
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	for _, b := range bs {
		sendN(t, &wg, b, 1<<40, &stop)
	}
	waitFor(t, 20*time.Second, func() bool {
		_, next, _ := rs[0].snapshot()
		return next[bs[3].Self()] > 500
	}, "traffic from the member to kill")
	start := time.Now()
	bs[3].crash()
	survivors := []bus.MemberID{bs[0].Self(), bs[1].Self(), bs[2].Self()}
	for _, r := range rs[:3] {
		waitFor(t, 20*time.Second, func() bool {
			v := r.lastView()
			return v != nil && slices.Equal(v.Members, survivors)
		}, "the view without the crashed member")
	}
	t.Logf("crash detected by all survivors in %v", time.Since(start))
	stop.Store(true)
	wg.Wait()
	first, _, _ := rs[0].snapshot()
	for i, r := range rs[:3] {
		evs, next, errs := r.snapshot()
		assert.Empty(t, errs, "member %d: FIFO", i)
		assert.Equal(t, viewIDs(first), viewIDs(evs), "member %d: view ids", i)
		assert.Len(t, next, 4, "member %d: senders", i)
	}
}
