// Command spreadlogd is a durable access-log logger on the peerscale bus:
// it subscribes to the log groups its configuration file names and writes
// every record web servers publish (package logpub) to rotating files or
// pipes, acknowledging records to their publishers only after fsync.
//
//	spreadlogd -config /etc/spreadlogd.conf -name logger-a -seeds 127.0.0.1:7946
//
// SIGHUP reopens every file (after logrotate moved them) and restarts
// pipes. SIGINT or SIGTERM commits, acknowledges and exits. With -metrics,
// the logger's counters are served for Prometheus at /metrics.
// The configuration file format is documented on logsub.Setup;
// -check prints the configuration as read and exits.
//
// -bus-profile picks the bus's failure detector (see BusProfile). The
// default, steady, is memberlist's LAN default (a crashed member is noticed
// in about 5 s), the one production deployments of memberlist run: a
// logger that is slow to notice a crash costs nothing (publishers keep the
// records), while one wrongly suspected on a loaded machine costs a view
// change and retransmissions. Every member of the cluster should run the
// same profile. -cpuprofile writes a CPU profile until exit.
//
// # Performance
//
// End to end, 2 logpub Publishers → 2 spreadlogd processes over
// bus/cluster on loopback (steady profile, AckQuorum 2, 100 ms fsync
// interval), logsub/scripts/e2e.sh [duration] [lines/s] (the figures are
// in logsub's package doc): 200,000 lines/s sustained for 60 s with no
// loss, no duplicates and no view change; p50 from Log to fsynced on both
// loggers ~100 ms, p99 130-250 ms while the machine's 2 cores have room,
// up to ~0.5-1 s in the seconds other work saturates them.
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
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/logsub"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("spreadlogd", flag.ContinueOnError)
	fs.SetOutput(out)
	configPath := fs.String("config", "", "configuration file (required)")
	check := fs.Bool("check", false, "print the configuration as read and exit")
	name := fs.String("name", "", "bus member name (default: the Name of the configuration, else the host name)")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	gossipPort := fs.Int("gossip-port", 0, "bus gossip port (0 picks one)")
	dataPort := fs.Int("data-port", 0, "bus data port (0 picks one)")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members to join")
	label := fs.String("label", "", "bus cluster label")
	profile := fs.String("bus-profile", "steady", "bus failure-detector profile: steady (memberlist's LAN defaults: a crash is detected in ~5 s, a loaded machine is not suspected), lan (bus/cluster's LANConfig: ~1 s) or wan")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until exit")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9101)")
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "bound on the graceful shutdown")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		return errors.New("spreadlogd: -config is required")
	}
	src, err := os.ReadFile(*configPath)
	if err != nil {
		return fmt.Errorf("spreadlogd: %w", err)
	}
	setup, err := logsub.ParseSetup(src)
	if err != nil {
		return fmt.Errorf("spreadlogd: %s: %w", *configPath, err)
	}
	if *check {
		_, err := out.Write(setup.Format())
		return err
	}
	log := slog.Default()
	setup.Config.Logger = log
	member := *name
	if member == "" {
		member = setup.Config.Name
	}
	if member == "" {
		if member, err = os.Hostname(); err != nil {
			return fmt.Errorf("spreadlogd: %w", err)
		}
	}

	bcfg, err := BusProfile(*profile)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("spreadlogd: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("spreadlogd: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	bcfg.BindAddr, bcfg.GossipPort, bcfg.DataPort, bcfg.Label, bcfg.Logger = *bind, *gossipPort, *dataPort, *label, log
	if *seeds != "" {
		bcfg.Seeds = strings.Split(*seeds, ",")
	}
	b, err := cluster.New(member, bcfg)
	if err != nil {
		return err
	}
	l, err := logsub.New(ctx, b, setup.Groups, setup.Outputs, setup.Config)
	if err != nil {
		b.Close()
		return err
	}

	var srv *http.Server
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(loggerCollector{l})
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			l.Close()
			b.Close()
			return fmt.Errorf("spreadlogd: metrics: %w", err)
		}
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		fmt.Fprintf(out, "spreadlogd: metrics on http://%s/metrics\n", ln.Addr())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fmt.Fprintf(out, "spreadlogd: %s logging %s, gossip %s\n", member, strings.Join(setup.Groups, ","), b.GossipAddr())
	for done := false; !done; {
		select {
		case <-hup:
			if err := l.Reopen(); err != nil {
				log.Error("reopen failed", "err", err)
			} else {
				fmt.Fprintln(out, "spreadlogd: reopened files")
			}
		case <-ctx.Done():
			done = true
		}
	}

	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	var errs []error
	if srv != nil {
		errs = append(errs, srv.Shutdown(sctx))
	}
	errs = append(errs, l.Shutdown(sctx), b.Shutdown(sctx))
	st := l.Stats()
	fmt.Fprintf(out, "spreadlogd: stopped after %d records (%d duplicates dropped), %d commits\n", st.Records, st.Duplicates, st.Commits)
	return errors.Join(errs...)
}

