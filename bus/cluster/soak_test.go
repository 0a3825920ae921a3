package cluster

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// soakDuration reads PEERSCALE_SOAK: unset skips the soak, "1" means 60 s,
// anything else is a duration ("90s").
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("PEERSCALE_SOAK")
	if v == "" {
		t.Skip("soak test: set PEERSCALE_SOAK=1 (60 s) or a duration to run it")
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "PEERSCALE_SOAK")
	return d
}

// TestSoakFIFO runs three members in this process with the default LAN
// profile (LinkTimeout, SlowTimeout and memberlist's detector untouched),
// every one sending 200-byte FIFO messages as fast as the bus takes them
// and reading everything, and counts the view changes: none may happen,
// since no member fails. Run it without -race for the real load, with
// PEERSCALE_SOAK_HOGS spinning goroutines for more CPU load:
//
//	PEERSCALE_SOAK=1 go test -run TestSoakFIFO -v -timeout 5m ./bus/cluster/
//	PEERSCALE_SOAK=1 PEERSCALE_SOAK_HOGS=4 go test -run TestSoakFIFO -v -timeout 5m ./bus/cluster/
func TestSoakFIFO(t *testing.T) {
	dur := soakDuration(t)
	leakcheck.Check(t)
	const n = 3
	var bs []*Bus
	var seed string
	for i := range n {
		cfg := LANConfig()
		cfg.BindAddr = fmt.Sprintf("127.0.0.%d", 31+i)
		cfg.Logger = testLogger()
		if seed != "" {
			cfg.Seeds = []string{seed}
		}
		b, err := New(fmt.Sprintf("s%d", i), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		if seed == "" {
			seed = b.GossipAddr()
		}
		bs = append(bs, b)
	}
	gs := joinAll(t, bs, "soak")
	base := make([]Stats, n)
	for i, b := range bs {
		base[i] = b.Stats()
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	sent := make([]atomic.Uint64, n)
	recv := make([]atomic.Uint64, n)
	views := make([]atomic.Int64, n)
	payload := make([]byte, 200)
	for i, g := range gs {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := g.Send(ctx, bus.FIFO, payload); err != nil {
					return
				}
				sent[i].Add(1)
			}
		})
		wg.Go(func() {
			for {
				ev, err := g.Recv(ctx)
				if err != nil {
					return
				}
				switch ev := ev.(type) {
				case *bus.Message:
					recv[i].Add(1)
				case *bus.View:
					views[i].Add(1)
					t.Logf("%s: view %s %v at %s", bs[i].Self(), ev.ID, ev.Members, time.Now().Format(time.StampMilli))
				}
			}
		})
	}
	// PEERSCALE_SOAK_HOGS goroutines spin meanwhile: CPU load besides
	// the bus's own, as on a shared machine.
	hogs, _ := strconv.Atoi(os.Getenv("PEERSCALE_SOAK_HOGS"))
	for range hogs {
		wg.Go(func() {
			x := 1
			for ctx.Err() == nil {
				for range 1 << 16 {
					x = x*31 + 7
				}
			}
			_ = x
		})
	}
	start := time.Now()
	tick := time.NewTicker(10 * time.Second)
	for time.Since(start) < dur {
		<-tick.C
		var total uint64
		for i := range n {
			total += sent[i].Load()
		}
		t.Logf("%v: %d sends (%.0f/s)", time.Since(start).Round(time.Second), total, float64(total)/time.Since(start).Seconds())
	}
	tick.Stop()
	cancel()
	wg.Wait()
	elapsed := time.Since(start)

	var total uint64
	for i, b := range bs {
		st := b.Stats()
		total += sent[i].Load()
		t.Logf("%s: sent %d, received %d, views %d, members down %d, deaths doubted %d, exclusions %d, reconnects %d",
			b.Self(), sent[i].Load(), recv[i].Load(), views[i].Load(),
			st.MembersDown-base[i].MembersDown, st.DeathsDoubted-base[i].DeathsDoubted,
			st.Exclusions-base[i].Exclusions, reconnects(st)-reconnects(base[i]))
		assert.Zero(t, views[i].Load(), "%s: view changes under load", b.Self())
		assert.Equal(t, base[i].ViewsApplied, st.ViewsApplied, "%s: views applied", b.Self())
		assert.Zero(t, st.MembersDown-base[i].MembersDown, "%s: members declared down", b.Self())
		assert.Zero(t, st.Exclusions-base[i].Exclusions, "%s: members found unreachable or slow", b.Self())
		assert.Positive(t, recv[i].Load(), "%s: received nothing", b.Self())
	}
	t.Logf("%d FIFO sends in %v: %.0f sends/s aggregate", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
}

func reconnects(s Stats) uint64 {
	var n uint64
	for _, l := range s.Links {
		n += l.Reconnects
	}
	return n
}
