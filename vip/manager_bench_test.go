package vip

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus/inproc"
)

// notifyBackend reports each acquisition on a channel.
type notifyBackend struct {
	name string
	acq  chan string
}

func (n *notifyBackend) Acquire(_ context.Context, v VIF) error {
	select {
	case n.acq <- n.name + " " + v.Name:
	default:
	}
	return nil
}
func (n *notifyBackend) Announce(context.Context, VIF) error { return nil }
func (n *notifyBackend) Release(context.Context, VIF) error  { return nil }

// BenchmarkDecision measures the Manager's reaction to a detected failure:
// from the view without the owner (hub.Crash) to a survivor's Acquire of
// its interfaces, the protocol's share of a failover (state round, plan,
// backend call), on the in-process bus with 3 members and 8 interfaces.
func BenchmarkDecision(b *testing.B) {
	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	vifs := testVIFs(8)
	acq := make(chan string, 1024)
	type member struct {
		bus *inproc.Bus
		m   *Manager
	}
	var members []member
	seq := 0
	add := func() {
		seq++
		name := fmt.Sprintf("m%d", seq)
		bb, err := hub.NewMember(name)
		if err != nil {
			b.Fatal(err)
		}
		g, err := bb.Join(context.Background(), "vip")
		if err != nil {
			b.Fatal(err)
		}
		m, err := New(g, vifs, &notifyBackend{name: name, acq: acq}, Config{Mature: -1, Balance: Balance{Interval: -1}, Logger: discard()})
		if err != nil {
			b.Fatal(err)
		}
		members = append(members, member{bb, m})
	}
	settled := func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ok := true
			for _, mb := range members {
				if len(mb.m.Owners()) != len(vifs) || mb.m.Stats().Members != len(members) {
					ok = false
				}
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				b.Fatal("members did not settle")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 3 {
		add()
	}
	settled()
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		// The victim is the member that owns the most interfaces.
		vi, owned := 0, 0
		for i, mb := range members {
			n := 0
			for _, o := range mb.m.Owners() {
				if o == mb.bus.Self() {
					n++
				}
			}
			if n > owned {
				vi, owned = i, n
			}
		}
		victim := members[vi]
		for len(acq) > 0 {
			<-acq
		}
		b.StartTimer()
		start := time.Now()
		hub.Crash(victim.bus)
		for range owned {
			<-acq
		}
		lat = append(lat, time.Since(start))
		b.StopTimer()
		_ = victim.m.Close()
		members = slices.Delete(members, vi, vi+1)
		add()
		settled()
		b.StartTimer()
	}
	for _, mb := range members {
		_ = mb.m.Close()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-µs")
}
