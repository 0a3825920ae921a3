// Command logmon is a live web dashboard of web traffic, like mls_mon, fed
// by the access-log records web servers publish on the peerscale bus:
// hit-rate and status-code graphs by server, updated over Server-Sent
// Events, tables of servers, virtual hosts, top URLs and referrers, and
// Prometheus metrics at /metrics. The page is plain HTML and JavaScript
// embedded in the binary. It is a lossy monitor: it never slows publishers
// or loggers.
//
//	logmon -seeds 127.0.0.1:7946 -group www -listen 127.0.0.1:8080
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

	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/logsub"
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
	fs := flag.NewFlagSet("logmon", flag.ContinueOnError)
	fs.SetOutput(out)
	name := fs.String("name", "", "bus member name (default logmon-<pid>)")
	groups := fs.String("group", "www", "comma-separated log groups to watch")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members to join")
	label := fs.String("label", "", "bus cluster label")
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP address of the dashboard")
	window := fs.Duration("window", 60*time.Second, "sliding window")
	topN := fs.Int("top", 10, "length of the top lists")
	interval := fs.Duration("interval", time.Second, "update interval of the page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval <= 0 {
		return errors.New("logmon: -interval must be positive")
	}
	member := *name
	if member == "" {
		member = fmt.Sprintf("logmon-%d", os.Getpid())
	}
	log := slog.Default()
	bcfg := cluster.LANConfig()
	bcfg.BindAddr, bcfg.Label, bcfg.Logger = *bind, *label, log
	if *seeds != "" {
		bcfg.Seeds = strings.Split(*seeds, ",")
	}
	b, err := cluster.New(member, bcfg)
	if err != nil {
		return err
	}
	m, err := logsub.NewMonitor(ctx, b, strings.Split(*groups, ","), logsub.MonitorConfig{
		Aggregator: logsub.AggregatorConfig{Window: *window, TopN: *topN},
		Logger:     log,
	})
	if err != nil {
		b.Close()
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		m.Close()
		b.Close()
		return fmt.Errorf("logmon: %w", err)
	}
	stopStreams, cancelStreams := context.WithCancel(context.Background())
	defer cancelStreams()
	srv := &http.Server{Handler: newHandler(stopStreams, m, *interval), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "logmon: dashboard on http://%s/\n", ln.Addr())

	var errs []error
	select {
	case <-ctx.Done():
	case err := <-served:
		errs = append(errs, err)
	}
	cancelStreams()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	errs = append(errs, m.Close(), b.Shutdown(sctx))
	return errors.Join(errs...)
}
