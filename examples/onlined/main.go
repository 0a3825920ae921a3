// Command onlined is the who's-online daemon: it joins the access-log group
// on the peerscale bus, feeds every record web servers publish (package
// logpub) into an online.Index, and answers queries over the Redis protocol
// (redis-cli works) and, optionally, HTTP/JSON with Prometheus metrics.
//
//	onlined -resp 127.0.0.1:7379 -http 127.0.0.1:7380 -group www -seeds 127.0.0.1:7946
//	redis-cli -p 7379 COUNT
//	redis-cli -p 7379 ONURL /index.html LIMIT 30
//	curl 'http://127.0.0.1:7380/url?u=/index.html&limit=30'
//
// With -group "" it joins no bus: clients feed it with HIT. SIGINT or
// SIGTERM shuts it down gracefully.
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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/online"
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
	fs := flag.NewFlagSet("onlined", flag.ContinueOnError)
	fs.SetOutput(out)
	window := fs.Duration("window", online.DefaultWindow, "how long a user counts as online after its last hit")
	maxUsers := fs.Int("max-users", online.DefaultMaxUsers, "users tracked at most (the least recently seen is evicted)")
	respAddr := fs.String("resp", "127.0.0.1:7379", "address of the Redis-protocol server")
	httpAddr := fs.String("http", "", "address of the HTTP/JSON and /metrics server (empty: none)")
	maxConns := fs.Int("max-conns", online.DefaultMaxConns, "maximum Redis-protocol connections")
	idle := fs.Duration("idle-timeout", 0, "close Redis-protocol connections idle this long (0: never)")
	group := fs.String("group", "www", `log group to ingest (empty: no bus, HIT only)`)
	remoteUsers := fs.Bool("use-remote-addr", false, "count records without an authenticated user by client address")
	keepQuery := fs.Bool("keep-query", false, "keep query strings in URLs")
	name := fs.String("name", "", "bus member name (default: onlined@host name)")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	gossipPort := fs.Int("gossip-port", 0, "bus gossip port (0 picks one)")
	dataPort := fs.Int("data-port", 0, "bus data port (0 picks one)")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members to join")
	label := fs.String("label", "", "bus cluster label")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "bound on the graceful shutdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("onlined: unexpected arguments %q", fs.Args())
	}
	log := slog.Default()
	ix := online.NewIndex(online.Config{Window: *window, MaxUsers: *maxUsers})

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

	var ingest *online.Ingest
	if *group != "" {
		member := *name
		if member == "" {
			host, err := os.Hostname()
			if err != nil {
				return fmt.Errorf("onlined: %w", err)
			}
			member = "onlined@" + host
		}
		bcfg := cluster.LANConfig()
		bcfg.BindAddr, bcfg.GossipPort, bcfg.DataPort, bcfg.Label, bcfg.Logger = *bind, *gossipPort, *dataPort, *label, log
		if *seeds != "" {
			bcfg.Seeds = strings.Split(*seeds, ",")
		}
		b, err := cluster.New(member, bcfg)
		if err != nil {
			return fmt.Errorf("onlined: %w", err)
		}
		stack = append(stack, b.Shutdown)
		ingest, err = online.NewIngest(ix, b, *group, online.IngestConfig{
			UseRemoteAddr: *remoteUsers, KeepQuery: *keepQuery, Logger: log,
		})
		if err != nil {
			return errors.Join(err, shutdown())
		}
		stack = append(stack, ingest.Shutdown)
		fmt.Fprintf(out, "onlined: %s ingesting group %s, gossip %s\n", member, *group, b.GossipAddr())
	}

	ln, err := net.Listen("tcp", *respAddr)
	if err != nil {
		return errors.Join(fmt.Errorf("onlined: %w", err), shutdown())
	}
	srv := online.NewServer(ix, ln, online.ServerConfig{MaxConns: *maxConns, IdleTimeout: *idle, Logger: log})
	stack = append(stack, srv.Shutdown)
	fmt.Fprintf(out, "onlined: RESP on %s, window %s\n", srv.Addr(), *window)

	if *httpAddr != "" {
		hln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return errors.Join(fmt.Errorf("onlined: %w", err), shutdown())
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collector{ix: ix, srv: srv, ingest: ingest})
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.Handle("/", online.NewHandler(ix))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			hs.Serve(hln)
		}()
		stack = append(stack, func(ctx context.Context) error {
			err := hs.Shutdown(ctx)
			<-served
			return err
		})
		fmt.Fprintf(out, "onlined: HTTP on http://%s/\n", hln.Addr())
	}

	fmt.Fprintln(out, "onlined: ready")
	<-ctx.Done()
	err = shutdown()
	st := ix.Stats()
	fmt.Fprintf(out, "onlined: stopped with %d users online after %d hits\n", st.Users, st.Hits)
	return err
}

// collector exports the index's, server's and ingest's Stats.
type collector struct {
	ix     *online.Index
	srv    *online.Server
	ingest *online.Ingest // nil without a bus
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("onlined_"+name, help, nil, nil)
}

var (
	usersDesc     = desc("users", "Users online.")
	urlsDesc      = desc("urls", "Distinct URLs users were last seen on.")
	hitsDesc      = desc("hits_total", "Hits applied to the index.")
	staleDesc     = desc("hits_stale_total", "Hits ignored as already expired.")
	oooDesc       = desc("hits_out_of_order_total", "Hits ignored as older than the user's last hit.")
	expiredDesc   = desc("expired_total", "Users expired.")
	evictedDesc   = desc("evicted_total", "Users evicted to stay within -max-users.")
	connsDesc     = desc("connections", "Open Redis-protocol connections.")
	commandsDesc  = desc("commands_total", "Redis-protocol requests executed.")
	protoErrDesc  = desc("protocol_errors_total", "Connections closed for malformed requests.")
	recordsDesc   = desc("ingest_records_total", "Log records decoded from the bus.")
	badDesc       = desc("ingest_bad_messages_total", "Undecodable bus messages skipped.")
	droppedDesc   = desc("ingest_dropped_records_total", "Records dropped because the backlog was full.")
	backlogDesc   = desc("ingest_backlog_bytes", "Bytes received and not yet applied.")
	anonymousDesc = desc("ingest_anonymous_total", "Records without a user, skipped.")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v)
	}
	is := c.ix.Stats()
	m(usersDesc, prometheus.GaugeValue, float64(is.Users))
	m(urlsDesc, prometheus.GaugeValue, float64(is.URLs))
	m(hitsDesc, prometheus.CounterValue, float64(is.Hits))
	m(staleDesc, prometheus.CounterValue, float64(is.Stale))
	m(oooDesc, prometheus.CounterValue, float64(is.OutOfOrder))
	m(expiredDesc, prometheus.CounterValue, float64(is.Expired))
	m(evictedDesc, prometheus.CounterValue, float64(is.Evicted))
	ss := c.srv.Stats()
	m(connsDesc, prometheus.GaugeValue, float64(ss.Conns))
	m(commandsDesc, prometheus.CounterValue, float64(ss.Commands))
	m(protoErrDesc, prometheus.CounterValue, float64(ss.ProtocolErrors))
	if c.ingest != nil {
		gs := c.ingest.Stats()
		m(recordsDesc, prometheus.CounterValue, float64(gs.Records))
		m(badDesc, prometheus.CounterValue, float64(gs.BadMessages))
		m(droppedDesc, prometheus.CounterValue, float64(gs.DroppedRecords))
		m(backlogDesc, prometheus.GaugeValue, float64(gs.Backlog))
		m(anonymousDesc, prometheus.CounterValue, float64(gs.Anonymous))
	}
}
