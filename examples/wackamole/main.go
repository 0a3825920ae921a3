// Command wackamole keeps a set of virtual IP addresses served by
// whichever members of a group are alive, like the wackamole daemon: it
// reads wackamole.conf (or flags), joins the group over bus/cluster and
// lets vip.Manager move addresses with netlink and gratuitous ARP.
//
//	wackamole -config /etc/wackamole.conf -bind 198.18.0.1 -seeds 198.18.0.2:7946
//	wackamole -vif eth0:198.18.0.10 -vif eth0:198.18.0.11 -dry-run -single
//
// The bus runs vip.DefaultDetector's failure-detection profile (-profile
// vip: a failed member's addresses move in about 0.6 s); -profile lan
// takes bus/cluster's LAN profile (about 1 s), -profile wan its WAN one,
// and -probe-interval, -probe-timeout, -suspicion-mult, -gossip-interval
// and -sync-timeout override single settings of the chosen profile.
//
// -dry-run only logs what it would do (no root needed); -single runs one
// member on an in-process bus, for trying a configuration out.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/vip"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("wackamole", flag.ContinueOnError)
	fs.SetOutput(out)
	confPath := fs.String("config", "", "wackamole.conf to read (flags below override it)")
	var vifFlags, preferFlags listFlag
	fs.Var(&vifFlags, "vif", "virtual interface `dev:ip[,dev:ip...]` (repeatable)")
	fs.Var(&preferFlags, "prefer", "preferred virtual interface `name` (repeatable)")
	host, _ := os.Hostname()
	name := fs.String("name", host, "member name")
	group := fs.String("group", "", "bus group (default: Group of the config, else wackamole)")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	gossipPort := fs.Int("gossip-port", 0, "memberlist port (0 picks one)")
	dataPort := fs.Int("data-port", 0, "data link port (0 picks one)")
	seeds := fs.String("seeds", "", "comma-separated host:port of other members")
	profile := fs.String("profile", "vip", "bus failure-detection profile: vip (vip.DefaultDetector, failover in about 0.6 s), lan (bus/cluster's LAN profile, about 1 s) or wan (several seconds)")
	probeInterval := fs.Duration("probe-interval", 0, "override the profile's failure-detector probe interval")
	probeTimeout := fs.Duration("probe-timeout", 0, "override the profile's direct probe timeout")
	suspicionMult := fs.Int("suspicion-mult", 0, "override the profile's suspicion multiplier (suspicion timeout = mult × probe interval)")
	gossipInterval := fs.Duration("gossip-interval", 0, "override the profile's gossip interval")
	syncTimeout := fs.Duration("sync-timeout", 0, "override how long a new bus coordinator waits for the members' state")
	mature := fs.Duration("mature", 0, "wait before taking interfaces after start (0: config or 5s; negative: none)")
	arpCache := fs.Duration("arp-cache", 0, "share the neighbour cache this often (0: Arp-Cache of the config when Notify has arp-cache)")
	lifetime := fs.Duration("lifetime", 0, "address lifetime refreshed while alive (dead-man switch; 0: permanent)")
	dryRun := fs.Bool("dry-run", false, "log address changes instead of making them")
	single := fs.Bool("single", false, "run alone on an in-process bus")
	debug := fs.Bool("debug", false, "log at debug level")
	statsEvery := fs.Duration("stats-interval", 0, "log a stats snapshot this often (0: never)")
	shutdownTimeout := fs.Duration("shutdown-timeout", 5*time.Second, "bound on the graceful hand-over at exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))

	conf := &vip.ConfFile{}
	if *confPath != "" {
		f, err := os.Open(*confPath)
		if err != nil {
			return err
		}
		conf, err = vip.ParseConf(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *confPath, err)
		}
	}
	vifs := conf.VIFs
	for _, s := range vifFlags {
		var v vip.VIF
		for _, part := range strings.Split(s, ",") {
			a, err := vip.ParseAddress(part)
			if err != nil {
				return err
			}
			v.Addrs = append(v.Addrs, a)
		}
		vifs = append(vifs, v)
	}
	if len(vifs) == 0 {
		return errors.New("wackamole: no virtual interfaces (-vif or VirtualInterfaces in -config)")
	}
	cfg := vip.Config{
		Prefer:  append(conf.Prefer, preferFlags...),
		Mature:  conf.Mature,
		Balance: conf.Balance,
		Logger:  log,
	}
	if *mature != 0 {
		cfg.Mature = *mature
	}
	if conf.NotifyARPCache {
		cfg.ARPCache = cmp.Or(conf.ARPCache, 90*time.Second)
	}
	if *arpCache != 0 {
		cfg.ARPCache = *arpCache
	}
	groupName := cmp.Or(*group, conf.Group, "wackamole")

	// The bus: the main chooses the implementation.
	var b bus.Bus
	if *single {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		m, err := hub.NewMember(*name)
		if err != nil {
			return err
		}
		b = m
	} else {
		var ccfg cluster.Config
		switch *profile {
		case "vip":
			d := vip.DefaultDetector()
			ccfg = cluster.LANConfig()
			ccfg.ProbeInterval, ccfg.ProbeTimeout, ccfg.SuspicionMult = d.ProbeInterval, d.ProbeTimeout, d.SuspicionMult
			ccfg.GossipInterval, ccfg.SyncTimeout = d.GossipInterval, d.SyncTimeout
		case "lan":
			ccfg = cluster.LANConfig()
		case "wan":
			ccfg = cluster.WANConfig()
		default:
			return fmt.Errorf("wackamole: -profile %q: want vip, lan or wan", *profile)
		}
		ccfg.ProbeInterval = cmp.Or(*probeInterval, ccfg.ProbeInterval)
		ccfg.ProbeTimeout = cmp.Or(*probeTimeout, ccfg.ProbeTimeout)
		ccfg.SuspicionMult = cmp.Or(*suspicionMult, ccfg.SuspicionMult)
		ccfg.GossipInterval = cmp.Or(*gossipInterval, ccfg.GossipInterval)
		ccfg.SyncTimeout = cmp.Or(*syncTimeout, ccfg.SyncTimeout)
		if ccfg.ProbeInterval < 0 || ccfg.ProbeTimeout < 0 || ccfg.SuspicionMult < 0 || ccfg.GossipInterval < 0 || ccfg.SyncTimeout < 0 {
			return errors.New("wackamole: failure-detector settings must not be negative")
		}
		if ccfg.ProbeTimeout >= ccfg.ProbeInterval {
			return fmt.Errorf("wackamole: probe timeout %v must be shorter than the probe interval %v", ccfg.ProbeTimeout, ccfg.ProbeInterval)
		}
		ccfg.BindAddr, ccfg.GossipPort, ccfg.DataPort, ccfg.Logger = *bind, *gossipPort, *dataPort, log
		if *seeds != "" {
			ccfg.Seeds = strings.Split(*seeds, ",")
		}
		c, err := cluster.New(*name, ccfg)
		if err != nil {
			return err
		}
		log.Info("bus started", "member", c.Self(), "gossip", c.GossipAddr(), "profile", *profile,
			"probe_interval", ccfg.ProbeInterval, "probe_timeout", ccfg.ProbeTimeout, "suspicion_mult", ccfg.SuspicionMult,
			"gossip_interval", ccfg.GossipInterval, "sync_timeout", ccfg.SyncTimeout)
		b = c
	}
	defer b.Close()

	var backend vip.Backend
	if *dryRun {
		backend = vip.DryRun{Logger: log}
	} else {
		nl, err := vip.NewNetlink(vifs, vip.NetlinkConfig{
			Lifetime: *lifetime, Notify: conf.Notify, NotifyNeighbors: conf.NotifyARPCache, Logger: log,
		})
		if err != nil {
			return err
		}
		defer nl.Close()
		backend = nl
	}

	g, err := b.Join(ctx, groupName)
	if err != nil {
		return err
	}
	m, err := vip.New(g, vifs, backend, cfg)
	if err != nil {
		_ = g.Leave(context.Background())
		return err
	}
	log.Info("wackamole running", "group", groupName, "vifs", len(vifs), "dry_run", *dryRun)

	var tick <-chan time.Time
	if *statsEvery > 0 {
		t := time.NewTicker(*statsEvery)
		defer t.Stop()
		tick = t.C
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick:
			s := m.Stats()
			log.Info("stats", "view", s.View, "members", s.Members, "leader", s.Leader, "held", s.Held,
				"acquisitions", s.Acquisitions, "releases", s.Releases, "conflicts", s.Conflicts, "failures", s.Failures)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	err = m.Shutdown(sctx)
	log.Info("wackamole stopped", "err", err)
	return err
}
