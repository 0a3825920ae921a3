// Command busbench runs bus/cluster members as separate processes on
// 127.0.0.x and reports throughput, latency percentiles and invariant
// checks (FIFO without gaps or duplicates, identical views).
//
//	busbench run -n 3 -duration 5s -rate 0 -size 200         # as fast as possible
//	busbench run -n 3 -duration 5s -rate 1000                 # latency at 1,000 msgs/s per member
//	busbench run -n 3 -duration 5s -rate 1000 -kill-after 2s  # SIGKILL the last member mid-stream
//	busbench run -n 3 -duration 5s -rate 2000 -level agreed -kill 0 -kill-after 2s  # SIGKILL the sequencer
//
// "run" starts the members ("busbench member ...") and prints a summary;
// each member prints a JSON report on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: busbench run|member [flags]")
	}
	switch args[0] {
	case "run":
		return orchestrate(ctx, args[1:], out)
	case "member":
		return member(ctx, args[1:], out)
	}
	return fmt.Errorf("busbench: unknown command %q", args[0])
}

// Report is what one member prints when it is done.
type Report struct {
	Name       string           `json:"name"`
	Self       string           `json:"self"`
	Sent       int              `json:"sent"`
	SendSecs   float64          `json:"send_secs"`
	Received   map[string]int   `json:"received"`
	FIFOErrors []string         `json:"fifo_errors,omitempty"`
	P50us      float64          `json:"p50_us"`
	P99us      float64          `json:"p99_us"`
	Views      []string         `json:"views"`
	ViewTimes  []int64          `json:"view_times"`
	LastView   []string         `json:"last_view"`
	Ended      []string         `json:"ended"`
	Stats      cluster.Stats    `json:"-"`
	Err        string           `json:"err,omitempty"`
	Extra      map[string]int64 `json:"extra,omitempty"`
}

const group = "busbench"