// BusProfile returns the bus/cluster configuration of a named profile:
//
//   - steady: the failure detector of memberlist's DefaultLANConfig, what
//     Consul and Serf run on LANs (probe every 1 s with a 500 ms timeout,
//     suspicion multiplier 4, gossip every 200 ms; a crashed member is
//     detected in about 5 s), with LinkTimeout 10 s. A logger's outage
//     costs nothing but latency (publishers keep the records), while a
//     member wrongly suspected on a loaded machine costs a view change and
//     retransmissions: loggers want this one.
//   - lan: cluster.LANConfig() (200 ms, 100 ms, 3, 50 ms: about 1 s).
//   - wan: cluster.WANConfig().
func BusProfile(name string) (cluster.Config, error) {
	switch name {
	case "steady":
		c := cluster.LANConfig()
		c.ProbeInterval, c.ProbeTimeout, c.SuspicionMult, c.GossipInterval = time.Second, 500*time.Millisecond, 4, 200*time.Millisecond
		c.LinkTimeout = 10 * time.Second
		return c, nil
	case "lan":
		return cluster.LANConfig(), nil
	case "wan":
		return cluster.WANConfig(), nil
	}
	return cluster.Config{}, fmt.Errorf("spreadlogd: unknown bus profile %q (steady, lan or wan)", name)
}

// loggerCollector exports a Logger's Stats as Prometheus metrics.
type loggerCollector struct{ l *logsub.Logger }

var loggerMetrics = []struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	get  func(s *logsub.Stats) float64
}{
	{metric("records_total", "Records written (duplicates excluded)."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Records) }},
	{metric("duplicates_total", "Records dropped as already written."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Duplicates) }},
	{metric("lines_total", "Lines written over all outputs."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Lines) }},
	{metric("bytes_total", "Bytes written over all outputs."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Bytes) }},
	{metric("commits_total", "Commits (fsync and state file)."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Commits) }},
	{metric("forgotten_total", "Sequence numbers declared seen to bound memory."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Forgotten) }},
	{metric("holes", "Streams with records missing for longer than GapTimeout."), prometheus.GaugeValue, func(s *logsub.Stats) float64 { return float64(s.Holes) }},
	{metric("pipe_errors_total", "Failed writes to piped commands."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.PipeErrors) }},
	{metric("batches_total", "Batch messages received."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Batches) }},
	{metric("bad_messages_total", "Messages that failed to decode."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.BadMessages) }},
	{metric("write_errors_total", "Records that could not be written."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.WriteErrors) }},
	{metric("acks_total", "Acknowledgements sent."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Acks) }},
	{metric("ack_errors_total", "Acknowledgements that could not be sent."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.AckErrors) }},
	{metric("resends_total", "Retransmissions asked for."), prometheus.CounterValue, func(s *logsub.Stats) float64 { return float64(s.Resends) }},
	{metric("open_files", "Files open."), prometheus.GaugeValue, func(s *logsub.Stats) float64 { return float64(s.Files) }},
}

func metric(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("spreadlogd_"+name, help, nil, nil)
}

func (c loggerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range loggerMetrics {
		ch <- m.desc
	}
}

func (c loggerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	for _, m := range loggerMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.get(&s))
	}
}

// signalContext returns a context that ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
