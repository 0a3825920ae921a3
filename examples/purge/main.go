// Command purge removes a URL, a URL prefix or everything from every
// proxycache member of a cluster, over the peerscale bus:
//
//	purge -seeds 127.0.0.1:7946 http://images.example.com/logo.gif
//	purge -seeds 127.0.0.1:7946 -prefix http://images.example.com/logos/
//	purge -seeds 127.0.0.1:7946 -all
//
// It joins the purge group, sends the purge at FIFO level and, with -wait
// (the default), returns once every member of the group applied it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/proxycache"
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
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	fs.SetOutput(out)
	prefix := fs.Bool("prefix", false, "purge every URL that starts with the argument")
	all := fs.Bool("all", false, "purge everything")
	wait := fs.Bool("wait", true, "wait until every member applied the purge")
	group := fs.String("group", "proxycache", "purge group of the caches")
	seeds := fs.String("seeds", "", "comma-separated gossip addresses of bus members (required)")
	bind := fs.String("bind", "127.0.0.1", "address the bus listens on")
	label := fs.String("label", "", "bus cluster label")
	settle := fs.Duration("settle", 3*time.Second, "how long to wait for the group's view to include the caches")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the whole purge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *seeds == "" || (*all && fs.NArg() != 0) || (!*all && fs.NArg() != 1) {
		return errors.New("purge: usage: purge -seeds host:port [-prefix] URL | -all")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cfg := cluster.LANConfig()
	cfg.BindAddr, cfg.Label, cfg.Seeds = *bind, *label, strings.Split(*seeds, ",")
	h, _ := os.Hostname()
	b, err := cluster.New(fmt.Sprintf("purge@%s.%d", h, os.Getpid()), cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := proxycache.NewPurger(b, proxycache.PurgerConfig{Group: *group, WaitAll: *wait})
	if err != nil {
		return err
	}
	defer p.Close()
	// A new member first sees a view of itself alone: give the bus time to
	// merge it into the caches' view, so that the purge reaches them.
	deadline := time.Now().Add(*settle)
	for p.Members() < 2 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if p.Members() < 2 {
		return errors.New("purge: no cache joined the purge group")
	}
	start := time.Now()
	switch {
	case *all:
		err = p.PurgeAll(ctx)
	case *prefix:
		err = p.PurgePrefix(ctx, fs.Arg(0))
	default:
		err = p.PurgeURL(ctx, fs.Arg(0))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "purge: applied by %d caches in %s\n", p.Members()-1, time.Since(start).Round(time.Microsecond))
	return nil
}