// member runs one member: join, wait for n members, send for a while,
// then send an end marker and receive until every live sender ended.
func member(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	name := fs.String("name", "m0", "member name")
	bind := fs.String("bind", "127.0.0.1", "bind address")
	port := fs.Int("port", 0, "memberlist port")
	seed := fs.String("seed", "", "memberlist seed host:port")
	n := fs.Int("n", 3, "members to wait for")
	dur := fs.Duration("duration", 3*time.Second, "how long to send")
	rate := fs.Int("rate", 0, "messages per second (0: as fast as possible)")
	size := fs.Int("size", 200, "payload bytes (at least 16)")
	levelName := fs.String("level", "fifo", "delivery level: fifo or agreed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := bus.ParseLevel(*levelName)
	if err != nil {
		return err
	}
	cfg := cluster.LANConfig()
	cfg.BindAddr, cfg.GossipPort = *bind, *port
	if *seed != "" {
		cfg.Seeds = []string{*seed}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := cluster.New(*name, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	g, err := b.Join(jctx, group)
	if err != nil {
		return err
	}
	rep := &Report{Name: *name, Self: b.Self().String(), Received: map[string]int{}}
	var mu sync.Mutex
	var lat []time.Duration
	next := map[bus.MemberID]uint64{}
	ended := map[bus.MemberID]bool{}
	// finished: the members that have reported (marker 1<<62). Nobody
	// shuts down before every member of its view has, so that no member's
	// departure can come between another's last view and its report.
	finished := map[bus.MemberID]bool{}
	allFinished := make(chan struct{})
	var view, doneView *bus.View
	var doneViews int
	ready := make(chan struct{})
	done := make(chan struct{})
	recvErr := make(chan error, 1)
	go func() {
		readyOnce := sync.OnceFunc(func() { close(ready) })
		doneOnce := sync.OnceFunc(func() { close(done) })
		finishOnce := sync.OnceFunc(func() { close(allFinished) })
		for {
			ev, err := g.Recv(ctx)
			if err != nil {
				recvErr <- err
				return
			}
			mu.Lock()
			switch ev := ev.(type) {
			case *bus.View:
				view = ev
				rep.Views = append(rep.Views, ev.ID.String())
				rep.ViewTimes = append(rep.ViewTimes, time.Now().UnixNano())
				if len(ev.Members) >= *n {
					readyOnce()
				}
			case *bus.Message:
				seq := binary.BigEndian.Uint64(ev.Data)
				if seq == 1<<63 {
					ended[ev.Sender] = true
				} else if seq == 1<<62 {
					finished[ev.Sender] = true
				} else {
					lat = append(lat, time.Duration(time.Now().UnixNano()-int64(binary.BigEndian.Uint64(ev.Data[8:]))))
					if want := next[ev.Sender]; seq != want && len(rep.FIFOErrors) < 20 {
						rep.FIFOErrors = append(rep.FIFOErrors, fmt.Sprintf("%s: got #%d, want #%d", ev.Sender, seq, want))
					}
					next[ev.Sender] = seq + 1
					rep.Received[ev.Sender.String()]++
				}
			}
			if doneView == nil && view != nil && len(ended) > 0 && !slices.ContainsFunc(view.Members, func(m bus.MemberID) bool { return !ended[m] }) {
				doneView, doneViews = view, len(rep.ViewTimes)
				doneOnce()
			}
			if view != nil && len(finished) > 0 && !slices.ContainsFunc(view.Members, func(m bus.MemberID) bool { return !finished[m] }) {
				finishOnce()
			}
			mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return errors.New("busbench: timed out waiting for the members")
	case err := <-recvErr:
		return err
	}
	fmt.Fprintln(out, "ready")
	data := make([]byte, max(*size, 16))
	var tick *time.Ticker
	if *rate > 0 {
		tick = time.NewTicker(time.Second / time.Duration(*rate))
		defer tick.Stop()
	}
	start := time.Now()
	for seq := uint64(0); time.Since(start) < *dur; seq++ {
		if tick != nil {
			<-tick.C
		}
		binary.BigEndian.PutUint64(data, seq)
		binary.BigEndian.PutUint64(data[8:], uint64(time.Now().UnixNano()))
		if err := b.Send(ctx, group, level, data); err != nil {
			return err
		}
		rep.Sent++
	}
	rep.SendSecs = time.Since(start).Seconds()
	binary.BigEndian.PutUint64(data, 1<<63)
	if err := b.Send(ctx, group, level, data); err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		rep.Err = "timed out waiting for the end of the other senders"
	case err := <-recvErr:
		rep.Err = err.Error()
	}
	mu.Lock()
	slices.Sort(lat)
	if len(lat) > 0 {
		rep.P50us = float64(lat[len(lat)/2].Microseconds())
		rep.P99us = float64(lat[len(lat)*99/100].Microseconds())
	}
	// The view in which every sender had ended; later views show the
	// others shutting down.
	if doneView != nil {
		for _, m := range doneView.Members {
			rep.LastView = append(rep.LastView, m.String())
		}
		rep.Views, rep.ViewTimes = rep.Views[:doneViews], rep.ViewTimes[:doneViews]
	}
	for m := range ended {
		rep.Ended = append(rep.Ended, m.String())
	}
	slices.Sort(rep.Ended)
	err = json.NewEncoder(out).Encode(rep)
	mu.Unlock()
	binary.BigEndian.PutUint64(data, 1<<62)
	if serr := b.Send(ctx, group, level, data); serr == nil {
		select {
		case <-allFinished:
		case <-time.After(20 * time.Second):
		case <-recvErr:
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	return errors.Join(err, b.Shutdown(sctx))
}

// Summary is what "run" prints.
type Summary struct {
	Members      int      `json:"members"`
	Killed       string   `json:"killed,omitempty"`
	SendsPerSec  float64  `json:"sends_per_sec"`
	P50us        float64  `json:"p50_us"`
	P99us        float64  `json:"p99_us"`
	DetectMs     []int64  `json:"detect_ms,omitempty"`
	FIFOOK       bool     `json:"fifo_ok"`
	ViewsOK      bool     `json:"views_ok"`
	Problems     []string `json:"problems,omitempty"`
	Reports      []Report `json:"reports"`
	killedName   string
	killedAtNano int64
}

// freePort returns a port free for both TCP and UDP on host.
func freePort(host string) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", host+":0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", host, port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("busbench: no free port")
}

// orchestrate starts n member processes and summarises their reports.
func orchestrate(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	n := fs.Int("n", 3, "members")
	dur := fs.Duration("duration", 3*time.Second, "how long each member sends")
	rate := fs.Int("rate", 0, "messages per second per member (0: as fast as possible)")
	size := fs.Int("size", 200, "payload bytes")
	killAfter := fs.Duration("kill-after", 0, "SIGKILL a member after this long (0: never)")
	kill := fs.Int("kill", -1, "the member to SIGKILL: 0 is the coordinator (-1: the last one)")
	levelName := fs.String("level", "fifo", "delivery level: fifo or agreed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	port, err := freePort("127.0.0.1")
	if err != nil {
		return err
	}
	type proc struct {
		cmd   *exec.Cmd
		out   strings.Builder
		ready chan struct{}
		done  chan struct{}
	}
	procs := make([]*proc, *n)
	for i := range *n {
		margs := []string{"member", "-name", fmt.Sprintf("m%d", i), "-bind", fmt.Sprintf("127.0.0.%d", i+1),
			"-n", fmt.Sprint(*n), "-duration", dur.String(), "-rate", fmt.Sprint(*rate), "-size", fmt.Sprint(*size),
			"-seed", fmt.Sprintf("127.0.0.1:%d", port), "-level", *levelName}
		if i == 0 {
			margs = append(margs, "-port", fmt.Sprint(port))
		}
		p := &proc{cmd: exec.CommandContext(ctx, exe, margs...), ready: make(chan struct{}), done: make(chan struct{})}
		p.cmd.Env = append(os.Environ(), "BUSBENCH_MEMBER=1")
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			return err
		}
		p.cmd.Stderr = os.Stderr
		if err := p.cmd.Start(); err != nil {
			return err
		}
		go func() {
			defer close(p.done)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if sc.Text() == "ready" {
					close(p.ready)
					continue
				}
				p.out.WriteString(sc.Text())
			}
		}()
		procs[i] = p
		if i == 0 {
			// Let the seed bind its port.
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
					c.Close()
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	var sum Summary
	sum.Members = *n
	if *killAfter > 0 {
		for _, p := range procs {
			select {
			case <-p.ready:
			case <-p.done:
			}
		}
		time.Sleep(*killAfter)
		if *kill < 0 || *kill >= *n {
			*kill = *n - 1
		}
		victim := procs[*kill]
		sum.killedName = fmt.Sprintf("m%d", *kill)
		sum.killedAtNano = time.Now().UnixNano()
		victim.cmd.Process.Signal(syscall.SIGKILL)
	}
	var errs []error
	for i, p := range procs {
		<-p.done
		err := p.cmd.Wait()
		if sum.killedName != "" && i == *kill {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("member m%d: %w", i, err))
			continue
		}
		var r Report
		if err := json.Unmarshal([]byte(p.out.String()), &r); err != nil {
			errs = append(errs, fmt.Errorf("member m%d: report: %w", i, err))
			continue
		}
		sum.Reports = append(sum.Reports, r)
	}
	summarize(&sum)
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sum); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func summarize(s *Summary) {
	s.FIFOOK, s.ViewsOK = true, true
	var sendRate float64
	for _, r := range s.Reports {
		if len(r.FIFOErrors) > 0 {
			s.FIFOOK = false
			s.Problems = append(s.Problems, r.Name+": "+strings.Join(r.FIFOErrors, "; "))
		}
		if r.Err != "" {
			s.Problems = append(s.Problems, r.Name+": "+r.Err)
		}
		if r.SendSecs > 0 {
			sendRate += float64(r.Sent) / r.SendSecs
		}
		s.P50us = max(s.P50us, r.P50us)
		s.P99us = max(s.P99us, r.P99us)
		if !slices.Equal(r.LastView, s.Reports[0].LastView) {
			s.ViewsOK = false
			s.Problems = append(s.Problems, fmt.Sprintf("%s: last view %v, %s has %v", r.Name, r.LastView, s.Reports[0].Name, s.Reports[0].LastView))
		}
		if s.killedName != "" {
			for _, m := range r.LastView {
				if strings.HasPrefix(m, s.killedName+"#") {
					s.ViewsOK = false
					s.Problems = append(s.Problems, r.Name+": killed member still in the last view")
				}
			}
			if k := len(r.ViewTimes); k > 0 {
				s.DetectMs = append(s.DetectMs, (r.ViewTimes[k-1]-s.killedAtNano)/1e6)
			}
		}
		// The survivors all received every survivor's messages.
		for _, o := range s.Reports {
			if got := r.Received[o.Self]; got != o.Sent {
				s.Problems = append(s.Problems, fmt.Sprintf("%s received %d of %d messages from %s", r.Name, got, o.Sent, o.Name))
			}
		}
	}
	s.SendsPerSec = sendRate
	if s.killedName != "" {
		s.Killed = s.killedName
	}
}
