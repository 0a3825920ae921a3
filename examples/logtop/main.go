// Command logtop is a terminal top view of live web traffic, like
// ApacheTop, fed by the access-log records web servers publish on the
// peerscale bus: hits/s, bytes/s and status classes per server and per
// virtual host, and the top URLs and referrers over a sliding window. It is
// a lossy monitor: it never slows publishers or loggers.
//
//	logtop -seeds 127.0.0.1:7946 -group www -window 30s
//
// -once renders a single screen after -interval and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
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

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("logtop", flag.ContinueOnError)
	fs.SetOutput(out)
	name := fs.String("name", "", "bus member name (default logtop-<pid>)")
	groups := fs.String("group", "www", "comma-separated log groups to watch")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members to join")
	label := fs.String("label", "", "bus cluster label")
	window := fs.Duration("window", 60*time.Second, "sliding window")
	topN := fs.Int("top", 10, "length of the top lists")
	interval := fs.Duration("interval", time.Second, "refresh interval")
	width := fs.Int("width", envInt("COLUMNS", 100), "screen width")
	height := fs.Int("height", envInt("LINES", 40), "screen height")
	once := fs.Bool("once", false, "render one screen after -interval and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval <= 0 {
		return errors.New("logtop: -interval must be positive")
	}
	member := *name
	if member == "" {
		member = fmt.Sprintf("logtop-%d", os.Getpid())
	}
	// Operational logs would scramble the screen: keep warnings only.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bcfg := cluster.LANConfig()
	bcfg.BindAddr, bcfg.Label, bcfg.Logger = *bind, *label, log
	if *seeds != "" {
		bcfg.Seeds = strings.Split(*seeds, ",")
	}
	b, err := cluster.New(member, bcfg)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := logsub.NewMonitor(ctx, b, strings.Split(*groups, ","), logsub.MonitorConfig{
		Aggregator: logsub.AggregatorConfig{Window: *window, TopN: *topN},
		Logger:     log,
	})
	if err != nil {
		return err
	}
	defer m.Close()

	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !*once {
			io.WriteString(out, "\x1b[H\x1b[2J")
		}
		if err := Render(out, m.Snapshot(), *width, *height); err != nil {
			return err
		}
		if *once {
			return nil
		}
	}
}
