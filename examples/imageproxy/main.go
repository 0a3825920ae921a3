// Command imageproxy is the image server of "Scalable Internet
// Architectures": a caching reverse proxy in front of the image origins
// that stores http://images.example.com/logo.gif as
// <cache>/images.example.com/logo.gif, writes an Apache combined access log
// and, with -bus, applies purges from every member of the cluster (see
// examples/purge), publishes its access log on the bus and, with -vip,
// shares virtual IP addresses with the other members (package vip).
//
//	imageproxy -listen 127.0.0.1:8080 -cache /var/cache/images \
//	    -origin images.example.com=http://10.0.0.5:8080 -access-log access.log \
//	    -admin 127.0.0.1:8081 -bus -seeds 127.0.0.1:7946 -log-group www
//	curl -H 'Host: images.example.com' http://127.0.0.1:8080/logo.gif
//	curl -X PURGE -H 'Host: images.example.com' http://127.0.0.1:8080/logos/*
//	curl -d '{"prefix":"http://images.example.com/logos/"}' http://127.0.0.1:8081/purge
//
// SIGINT or SIGTERM shuts it down gracefully.
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
	"strings"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/logpub"
	"github.com/peerscale/peerscale/proxycache"
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

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("imageproxy", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "127.0.0.1:8080", "address of the proxy")
	admin := fs.String("admin", "", "address of the admin API (POST /purge, GET /stats; empty: none)")
	dir := fs.String("cache", "", "cache directory (required)")
	origins := fs.String("origin", "", "comma-separated host=origin-URL pairs (required)")
	maxBytes := fs.Int64("max-bytes", 1<<30, "bound on the cache size in bytes")
	accessLog := fs.String("access-log", "", "file to append the combined access log to (empty: none)")
	useBus := fs.Bool("bus", false, "join the peerscale bus for cluster-wide purges")
	group := fs.String("group", "proxycache", "purge group")
	waitAll := fs.Bool("purge-wait-all", false, "purges return once every member applied them")
	logGroup := fs.String("log-group", "", "publish the access log to this bus group (needs -bus and -log-spool)")
	logSpool := fs.String("log-spool", "", "journal directory of the published access log")
	name := fs.String("name", "", "bus member name (default: imageproxy@host name)")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	gossipPort := fs.Int("gossip-port", 0, "bus gossip port (0 picks one)")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members to join")
	label := fs.String("label", "", "bus cluster label")
	vipGroup := fs.String("vip-group", "wackamole", "bus group of the virtual IP managers")
	vipDryRun := fs.Bool("vip-dry-run", false, "log virtual IP changes instead of making them")
	var vifFlags []string
	fs.Func("vip", "a virtual interface: comma-separated addresses (10.0.0.10/32,...) shared with the other members (repeatable; needs -bus)",
		func(s string) error { vifFlags = append(vifFlags, s); return nil })
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "bound on the graceful shutdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *origins == "" || fs.NArg() > 0 {
		return errors.New("imageproxy: -cache and -origin are required, and no arguments")
	}
	om := map[string]*url.URL{}
	for _, pair := range strings.Split(*origins, ",") {
		host, raw, ok := strings.Cut(strings.TrimSpace(pair), "=")
		u, err := url.Parse(raw)
		if !ok || err != nil {
			return fmt.Errorf("imageproxy: bad -origin %q", pair)
		}
		om[host] = u
	}

	var stack []func(context.Context) error // shut down in reverse order
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		var errs []error
		for i := len(stack) - 1; i >= 0; i-- {
			errs = append(errs, stack[i](sctx))
		}
		return errors.Join(errs...)
	}

	var b bus.Bus
	if *useBus {
		n := *name
		if n == "" {
			h, _ := os.Hostname()
			n = "imageproxy@" + h
		}
		cfg := cluster.LANConfig()
		cfg.BindAddr, cfg.GossipPort, cfg.Label = *bind, *gossipPort, *label
		if *seeds != "" {
			cfg.Seeds = strings.Split(*seeds, ",")
		}
		cb, err := cluster.New(n, cfg)
		if err != nil {
			return err
		}
		b = cb
		stack = append(stack, func(context.Context) error { return cb.Close() })
	}

	if len(vifFlags) > 0 {
		if b == nil {
			return errors.Join(errors.New("imageproxy: -vip needs -bus"), shutdown())
		}
		var vifs []vip.VIF
		for _, f := range vifFlags {
			var v vip.VIF
			for _, part := range strings.Split(f, ",") {
				a, err := vip.ParseAddress(part)
				if err != nil {
					return errors.Join(err, shutdown())
				}
				v.Addrs = append(v.Addrs, a)
			}
			vifs = append(vifs, v)
		}
		var backend vip.Backend = vip.DryRun{Logger: slog.Default()}
		if !*vipDryRun {
			nl, err := vip.NewNetlink(vifs, vip.NetlinkConfig{})
			if err != nil {
				return errors.Join(err, shutdown())
			}
			stack = append(stack, func(context.Context) error { return nl.Close() })
			backend = nl
		}
		g, err := b.Join(ctx, *vipGroup)
		if err != nil {
			return errors.Join(err, shutdown())
		}
		m, err := vip.New(g, vifs, backend, vip.Config{})
		if err != nil {
			return errors.Join(err, g.Leave(context.Background()), shutdown())
		}
		stack = append(stack, m.Shutdown)
	}

	cache, err := proxycache.New(*dir, om, proxycache.Config{MaxBytes: *maxBytes, Bus: b, Group: *group, PurgeWaitAll: *waitAll})
	if err != nil {
		return errors.Join(err, shutdown())
	}
	stack = append(stack, cache.Shutdown)

	var handler http.Handler = cache
	var sinks []logpub.Sink
	format, err := logpub.Compile(logpub.CombinedFormat)
	if err != nil {
		return errors.Join(err, shutdown())
	}
	if *accessLog != "" {
		f, err := os.OpenFile(*accessLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return errors.Join(err, shutdown())
		}
		stack = append(stack, func(context.Context) error { return f.Close() })
		sinks = append(sinks, logpub.NewWriterSink(f, format))
	}
	if *logGroup != "" {
		if b == nil || *logSpool == "" {
			return errors.Join(errors.New("imageproxy: -log-group needs -bus and -log-spool"), shutdown())
		}
		pub, err := logpub.New(b, *logGroup, logpub.Config{Format: format, Dir: *logSpool})
		if err != nil {
			return errors.Join(err, shutdown())
		}
		stack = append(stack, pub.Shutdown)
		sinks = append(sinks, pub)
	}
	if len(sinks) > 0 {
		handler = logpub.Middleware(logpub.MultiSink(sinks...), logpub.HandlerConfig{})(handler)
	}

	serve := func(addr string, h http.Handler, what string) (chan error, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn)}
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(l) }()
		stack = append(stack, func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
			return err
		})
		fmt.Fprintf(out, "imageproxy: %s on %s\n", what, l.Addr())
		return errc, nil
	}
	if _, err := serve(*listen, handler, "proxy"); err != nil {
		return errors.Join(err, shutdown())
	}
	if *admin != "" {
		if _, err := serve(*admin, cache.AdminHandler(), "admin"); err != nil {
			return errors.Join(err, shutdown())
		}
	}
	<-ctx.Done()
	return shutdown()
}
