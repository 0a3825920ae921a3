package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
)

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	// The first member starts a cluster; the second joins it.
	cfg := cluster.LANConfig()
	cfg.Logger = quiet
	a, err := cluster.New("a", cfg)
	if err != nil {
		panic(err)
	}
	defer a.Close()
	cfg.BindAddr = "127.0.0.2"
	cfg.Seeds = []string{a.GossipAddr()}
	b, err := cluster.New("b", cfg)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ga, err := a.Join(ctx, "purge")
	if err != nil {
		panic(err)
	}
	if _, err := b.Join(ctx, "purge"); err != nil {
		panic(err)
	}
	if err := b.Send(ctx, "purge", bus.FIFO, []byte("/index.html")); err != nil {
		panic(err)
	}
	for {
		ev, err := ga.Recv(ctx)
		if err != nil {
			panic(err)
		}
		switch ev := ev.(type) {
		case *bus.View:
			fmt.Println("view of", len(ev.Members), "members")
		case *bus.Message:
			fmt.Printf("%s from %s\n", ev.Data, ev.Sender.Name)
			return
		}
	}
	// Output:
	// view of 1 members
	// view of 2 members
	// /index.html from b
}
