// Command demo runs peerscale's group bus in one process: three members join
// a group, exchange messages at every delivery level, one leaves, and each
// member prints the views and messages it receives.
//
//	go run ./examples/demo
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
	"sync"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
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
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	group := fs.String("group", "demo", "group name")
	perLevel := fs.Int("messages", 2, "messages each member sends at each level")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *perLevel < 0 {
		return fmt.Errorf("demo: -messages must not be negative")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	names := []string{"alpha", "beta", "gamma"}
	members := make([]*inproc.Bus, len(names))
	groups := make([]bus.Group, len(names))
	for i, n := range names {
		b, err := hub.NewMember(n)
		if err != nil {
			return err
		}
		members[i] = b
		if groups[i], err = b.Join(ctx, *group); err != nil {
			return err
		}
	}
	levels := []bus.Level{bus.Unreliable, bus.Reliable, bus.FIFO, bus.Agreed, bus.Safe}

	// Each member records what it receives; printing happens at the end so
	// the output is in a stable order.
	type record struct{ lines []string }
	records := make([]record, len(names))
	var wg sync.WaitGroup
	wantMsgs := len(names) * len(levels) * *perLevel
	for i, g := range groups {
		wg.Go(func() {
			msgs := 0
			for msgs < wantMsgs {
				ev, err := g.Recv(ctx)
				if err != nil {
					if !errors.Is(err, bus.ErrClosed) {
						records[i].lines = append(records[i].lines, "error: "+err.Error())
					}
					return
				}
				switch ev := ev.(type) {
				case *bus.View:
					records[i].lines = append(records[i].lines, describeView(ev))
				case *bus.Message:
					msgs++
					records[i].lines = append(records[i].lines, fmt.Sprintf("%-10s from %-6s %q", ev.Level, ev.Sender.Name, ev.Data))
				}
			}
		})
	}
	for _, l := range levels {
		for i, b := range members {
			for k := range *perLevel {
				if err := b.Send(ctx, *group, l, fmt.Appendf(nil, "%s %s #%d", names[i], l, k+1)); err != nil {
					return err
				}
			}
		}
	}
	// gamma leaves once its own messages are in; alpha and beta see the view.
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for i := range 2 {
		wg.Go(func() {
			for {
				ev, err := groups[i].Recv(ctx)
				if err != nil {
					return
				}
				if v, ok := ev.(*bus.View); ok {
					records[i].lines = append(records[i].lines, describeView(v))
					return
				}
			}
		})
	}
	if err := groups[2].Leave(ctx); err != nil {
		return err
	}
	wg.Wait()
	for i, r := range records {
		fmt.Fprintf(out, "== %s (%s)\n", names[i], members[i].Self())
		for _, l := range r.lines {
			fmt.Fprintln(out, "  "+l)
		}
	}
	st := hub.Stats()
	fmt.Fprintf(out, "== hub: %d views, %d messages sent, %d copies delivered, %d dropped\n", st.Views, st.Sent, st.Delivered, st.Dropped)
	return nil
}

func describeView(v *bus.View) string {
	names := make([]string, len(v.Members))
	for i, m := range v.Members {
		names[i] = m.Name
	}
	s := fmt.Sprintf("view %d: [%s] leader %s", v.ID.Seq, strings.Join(names, " "), v.Leader().Name)
	for _, m := range v.Joined {
		s += " +" + m.Name
	}
	if len(v.Left) > 0 {
		s += " left"
		for _, m := range v.Left {
			s += " -" + m.Name
		}
	}
	return s
}
