// Command demo runs the whole of peerscale in one process on loopback: the
// talk in one command.
//
//	go run ./examples/demo
//	go run ./examples/demo -duration 1m -members 4 -keep
//
// It starts an image origin, then a cluster of web members (bus/cluster,
// member i on 127.0.0.(i+1)), each running a caching proxy (proxycache) in
// front of the origin with cluster-wide purges, an access-log publisher
// (logpub Middleware + Publisher) on every request and a virtual IP manager
// (vip, with the dry-run backend: the addresses in 198.18.0.0/15 are never
// configured on any interface). One more bus member, loghost, runs the
// logger (logsub) that writes the combined access log of every member under
// the demo directory; the first web member feeds the who's-online index
// (online) from the same log group. A load generator sends a bounded rate
// of requests, only to the HTTP listeners the demo opened on 127.0.0.1, each
// to the member that owns a randomly chosen virtual IP, as one of 40 users
// (named by a cookie).
//
// At 30% of -duration it purges http://images.demo/thumbs/ cluster-wide;
// at 50% it kills the last web member (its bus closes abruptly, its
// listener and components stop without hand-over) and shows the recovery.
// At the end, or on Ctrl-C, everything shuts down in reverse order under
// -shutdown-timeout (a second Ctrl-C ends the process at once), a summary
// is printed and the demo directory is removed (unless -keep, or -dir was
// given).
//
// # The screen
//
// A frame is printed every second (the screen is cleared first only when
// standard output is a terminal):
//
//   - MEMBERS AND VIEWS: each web member's bus address, HTTP listener and
//     its latest view of the "demo" group (view number, members oldest first;
//     the first is the leader). A killed member shows when it died.
//   - DELIVERY LEVELS: every member sends one message at every level to the
//     "demo" group twice a second; the table shows how many each member
//     received per level. A level the bus does not provide shows as
//     unsupported (-bus inproc has them all).
//   - CACHE: per member, requests routed to it, cache hits and misses,
//     objects stored and purges applied, and the origin's request count.
//   - ACCESS LOG: records published and acknowledged by the publishers,
//     lines the logger wrote to the access log and its file.
//   - WHO'S ONLINE: users seen in the log, and who is on the most popular
//     image.
//   - VIRTUAL IPs: who owns each virtual interface, as the first live member
//     sees it.
//   - EVENTS: the purge, the kill, the new view and the VIPs that moved.
//
// The summary repeats the totals: requests, hits and misses, lines logged,
// users online, the owner of every virtual IP and, after a kill, how long
// the survivors took to install a view without the killed member and to take
// its virtual IPs over.
//
// # Flags
//
//	-duration 20s       how long the load runs before a clean exit
//	-members 3          web members (1 to 9); one more runs the logger
//	-bus cluster        cluster (bus/cluster on 127.0.0.x) or inproc (bus/inproc)
//	-base-port 0        0 picks free ports; else the origin listens on P,
//	                    member i's HTTP on P+1+i, bus member i on P+20+2i and P+21+2i
//	-rate 100           requests per second of the load generator (at most 2000)
//	-vips 0             virtual interfaces (0: members+1)
//	-dir ""             demo directory (default: a temporary one, removed at exit)
//	-keep               keep the temporary directory
//	-no-kill            do not kill a member (always so with -members 1)
//	-shutdown-timeout   bound on the graceful shutdown (15s)
//	-startup-timeout    bound on forming the cluster (1m)
//
// Components log to demo.log in the demo directory.
//
// # Figures
//
// Seven runs of `go run ./examples/demo -duration 8s` on a loaded 2-core
// machine (load average 8–9), bus/cluster, 3 web members, 100 requests/s
// (times after the kill are polled every 25 ms):
//
//	cluster formed, every VIP owned      2.06–2.11 s (median 2.08 s: vip.Config
//	and spread over the members          Mature 1 s, then a balancing round)
//	view without the killed member       10–40 ms after the kill (median 31 ms)
//	its virtual IPs owned again          23–40 ms after the kill (median 31 ms)
//	cache hit ratio                      84–86% (16 images per directory, one purge)
//	requests failed                      0
//	records published but not logged     0–2, all the killed member's: its
//	                                     last batch waits in its journal
//
// The killed member closes its bus, which tells the others goodbye; a
// member that vanished without a word would be noticed by memberlist's
// failure detector instead (about 1 s with the LAN profile; the demo
// relaxes it to tolerate a loaded machine). The whole demo costs about 1.5 s
// of CPU time (user+sys) for 10 s at 100 requests/s (/usr/bin/time).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/logsub"
	"github.com/peerscale/peerscale/online"
	"github.com/peerscale/peerscale/vip"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal a second one ends the process at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	duration        time.Duration
	members         int
	busKind         string
	basePort        int
	rate            int
	vips            int
	dir             string
	keep            bool
	noKill          bool
	shutdownTimeout time.Duration
	startupTimeout  time.Duration
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "how long the load runs before a clean exit")
	fs.IntVar(&o.members, "members", 3, "web members (1 to 9)")
	fs.StringVar(&o.busKind, "bus", "cluster", "bus implementation: cluster or inproc")
	fs.IntVar(&o.basePort, "base-port", 0, "first port (0: free ports everywhere)")
	fs.IntVar(&o.rate, "rate", 100, "requests per second of the load generator (1 to 2000)")
	fs.IntVar(&o.vips, "vips", 0, "virtual interfaces (0: members+1)")
	fs.StringVar(&o.dir, "dir", "", "demo directory (default: a temporary directory removed at exit)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary demo directory")
	fs.BoolVar(&o.noKill, "no-kill", false, "do not kill a member")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 15*time.Second, "bound on the graceful shutdown")
	fs.DurationVar(&o.startupTimeout, "startup-timeout", time.Minute, "bound on the start of the cluster")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("demo: unexpected arguments %q", fs.Args())
	case o.duration <= 0:
		return o, errors.New("demo: -duration must be positive")
	case o.members < 1 || o.members > 9:
		return o, errors.New("demo: -members must be 1 to 9")
	case o.busKind != "cluster" && o.busKind != "inproc":
		return o, fmt.Errorf("demo: -bus %q: want cluster or inproc", o.busKind)
	case o.basePort < 0 || o.basePort > 65535-40:
		return o, errors.New("demo: -base-port out of range")
	case o.rate < 1 || o.rate > 2000:
		return o, errors.New("demo: -rate must be 1 to 2000")
	case o.vips < 0 || o.vips > 32:
		return o, errors.New("demo: -vips must be 0 to 32")
	}
	if o.vips == 0 {
		o.vips = o.members + 1
	}
	if o.members < 2 {
		o.noKill = true
	}
	return o, nil
}

