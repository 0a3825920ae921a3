package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/peerscale/peerscale/logpub"
	"github.com/stretchr/testify/require"
)

// latencies matches durable acks of every logger with the times records
// were logged, per burst of records.
type latencies struct {
	loggers []string

	mu     sync.Mutex
	bursts map[string][]burst           // publisher -> bursts in seq order
	next   map[string]map[string]uint64 // logger -> publisher -> Next
	lat    []time.Duration
}

type burst struct {
	end uint64 // one past the last seq
	at  time.Time
}

func (l *latencies) logged(pub string, end uint64, at time.Time) {
	l.mu.Lock()
	l.bursts[pub] = append(l.bursts[pub], burst{end, at})
	l.mu.Unlock()
}

func (l *latencies) ackLoop(ctx context.Context, g bus.Group) {
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
		l.mu.Lock()
		if l.next[a.Logger] == nil {
			l.next[a.Logger] = map[string]uint64{}
		}
		for _, e := range a.Entries {
			l.next[a.Logger][e.Publisher] = max(l.next[a.Logger][e.Publisher], e.Next)
		}
		for pub, bs := range l.bursts {
			low := ^uint64(0)
			for _, lg := range l.loggers {
				low = min(low, l.next[lg][pub])
			}
			i := 0
			for i < len(bs) && bs[i].end <= low {
				l.lat = append(l.lat, now.Sub(bs[i].at))
				i++
			}
			l.bursts[pub] = bs[i:]
		}
		l.mu.Unlock()
	}
}

// TestE2EThroughput is the end-to-end benchmark, not part of the default
// run: 2 logpub Publishers → 2 spreadlogd processes over bus/cluster on
// loopback at a target rate, each record acknowledged by both loggers
// (AckQuorum 2), reporting sustained lines/s, loss and the time from Log to
// fsynced on both loggers. Run it with logsub/scripts/e2e.sh or
//
//	LOGSUB_E2E_DURATION=60s LOGSUB_E2E_RATE=200000 go test -run E2E -v -timeout 15m ./examples/spreadlogd
func TestE2EThroughput(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("LOGSUB_E2E_DURATION"))
	if err != nil {
		t.Skip("set LOGSUB_E2E_DURATION (e.g. 60s) to run the end-to-end throughput benchmark")
	}
	rate := 200000
	if r, err := strconv.Atoi(os.Getenv("LOGSUB_E2E_RATE")); err == nil && r > 0 {
		rate = r
	}
	ctx := t.Context()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var seeds []string
	mk := func(id string) *cluster.Bus {
		cfg := cluster.LANConfig()
		cfg.Seeds, cfg.Logger = seeds, quiet
		b, err := cluster.New(id, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		if seeds == nil {
			seeds = []string{b.GossipAddr()}
		}
		return b
	}
	loggers := []string{"logger-a", "logger-b"}
	lat := &latencies{loggers: loggers, bursts: map[string][]burst{}, next: map[string]map[string]uint64{}}
	obs := mk("observer")
	g, err := obs.Join(ctx, "www.ack")
	require.NoError(t, err)
	go lat.ackLoop(ctx, g)

	var procs []*logger
	for _, name := range loggers {
		dir := filepath.Join(t.TempDir(), name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		conf := filepath.Join(dir, "spreadlogd.conf")
		require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf("Name = %s\nStateFile = %q\nFsyncInterval = 100ms\nLog {\n Group = www\n File = %q\n}\n",
			name, filepath.Join(dir, "state"), filepath.Join(dir, "access.%Y%m%d"))), 0o644))
		procs = append(procs, startLogger(t, "-config", conf, "-seeds", seeds[0], "-name", name))
	}
	var pubs []*logpub.Publisher
	for _, id := range []string{"web1", "web2"} {
		p, err := logpub.New(mk(id), "www", logpub.Config{ID: id, Dir: filepath.Join(t.TempDir(), id), AckQuorum: len(loggers), Logger: quiet})
		require.NoError(t, err)
		pubs = append(pubs, p)
	}
	time.Sleep(2 * time.Second) // views settle

	reqs := make([]*http.Request, 1000)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("http://www.example.com/page/%d?q=%d", i, i%7), nil)
		reqs[i].Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
		reqs[i].Header.Set("Referer", "https://search.example/")
	}
	var cpuStart syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cpuStart)
	start := time.Now()
	var wg sync.WaitGroup
	var created [2]uint64
	for k, p := range pubs {
		id := []string{"web1", "web2"}[k]
		wg.Go(func() {
			const tick = 5 * time.Millisecond
			perTick := rate / len(pubs) / int(time.Second/tick)
			next := time.Now()
			var seq uint64
			for time.Since(start) < dur {
				now := time.Now()
				for range perTick {
					r := reqs[seq%uint64(len(reqs))]
					p.Log(&logpub.Entry{Request: r, Status: 200, BodyBytes: 5120, Start: now, End: now})
					seq++
				}
				lat.logged(id, seq+1, now)
				next = next.Add(tick)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
			created[k] = seq
		})
	}
	wg.Wait()
	sendDur := time.Since(start)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var shutdownErrs []error
	for _, p := range pubs {
		shutdownErrs = append(shutdownErrs, p.Shutdown(sctx))
	}
	total := time.Since(start)
	var dropped, unacked uint64
	for i, p := range pubs {
		st := p.Stats()
		dropped += st.Dropped
		unacked += uint64(st.Retained)
		t.Logf("publisher web%d: %+v", i+1, st)
	}
	for _, l := range procs {
		l.cmd.Process.Signal(syscall.SIGTERM)
		<-l.done
		out := l.out.String()
		t.Logf("%s", strings.TrimSpace(out[strings.LastIndex(out, "spreadlogd: stopped"):]))
	}
	var cpuEnd syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cpuEnd)
	all := created[0] + created[1]
	cpu := time.Duration(cpuEnd.Utime.Nano()+cpuEnd.Stime.Nano()-cpuStart.Utime.Nano()-cpuStart.Stime.Nano()) / time.Duration(len(procs))
	lat.mu.Lock()
	ls := slices.Clone(lat.lat)
	lat.mu.Unlock()
	slices.Sort(ls)
	q := func(f float64) time.Duration {
		if len(ls) == 0 {
			return 0
		}
		return ls[min(len(ls)-1, int(f*float64(len(ls))))]
	}
	t.Logf("target %d lines/s for %s: logged %d lines in %s (%.0f lines/s offered); publishers dropped %d (memory and journal full); the other %d acknowledged by both loggers after %s (%.0f lines/s sustained), unacknowledged %d",
		rate, dur, all, sendDur.Round(time.Millisecond), float64(all)/sendDur.Seconds(), dropped, all-dropped, total.Round(time.Millisecond), float64(all-dropped-unacked)/total.Seconds(), unacked)
	t.Logf("Log to fsynced on both loggers, per 5 ms burst: p50 %s p99 %s max %s (%d bursts); logger CPU %.2f µs/line",
		q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond), len(ls),
		float64(cpu.Microseconds())/float64(max(all, 1)))
	for _, err := range shutdownErrs {
		require.NoError(t, err)
	}
	require.Zero(t, dropped)
}
