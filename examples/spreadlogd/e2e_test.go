package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
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
	at     []time.Time // when each burst in lat was logged

	views, joined, left int // ack group views seen by the observer
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
		if v, ok := ev.(*bus.View); ok {
			l.mu.Lock()
			l.views++
			l.joined += len(v.Joined)
			l.left += len(v.Left)
			l.mu.Unlock()
			continue
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
				l.at = append(l.at, bs[i].at)
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
// (AckQuorum 2), reporting sustained lines/s, loss, duplicates, the time
// from Log to fsynced on both loggers, the ack group's view changes, CPU
// per line per process and the load average. Run it with
// logsub/scripts/e2e.sh or
//
//	LOGSUB_E2E_DURATION=60s LOGSUB_E2E_RATE=200000 go test -run E2E -v -timeout 15m ./examples/spreadlogd
//
// LOGSUB_E2E_BUS names the bus profile of every member (see BusProfile;
// default steady); LOGSUB_E2E_STOP=3s stops logger-b (SIGSTOP) for that
// long a third into the run; LOGSUB_E2E_CHURN=2s makes a monitor join and
// leave the ack group every 2 s; LOGSUB_E2E_PROFILE=dir writes CPU profiles of the
// publishers' process (publishers.pprof) and of each logger there;
// SPREADLOGD_CHILD_LOG=file appends every process's log to file.
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
	if path := os.Getenv("SPREADLOGD_CHILD_LOG"); path != "" {
		// The loggers' logs go there too (startLogger).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		quiet = slog.New(slog.NewTextHandler(f, nil))
	}
	profile := cmp.Or(os.Getenv("LOGSUB_E2E_BUS"), "steady")
	bcfg, err := BusProfile(profile)
	require.NoError(t, err)
	pprofDir := os.Getenv("LOGSUB_E2E_PROFILE")
	var seeds []string
	mk := func(id string) *cluster.Bus {
		cfg := bcfg
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
		args := []string{"-config", conf, "-seeds", seeds[0], "-name", name, "-bus-profile", profile}
		if pprofDir != "" {
			args = append(args, "-cpuprofile", filepath.Join(pprofDir, name+".pprof"))
		}
		procs = append(procs, startLogger(t, args...))
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
	if pprofDir != "" {
		f, err := os.Create(filepath.Join(pprofDir, "publishers.pprof"))
		require.NoError(t, err)
		require.NoError(t, pprof.StartCPUProfile(f))
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	lat.mu.Lock()
	viewsBefore, joinedBefore, leftBefore := lat.views, lat.joined, lat.left
	lat.mu.Unlock()
	load0 := loadAverage()
	var cpuStart, selfStart syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cpuStart)
	syscall.Getrusage(syscall.RUSAGE_SELF, &selfStart)
	start := time.Now()
	series := os.Getenv("LOGSUB_E2E_SERIES") != ""
	var busy []string // machine-wide CPU use per second, when series
	if series {
		sctx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(time.Second)
			defer t.Stop()
			prev := cpuStat()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
					cur := cpuStat()
					busy = append(busy, fmt.Sprintf("%.0f%%/%.0f%%", cur.busyPct(prev), cur.iowaitPct(prev)))
					prev = cur
				}
			}
		}()
		defer func() { stop(); <-done }()
	}
	var wg sync.WaitGroup
	if stop, err := time.ParseDuration(os.Getenv("LOGSUB_E2E_STOP")); err == nil && stop > 0 {
		// Stop logger-b a third into the run, as a machine that stalls:
		// it leaves the views, comes back and asks for what it missed.
		wg.Go(func() {
			time.Sleep(dur / 3)
			procs[1].cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(stop)
			procs[1].cmd.Process.Signal(syscall.SIGCONT)
			t.Logf("logger-b stopped (SIGSTOP) for %s from %s", stop, (dur / 3).Round(time.Second))
		})
	}
	if every, err := time.ParseDuration(os.Getenv("LOGSUB_E2E_CHURN")); err == nil && every > 0 {
		// A monitor that joins the ack group and leaves it again, every
		// so often: views change while no logger misses anything.
		mon := mk("monitor")
		wg.Go(func() {
			n := 0
			for time.Since(start)+every < dur {
				g, err := mon.Join(ctx, "www.ack")
				if err != nil {
					t.Errorf("monitor join: %v", err)
					return
				}
				go func() {
					for {
						if _, err := g.Recv(ctx); err != nil {
							return
						}
					}
				}()
				time.Sleep(every / 2)
				g.Leave(ctx)
				n++
				time.Sleep(every / 2)
			}
			t.Logf("a monitor joined and left the ack group %d times", n)
		})
	}
	var created [2]uint64
	var genCPU [2]time.Duration
	for k, p := range pubs {
		id := []string{"web1", "web2"}[k]
		wg.Go(func() {
			// The generator's thread CPU time is what Log costs (the
			// loop itself only picks a prepared request).
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			defer func() { genCPU[k] = threadCPU() - cpu0 }()
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
	load1 := loadAverage()
	lat.mu.Lock()
	views, joined, left := lat.views-viewsBefore, lat.joined-joinedBefore, lat.left-leftBefore
	lat.mu.Unlock()
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
	var cpuEnd, selfEnd syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &cpuEnd)
	syscall.Getrusage(syscall.RUSAGE_SELF, &selfEnd)
	all := created[0] + created[1]
	cpu := time.Duration(cpuEnd.Utime.Nano()+cpuEnd.Stime.Nano()-cpuStart.Utime.Nano()-cpuStart.Stime.Nano()) / time.Duration(len(procs))
	self := time.Duration(selfEnd.Utime.Nano() + selfEnd.Stime.Nano() - selfStart.Utime.Nano() - selfStart.Stime.Nano())
	lat.mu.Lock()
	ls := slices.Clone(lat.lat)
	if series {
		// The worst latency of the bursts logged in each second, and how
		// busy the machine's CPUs were (busy/iowait).
		worst := map[int]time.Duration{}
		for i, d := range lat.lat {
			sec := int(lat.at[i].Sub(start) / time.Second)
			worst[sec] = max(worst[sec], d)
		}
		var line []string
		for sec := range int(sendDur / time.Second) {
			cpu := "?"
			if sec < len(busy) {
				cpu = busy[sec]
			}
			line = append(line, fmt.Sprintf("%d:%dms(%s)", sec, worst[sec].Milliseconds(), cpu))
		}
		t.Logf("worst Log → fsynced per second of the run (second:worst(CPU busy/iowait)): %s", strings.Join(line, " "))
	}
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
	t.Logf("Log to fsynced on both loggers, per 5 ms burst: p50 %s p99 %s max %s (%d bursts)",
		q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond), len(ls))
	t.Logf("bus profile %s: %d ack-group views while sending (%d joins, %d leaves seen by the observer)",
		profile, views, joined, left)
	perLine := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(max(all, 1)) }
	t.Logf("CPU per line: each logger process %.2f µs; the publishers' process %.2f µs (of which Log in the generators %.2f µs); load average %s at start, %s at the end of sending",
		perLine(cpu), perLine(self), perLine(genCPU[0]+genCPU[1]), load0, load1)
	for _, err := range shutdownErrs {
		require.NoError(t, err)
	}
	require.Zero(t, dropped)
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// threadCPU returns the CPU time of the calling OS thread (RUSAGE_THREAD,
// Linux), 0 where it is not available.
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuTimes are the machine-wide CPU counters of /proc/stat, in ticks.
type cpuTimes struct{ total, idle, iowait uint64 }

func cpuStat() cpuTimes {
	var c cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		c.total += n
		switch i {
		case 3:
			c.idle = n
		case 4:
			c.iowait = n
		}
	}
	return c
}

func (c cpuTimes) busyPct(prev cpuTimes) float64 {
	d := float64(c.total - prev.total)
	if d == 0 {
		return 0
	}
	return 100 * (d - float64(c.idle-prev.idle) - float64(c.iowait-prev.iowait)) / d
}

func (c cpuTimes) iowaitPct(prev cpuTimes) float64 {
	d := float64(c.total - prev.total)
	if d == 0 {
		return 0
	}
	return 100 * float64(c.iowait-prev.iowait) / d
}