// demo is the running demo.
type demo struct {
	opt   options
	out   io.Writer
	tty   bool
	log   *slog.Logger
	dir   string
	start time.Time // when the load started; written under mu, read by the main goroutine

	net       *network
	origin    *origin
	originURL *url.URL
	members   []*member
	loghost   bus.Bus
	logger    *logsub.Logger
	logFile   string
	index     *online.Index
	ingest    *online.Ingest
	vifNames  []string
	vipAddr   map[string]string
	load      loadStats

	mu     sync.Mutex
	events []string
	purged bool
	kill   *killState

	lastOwners  map[string]string // VIF to owner name when the load ended
	loghostAddr string
	startup     time.Duration // from the first bus to every VIP owned
	prevOK      uint64        // load.ok at the previous frame
	prevAt      time.Time     // when it was read
	rate        float64       // requests/s answered between the last two readings
}

// killState follows the recovery from a kill.
type killState struct {
	victim  *member
	at      time.Duration // since start
	vips    []string      // the victim's VIFs when it was killed
	viewAt  time.Duration // survivors installed a view without it (0: not yet)
	view    *bus.View
	vipsAt  time.Duration // its VIFs had live owners (0: not yet)
	movedTo map[string]string
	linesAt uint64 // lines logged when it was killed
}

func (d *demo) event(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	when := "setup "
	if !d.start.IsZero() {
		when = fmt.Sprintf("%5.1fs", time.Since(d.start).Seconds())
	}
	d.events = append(d.events, when+"  "+fmt.Sprintf(format, args...))
	if len(d.events) > 200 {
		d.events = slices.Delete(d.events, 0, 100)
	}
}

