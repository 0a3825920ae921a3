package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/logpub"
	"github.com/peerscale/peerscale/proxycache"
	"github.com/peerscale/peerscale/vip"
)

// Bus groups of the demo.
const (
	chatGroup  = "demo"       // every web member: views and one message per level
	purgeGroup = "proxycache" // cluster-wide purges
	logGroup   = "www"        // access-log records
	vipGroup   = "wackamole"  // virtual IP managers
	imageHost  = "images.demo"
)

// network makes bus members of one kind and crashes them.
type network struct {
	kind     string // "cluster" or "inproc"
	hub      *inproc.Hub
	seeds    []string // gossip addresses of the cluster members started so far
	basePort int
	log      *slog.Logger
}

// newMember starts the bus of member slot i (0-based; each slot has its own
// loopback address 127.0.0.(i+1) and, with -base-port, its own ports).
func (n *network) newMember(name string, i int) (bus.Bus, string, error) {
	if n.kind == "inproc" {
		b, err := n.hub.NewMember(name)
		if err != nil {
			return nil, "", err
		}
		return b, "in-process", nil
	}
	cfg := cluster.LANConfig()
	cfg.BindAddr = "127.0.0." + strconv.Itoa(i+1)
	// A failure detector relaxed for a loaded 2-core machine: a killed
	// member says goodbye, so its departure is seen at once anyway.
	cfg.ProbeInterval = 500 * time.Millisecond
	cfg.ProbeTimeout = 400 * time.Millisecond
	cfg.SuspicionMult = 4
	cfg.Label = "peerscale-demo"
	cfg.Logger = n.log.With("member", name)
	if n.basePort > 0 {
		cfg.GossipPort = n.basePort + 20 + 2*i
		cfg.DataPort = n.basePort + 21 + 2*i
	}
	// Every member started before is a seed: memberlist exchanges its
	// state with each at join, so a new member is known at once by all of
	// them instead of through gossip (a lost gossip on a loaded machine
	// would leave it unknown to some until the next push/pull, 15 s on).
	cfg.Seeds = slices.Clone(n.seeds)
	b, err := cluster.New(name, cfg)
	if err != nil {
		return nil, "", err
	}
	n.seeds = append(n.seeds, b.GossipAddr())
	return b, b.GossipAddr(), nil
}

// crash stops b abruptly: the other members see it leave at once.
func (n *network) crash(b bus.Bus) error {
	if ib, ok := b.(*inproc.Bus); ok {
		n.hub.Crash(ib)
		return nil
	}
	return b.Close()
}

// liveMembers returns how many cluster members b sees, or -1 for inproc.
func liveMembers(b bus.Bus) int {
	if cb, ok := b.(*cluster.Bus); ok {
		return cb.Stats().Members
	}
	return -1
}

// member is one web server of the demo: a bus member running a cache in
// front of the origin, an access-log publisher, a virtual IP manager and
// an HTTP listener on 127.0.0.1.
type member struct {
	name     string
	bus      bus.Bus
	busAddr  string
	cache    *proxycache.Cache
	pub      *logpub.Publisher
	vip      *vip.Manager
	chat     bus.Group
	srv      *http.Server
	srvErr   chan error
	httpAddr string

	view     atomic.Pointer[bus.View] // latest view of chatGroup
	recv     [bus.Safe + 1]atomic.Uint64
	sent     [bus.Safe + 1]atomic.Uint64
	unsup    [bus.Safe + 1]atomic.Bool
	requests atomic.Uint64 // load-generator requests sent to this member
	dead     atomic.Bool
}

// memberConfig is what every member shares.
type memberConfig struct {
	dir      string
	origin   *url.URL
	vifs     []vip.VIF
	httpPort int // 0 picks one
	log      *slog.Logger
	onVIP    func(m *member, ev vip.Event)
}

// start builds the member's components on its bus, in dependency order,
// and undoes what it built if a step fails.
func (m *member) start(ctx context.Context, cfg memberConfig) (err error) {
	log := cfg.log.With("member", m.name)
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("demo: start %s: %w", m.name, err), m.close())
		}
	}()
	if m.chat, err = m.bus.Join(ctx, chatGroup); err != nil {
		return err
	}
	m.cache, err = proxycache.New(filepath.Join(cfg.dir, "cache", m.name),
		map[string]*url.URL{imageHost: cfg.origin},
		proxycache.Config{
			MaxBytes: 64 << 20, Bus: m.bus, Group: purgeGroup, PurgeWaitAll: true,
			Name: m.name, Logger: log,
		})
	if err != nil {
		return err
	}
	m.pub, err = logpub.New(m.bus, logGroup, logpub.Config{
		ID: m.name, Dir: filepath.Join(cfg.dir, "spool", m.name), MaxJournal: 64 << 20, Logger: log,
	})
	if err != nil {
		return err
	}
	g, err := m.bus.Join(ctx, vipGroup)
	if err != nil {
		return err
	}
	m.vip, err = vip.New(g, cfg.vifs, vip.DryRun{Logger: log}, vip.Config{
		Mature:  time.Second,
		Balance: vip.Balance{Interval: time.Second},
		Logger:  log,
		OnEvent: func(ev vip.Event) { cfg.onVIP(m, ev) },
	})
	if err != nil {
		_ = g.Leave(context.Background())
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.httpPort)))
	if err != nil {
		return err
	}
	m.httpAddr = ln.Addr().String()
	handler := logpub.Middleware(m.pub, logpub.HandlerConfig{
		ServerName: imageHost,
		// The user of the access log (%u), which the who's-online index
		// counts, is named by a cookie.
		User: func(r *http.Request) (string, bool) {
			c, err := r.Cookie(userCookie)
			if err != nil || c.Value == "" {
				return "", false
			}
			return c.Value, true
		},
	})(m.cache)
	m.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext:       logpub.ConnContext,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	m.srvErr = make(chan error, 1)
	go func() { m.srvErr <- m.srv.Serve(ln) }()
	return nil
}

// shutdown stops the member gracefully, front to back: the listener
// drains, the virtual IPs are handed over, the cache finishes its fills,
// the publisher waits for the logger's acknowledgements, then the bus
// leaves. A killed member has nothing left to stop.
func (m *member) shutdown(ctx context.Context) error {
	if m.dead.Load() {
		return nil
	}
	var errs []error
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx), serveErr(<-m.srvErr))
		m.srv = nil
	}
	if m.vip != nil {
		errs = append(errs, m.vip.Shutdown(ctx))
	}
	if m.cache != nil {
		errs = append(errs, m.cache.Shutdown(ctx))
	}
	if m.pub != nil {
		errs = append(errs, m.pub.Shutdown(ctx))
	}
	if m.chat != nil {
		errs = append(errs, m.chat.Leave(ctx))
	}
	return errors.Join(errs...)
}

// close stops every component at once (a crash when the bus went first).
func (m *member) close() error {
	var errs []error
	if m.srv != nil {
		errs = append(errs, m.srv.Close(), serveErr(<-m.srvErr))
		m.srv = nil
	}
	if m.vip != nil {
		errs = append(errs, m.vip.Close())
	}
	if m.cache != nil {
		errs = append(errs, m.cache.Close())
	}
	if m.pub != nil {
		errs = append(errs, m.pub.Close())
	}
	return errors.Join(errs...)
}

func serveErr(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
