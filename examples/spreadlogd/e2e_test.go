package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/require"
)

// e2ePub publishes paced batches and measures, per batch, the time from
// Send to the moment every logger acknowledged it as fsynced.
type e2ePub struct {
	id      string
	b       *cluster.Bus
	loggers []string

	mu      sync.Mutex
	next    uint64               // next sequence number
	sent    map[uint64]time.Time // batch first seq -> send time
	sizes   map[uint64]int       // batch first seq -> records
	acked   map[string]uint64    // logger -> Next
	done    uint64               // all records below are acknowledged by every logger
	lat     []time.Duration
	created uint64
}

func (p *e2ePub) ackLoop(ctx context.Context, g bus.Group) {
	for {
		ev, err := g.Recv(ctx)
		if err != nil {
			return
		}
		m, ok := ev.(*bus.Message)
		if !ok {
			continue
		}
		a, err := logwire.DecodeAck(m.Data)
		if err != nil || a.Flags&logwire.AckDurable == 0 {
			continue
		}
		now := time.Now()
		p.mu.Lock()
		for _, e := range a.Entries {
			if e.Publisher == p.id && e.Epoch == 1 && e.Next > p.acked[a.Logger] {
				p.acked[a.Logger] = e.Next
			}
		}
		low := ^uint64(0)
		for _, l := range p.loggers {
			low = min(low, p.acked[l])
		}
		for first, t := range p.sent {
			if first+uint64(p.sizes[first]) <= low {
				p.lat = append(p.lat, now.Sub(t))
				delete(p.sent, first)
				delete(p.sizes, first)
			}
		}
		p.done = max(p.done, low)
		p.mu.Unlock()
	}
}

func (p *e2ePub) publish(ctx context.Context, n int) {
	p.mu.Lock()
	first := p.next
	p.next += uint64(n)
	p.mu.Unlock()
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: p.id, Epoch: 1, FirstSeq: first, Count: uint32(n)})
	var line []byte
	for s := first; s < first+uint64(n); s++ {
		line = fmt.Appendf(line[:0], `192.0.2.1 - - [02/Jan/2000:12:00:00 +0000] "GET /%s/%d HTTP/1.1" 200 5120 "https://search.example/" "Mozilla/5.0 (X11; Linux x86_64)"`, p.id, s)
		msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, Bytes: 5120, VHost: "www.example.com", Method: "GET", URL: "/", Line: line})
	}
	p.mu.Lock()
	p.sent[first] = time.Now()
	p.sizes[first] = n
	p.created += uint64(n)
	p.mu.Unlock()
	if err := p.b.Send(ctx, "www", bus.FIFO, msg); err != nil && ctx.Err() == nil {
		panic(err)
	}
}

// TestE2EThroughput is the end-to-end benchmark, not part of the default
// run: 2 publishers → 2 spreadlogd processes over bus/cluster on loopback
// at a target rate, reporting sustained lines/s, loss and publish-to-fsync
// latency. Run it with logsub/scripts/e2e.sh or
//
//	LOGSUB_E2E_DURATION=60s LOGSUB_E2E_RATE=200000 go test -run E2E -v -timeout 10m ./examples/spreadlogd
func TestE2EThroughput(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("LOGSUB_E2E_DURATION"))
	if err != nil {
		t.Skip("set LOGSUB_E2E_DURATION (e.g. 60s) to run the end-to-end throughput benchmark")
	}
	rate := 200000
	if r, err := strconv.Atoi(os.Getenv("LOGSUB_E2E_RATE")); err == nil && r > 0 {
		rate = r
	}
	batch := 500
	ctx := t.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mk := func(id string, seeds []string) *cluster.Bus {
		cfg := cluster.LANConfig()
		cfg.Seeds, cfg.Logger = seeds, quiet
		b, err := cluster.New(id, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		return b
	}
	loggers := []string{"logger-a", "logger-b"}
	var pubs []*e2ePub
	var seeds []string
	for _, id := range []string{"web1", "web2"} {
		p := &e2ePub{id: id, b: mk(id, seeds), loggers: loggers, next: 1,
			sent: map[uint64]time.Time{}, sizes: map[uint64]int{}, acked: map[string]uint64{}}
		seeds = []string{p.b.GossipAddr()}
		g, err := p.b.Join(ctx, "www.ack")
		require.NoError(t, err)
		go p.ackLoop(ctx, g)
		pubs = append(pubs, p)
	}
	var procs []*logger
	for _, name := range loggers {
		dir := filepath.Join(t.TempDir(), name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		conf := filepath.Join(dir, "spreadlogd.conf")
		require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("Name = %s\nStateFile = %q\nFsyncInterval = 100ms\nLog {\n Group = www\n File = %q\n}\n",
			name, filepath.Join(dir, "state"), filepath.Join(dir, "access.%Y%m%d"))), 0o644))
		procs = append(procs, startLogger(t, "-config", conf, "-seeds", seeds[0], "-name", name))
	}
	time.Sleep(2 * time.Second) // views settle

	start := time.Now()
	var cpuStart syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cpuStart)
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() {
			per := time.Duration(float64(time.Second) * float64(batch) / float64(rate/len(pubs)))
			next := time.Now()
			for time.Since(start) < dur {
				p.publish(ctx, batch)
				next = next.Add(per)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
		})
	}
	wg.Wait()
	sendDur := time.Since(start)
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := true
		for _, p := range pubs {
			p.mu.Lock()
			all = all && p.done >= p.next
			p.mu.Unlock()
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := time.Since(start)
	var created, lost uint64
	var lat []time.Duration
	for _, p := range pubs {
		p.mu.Lock()
		created += p.created
		lost += p.next - p.done
		lat = append(lat, p.lat...)
		p.mu.Unlock()
	}
	for _, l := range procs {
		l.cmd.Process.Signal(syscall.SIGTERM)
		<-l.done
	}
	var cpuEnd syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cpuEnd)
	cpu := time.Duration(cpuEnd.Utime.Nano()+cpuEnd.Stime.Nano()-cpuStart.Utime.Nano()-cpuStart.Stime.Nano()) / time.Duration(len(procs))
	slices.Sort(lat)
	q := func(f float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(f*float64(len(lat))))]
	}
	t.Logf("target %d lines/s for %s: created %d lines in %s (%.0f lines/s offered), all acknowledged by both loggers after %s (%.0f lines/s sustained), unacknowledged %d",
		rate, dur, created, sendDur.Round(time.Millisecond), float64(created)/sendDur.Seconds(), total.Round(time.Millisecond), float64(created-lost)/total.Seconds(), lost)
	t.Logf("publish to fsynced on both loggers, per batch of %d: p50 %s p99 %s max %s; logger CPU %.2f µs/line",
		batch, q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond),
		float64(cpu.Microseconds())/float64(max(created, 1)))
	require.Zero(t, lost, "every record acknowledged by both loggers")
}