func run(ctx context.Context, args []string, out io.Writer) (err error) {
	opt, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	d := &demo{opt: opt, out: out, tty: isTerminal(out), vipAddr: map[string]string{}}

	// The demo directory and the components' log.
	if opt.dir != "" {
		d.dir = opt.dir
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			return err
		}
	} else {
		if d.dir, err = os.MkdirTemp("", "peerscale-demo-"); err != nil {
			return err
		}
		if !opt.keep {
			defer func() { err = errors.Join(err, os.RemoveAll(d.dir)) }()
		}
	}
	logf, err := os.OpenFile(filepath.Join(d.dir, "demo.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	d.log = slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Everything started is stopped in reverse order by shutdown.
	var stack []func(context.Context) error
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), opt.shutdownTimeout)
		defer cancel()
		var errs []error
		for i := len(stack) - 1; i >= 0; i-- {
			errs = append(errs, stack[i](sctx))
		}
		return errors.Join(errs...)
	}
	fmt.Fprintf(out, "peerscale demo: starting %d web members and a logger on bus %s; files in %s\n", opt.members, opt.busKind, d.dir)
	startCtx, cancelStart := context.WithTimeout(ctx, opt.startupTimeout)
	defer cancelStart()
	t0 := time.Now()
	if err := d.build(startCtx, &stack); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "peerscale demo: interrupted while starting, shutting down")
			return shutdown()
		}
		return errors.Join(err, shutdown())
	}
	d.startup = time.Since(t0)

	// The load generator and the chatter run until the end.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stack = append(stack, func(context.Context) error { stopLoad(); wg.Wait(); return nil })
	d.mu.Lock()
	d.start = time.Now()
	d.mu.Unlock()
	d.event("load started: %d requests/s over %d virtual IPs", opt.rate, len(d.vifNames))
	wg.Go(func() { d.generate(loadCtx, opt.rate) })
	wg.Go(func() { d.chatter(loadCtx) })

	interrupted := d.loop(ctx)
	if interrupted {
		fmt.Fprintln(out, "peerscale demo: interrupted, shutting down")
	}
	elapsed := time.Since(d.start)
	d.lastOwners = map[string]string{}
	for name, o := range d.owners() {
		d.lastOwners[name] = o.name
	}
	t1 := time.Now()
	err = shutdown()
	d.summary(elapsed, time.Since(t1), err)
	return err
}

