package vip_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/vip"
)

func ExamplePlan() {
	a := bus.MemberID{Name: "a", Incarnation: 1}
	b := bus.MemberID{Name: "b", Incarnation: 1}
	c := bus.MemberID{Name: "c", Incarnation: 1}
	vifs := []string{"v1", "v2", "v3", "v4", "v5"}
	fresh := func(m bus.MemberID) vip.State { return vip.State{Member: m, Digest: "d", Mature: true} }

	p := vip.Plan([]bus.MemberID{a, b, c}, vifs, []vip.State{fresh(a), fresh(b), fresh(c)})
	for _, v := range vifs {
		fmt.Println(v, p.Owners[v].Name)
	}

	// c fails: a and b announce what they hold; only c's interfaces move.
	held := func(m bus.MemberID) vip.State {
		s := fresh(m)
		for _, v := range vifs {
			if p.Owners[v] == m {
				s.Holdings = append(s.Holdings, vip.Holding{VIF: v})
			}
		}
		return s
	}
	q := vip.Plan([]bus.MemberID{a, b}, vifs, []vip.State{held(b), held(a)})
	fmt.Println("after c fails:")
	for _, v := range vifs {
		fmt.Println(v, q.Owners[v].Name)
	}
	// Output:
	// v1 a
	// v2 c
	// v3 b
	// v4 c
	// v5 a
	// after c fails:
	// v1 a
	// v2 b
	// v3 b
	// v4 b
	// v5 a
}

func ExampleParseConf() {
	conf, err := vip.ParseConf(strings.NewReader(`
Group = wack1
Mature = 5s
Balance { AcquisitionsPerRound = 1  Interval = 4s }
Prefer None
VirtualInterfaces {
  { eth0:198.18.0.10/32 eth1:198.19.0.10/32 }
  eth0:198.18.0.11/32
}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(conf.Group, conf.Mature, conf.Balance.AcquisitionsPerRound, conf.Balance.Interval)
	for _, v := range conf.VIFs {
		fmt.Println(v.Name, v.Addrs)
	}
	// Output:
	// wack1 5s 1 4s
	// eth0:198.18.0.10 [eth0:198.18.0.10 eth1:198.19.0.10]
	// eth0:198.18.0.11 [eth0:198.18.0.11]
}

// printer is a Backend that prints what it is asked to do.
type printer struct{}

func (printer) Acquire(_ context.Context, v vip.VIF) error {
	fmt.Println("acquire", v.Name)
	return nil
}
func (printer) Announce(_ context.Context, v vip.VIF) error { return nil }
func (printer) Release(_ context.Context, v vip.VIF) error {
	fmt.Println("release", v.Name)
	return nil
}

func ExampleNew() {
	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	member, _ := hub.NewMember("web1")
	g, _ := member.Join(context.Background(), "wackamole")

	vifs := []vip.VIF{
		{Name: "www", Addrs: []vip.Address{{Dev: "eth0", IP: netipMust("198.18.0.10")}}},
		{Name: "api", Addrs: []vip.Address{{Dev: "eth0", IP: netipMust("198.18.0.11")}}},
	}
	acquired := make(chan struct{}, len(vifs))
	m, err := vip.New(g, vifs, printer{}, vip.Config{
		Mature: -1, // take interfaces at once (default: wait 5 s)
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e vip.Event) {
			if e.Kind == vip.EventAcquired {
				acquired <- struct{}{}
			}
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range vifs {
		<-acquired
	}
	fmt.Println("held:", m.Stats().Held)
	// Alone, a graceful shutdown has no one to hand over to: it releases.
	_ = m.Shutdown(context.Background())
	// Output:
	// acquire api
	// acquire www
	// held: 2
	// release api
	// release www
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