// build starts the origin, the buses and every component, pushing what
// must be stopped on stack, and waits until the cluster is formed and
// every virtual IP has an owner (and every member one, when there are
// enough).
func (d *demo) build(ctx context.Context, stack *[]func(context.Context) error) error {
	opt := d.opt
	port := func(off int) int {
		if opt.basePort == 0 {
			return 0
		}
		return opt.basePort + off
	}

	// The origin.
	d.origin = &origin{started: time.Now().Add(-time.Hour)}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port(0))))
	if err != nil {
		return err
	}
	d.originURL = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	osrv := &http.Server{Handler: d.origin, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	oerr := make(chan error, 1)
	go func() { oerr <- osrv.Serve(ln) }()
	*stack = append(*stack, func(ctx context.Context) error {
		return errors.Join(osrv.Shutdown(ctx), serveErr(<-oerr))
	})

	// The buses: web members first (the oldest leads), then the loghost.
	d.net = &network{kind: opt.busKind, basePort: opt.basePort, log: d.log}
	if opt.busKind == "inproc" {
		d.net.hub = inproc.New(inproc.Config{Logger: d.log})
		*stack = append(*stack, func(context.Context) error { return d.net.hub.Close() })
	}
	for i := range opt.members {
		m := &member{name: "web" + strconv.Itoa(i+1)}
		if m.bus, m.busAddr, err = d.net.newMember(m.name, i); err != nil {
			return err
		}
		*stack = append(*stack, func(context.Context) error { return ignoreClosed(m.bus.Close()) })
		d.members = append(d.members, m)
	}
	if d.loghost, d.loghostAddr, err = d.net.newMember("loghost", opt.members); err != nil {
		return err
	}
	*stack = append(*stack, func(context.Context) error { return ignoreClosed(d.loghost.Close()) })
	t0 := time.Now()
	if err := waitFor(ctx, "every member to see the others", func() bool {
		for _, m := range d.members {
			if n := liveMembers(m.bus); n >= 0 && n != opt.members+1 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "peerscale demo: %d bus members up in %v\n", opt.members+1, time.Since(t0).Round(10*time.Millisecond))

	// The logger on loghost: one combined log for the whole cluster.
	d.logFile = filepath.Join(d.dir, "logs", "access.log")
	if err := os.MkdirAll(filepath.Dir(d.logFile), 0o755); err != nil {
		return err
	}
	d.logger, err = logsub.New(ctx, d.loghost, []string{logGroup}, []logsub.Output{{File: d.logFile}},
		logsub.Config{
			Name:   "loghost",
			Store:  logsub.StoreConfig{StateFile: filepath.Join(d.dir, "logs", "logger.state"), Logger: d.log},
			Logger: d.log.With("member", "loghost"),
		})
	if err != nil {
		return err
	}
	*stack = append(*stack, d.logger.Shutdown)

	// Who's online, fed from the log group on the first web member.
	d.index = online.NewIndex(online.Config{Window: 5 * time.Minute})
	d.ingest, err = online.NewIngest(d.index, d.members[0].bus, logGroup, online.IngestConfig{Logger: d.log})
	if err != nil {
		return err
	}
	*stack = append(*stack, d.ingest.Shutdown)

	// The virtual interfaces, in 198.18.0.0/15 (benchmarking addresses),
	// on a device name no host has: the dry-run backend only logs.
	var vifs []vip.VIF
	for i := range opt.vips {
		name := "vip" + strconv.Itoa(i+1)
		a, err := vip.ParseAddress(fmt.Sprintf("demo0:198.18.0.%d", 10+i))
		if err != nil {
			return err
		}
		vifs = append(vifs, vip.VIF{Name: name, Addrs: []vip.Address{a}})
		d.vifNames = append(d.vifNames, name)
		d.vipAddr[name] = a.IP.String()
	}

	// The web members, each shut down gracefully in reverse order.
	cfg := memberConfig{dir: d.dir, origin: d.originURL, vifs: vifs, log: d.log, onVIP: d.vipEvent}
	var recv sync.WaitGroup
	recvCtx, stopRecv := context.WithCancel(context.Background())
	*stack = append(*stack, func(context.Context) error { stopRecv(); recv.Wait(); return nil })
	for i, m := range d.members {
		cfg.httpPort = port(1 + i)
		if err := m.start(ctx, cfg); err != nil {
			return err
		}
		recv.Go(func() { d.receive(recvCtx, m) })
		*stack = append(*stack, m.shutdown)
	}
	fmt.Fprintf(d.out, "peerscale demo: logger, who's online and %d web members up in %v\n", opt.members, time.Since(t0).Round(10*time.Millisecond))
	// Wait for the spread too, so that the member killed later holds a
	// virtual IP to hand over.
	spread := len(vifs) >= len(d.members)
	return waitFor(ctx, "every virtual IP to have an owner and every member the same view", func() bool {
		owners := d.owners()
		if len(owners) != len(vifs) {
			return false
		}
		held := map[*member]bool{}
		for _, o := range owners {
			held[o] = true
		}
		if spread && len(held) != len(d.members) {
			return false
		}
		for _, m := range d.members {
			if v := m.view.Load(); v == nil || len(v.Members) != len(d.members) {
				return false
			}
		}
		return true
	})
}

// loop shows a frame every second and runs the timeline until the
// duration is over (false) or ctx ends (true).
func (d *demo) loop(ctx context.Context) bool {
	frame := time.NewTicker(time.Second)
	defer frame.Stop()
	poll := time.NewTicker(25 * time.Millisecond)
	defer poll.Stop()
	end := time.NewTimer(d.opt.duration)
	defer end.Stop()
	purgeAt := d.opt.duration * 3 / 10
	killAt := d.opt.duration / 2
	d.render()
	for {
		select {
		case <-ctx.Done():
			return true
		case <-end.C:
			d.render()
			return false
		case <-frame.C:
			d.render()
		case <-poll.C:
			el := time.Since(d.start)
			if !d.purged && el >= purgeAt {
				d.purged = true
				d.purge(ctx)
			}
			if !d.opt.noKill && d.kill == nil && el >= killAt {
				d.killMember(d.members[len(d.members)-1])
			}
			d.followRecovery()
		}
	}
}

const purgePrefix = "http://" + imageHost + "/thumbs/"

// purge removes every thumbnail from every member's cache, from the first
// live member, and waits until every member applied it.
func (d *demo) purge(ctx context.Context) {
	for _, m := range d.members {
		if m.dead.Load() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		err := m.cache.PurgePrefix(pctx, purgePrefix)
		cancel()
		if err != nil {
			d.event("purge %s from %s failed: %v", purgePrefix, m.name, err)
			return
		}
		d.event("purged %s on every member (from %s, %v)", purgePrefix, m.name, time.Since(t0).Round(time.Millisecond))
		return
	}
}

// killMember crashes m: its bus closes first (the others see it leave),
// then its listener and components stop without handing anything over.
func (d *demo) killMember(m *member) {
	k := &killState{victim: m, at: time.Since(d.start), movedTo: map[string]string{}}
	for name, id := range m.vip.Owners() {
		if id == m.bus.Self() {
			k.vips = append(k.vips, name)
		}
	}
	slices.Sort(k.vips)
	k.linesAt = d.logger.Stats().Lines
	d.event("killing %s (holds %v)", m.name, k.vips)
	m.dead.Store(true)
	err := errors.Join(d.net.crash(m.bus), m.close())
	d.mu.Lock()
	d.kill = k
	d.mu.Unlock()
	if err = ignoreClosed(err); err != nil {
		d.log.Warn("kill", "member", m.name, "err", err)
	}
}

// followRecovery records when the survivors saw the new view and when the
// killed member's virtual IPs had live owners.
func (d *demo) followRecovery() {
	d.mu.Lock()
	k := d.kill
	d.mu.Unlock()
	if k == nil {
		return
	}
	victim := k.victim.bus.Self()
	if k.viewAt == 0 {
		var view *bus.View
		for _, m := range d.members {
			if m.dead.Load() {
				continue
			}
			v := m.view.Load()
			if v == nil || v.Contains(victim) {
				return
			}
			view = v
		}
		k.viewAt, k.view = time.Since(d.start)-k.at, view
		d.event("view %d %s installed without %s after %v", view.ID.Seq, memberNames(view.Members), k.victim.name, k.viewAt.Round(time.Millisecond))
		return
	}
	if k.vipsAt == 0 {
		owners := d.owners()
		for _, name := range d.vifNames {
			if o := owners[name]; o == nil || o.dead.Load() {
				return
			}
		}
		k.vipsAt = time.Since(d.start) - k.at
		for _, name := range k.vips {
			k.movedTo[name] = owners[name].name
			d.event("%s (%s) moved %s -> %s", name, d.vipAddr[name], k.victim.name, owners[name].name)
		}
		d.event("every virtual IP owned again after %v", k.vipsAt.Round(time.Millisecond))
	}
}

// vipEvent records acquisitions and releases (called from a Manager's
// goroutine: it must not block).
func (d *demo) vipEvent(m *member, ev vip.Event) {
	switch ev.Kind {
	case vip.EventAcquired, vip.EventReleased:
		d.event("%s %s %s (%s)", m.name, ev.Kind, ev.VIF, d.vipAddr[ev.VIF])
	case vip.EventConflict, vip.EventFailed:
		d.event("%s %s %s %v", m.name, ev.Kind, ev.VIF, ev.Err)
	}
}

// owners maps each owned VIF to its owner, as the first live member sees
// the assignment.
func (d *demo) owners() map[string]*member {
	for _, m := range d.members {
		if m.dead.Load() || m.vip == nil {
			continue
		}
		out := map[string]*member{}
		for name, id := range m.vip.Owners() {
			for _, o := range d.members {
				if o.bus.Self() == id {
					out[name] = o
				}
			}
		}
		return out
	}
	return nil
}

// ownerOf returns the member owning the VIF, nil if none or dead.
func (d *demo) ownerOf(vif string) *member {
	if o := d.owners()[vif]; o != nil && !o.dead.Load() {
		return o
	}
	return nil
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, bus.ErrClosed) {
		return nil
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
