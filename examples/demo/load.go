package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// loadStats counts the load generator's requests.
type loadStats struct {
	requests atomic.Uint64 // requests sent, retries included
	ok       atomic.Uint64 // answered 200
	errors   atomic.Uint64 // failed (connection refused by a killed member, timeouts, other statuses)
	failover atomic.Uint64 // requests retried on another member after an error
}

const (
	userCookie   = "demo_user"
	users        = 40 // distinct users (Basic auth names) of the load generator
	imagesPerDir = 16
)

// generate sends rate requests per second from a few workers until ctx
// ends. Each request picks a virtual IP and goes to the HTTP listener of
// the member that owns it (as a client resolving the VIP would), as one of
// a fixed set of users (named by a cookie, since a shared cache answers no
// request with credentials), for one of a fixed set of images; a failed request
// is retried once on another live member.
func (d *demo) generate(ctx context.Context, rate int) {
	const workers = 4
	client := &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers, IdleConnTimeout: 5 * time.Second},
	}
	defer client.CloseIdleConnections()
	period := time.Duration(workers) * time.Second / time.Duration(rate)
	done := make(chan struct{}, workers)
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			t := time.NewTicker(period)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				d.request(ctx, client, rng)
			}
		}()
	}
	for range workers {
		<-done
	}
}

func (d *demo) request(ctx context.Context, client *http.Client, rng *rand.Rand) {
	dir := "thumbs"
	if rng.IntN(3) == 0 {
		dir = "photos"
	}
	// A skewed choice: low-numbered images are the popular ones.
	img := min(rng.IntN(imagesPerDir), rng.IntN(imagesPerDir))
	path := fmt.Sprintf("/%s/%d.png", dir, img)
	user := fmt.Sprintf("user%02d", rng.IntN(users))
	target := d.ownerOf(d.vifNames[rng.IntN(len(d.vifNames))])
	if target == nil {
		target = d.randomLive(rng, nil)
	}
	for attempt := range 2 {
		if target == nil || ctx.Err() != nil {
			return
		}
		err := d.get(ctx, client, target, path, user)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.load.errors.Add(1)
		if attempt == 0 {
			d.load.failover.Add(1)
			target = d.randomLive(rng, target)
		}
	}
}

func (d *demo) get(ctx context.Context, client *http.Client, m *member, path, user string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.httpAddr+path, nil)
	if err != nil {
		return err
	}
	req.Host = imageHost
	req.AddCookie(&http.Cookie{Name: userCookie, Value: user})
	req.Header.Set("User-Agent", "peerscale-demo/1")
	req.Header.Set("Referer", "http://"+imageHost+"/gallery.html")
	d.load.requests.Add(1)
	m.requests.Add(1)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	d.load.ok.Add(1)
	return nil
}

// randomLive returns a live member other than not, or nil.
func (d *demo) randomLive(rng *rand.Rand, not *member) *member {
	var live []*member
	for _, m := range d.members {
		if m != not && !m.dead.Load() {
			live = append(live, m)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[rng.IntN(len(live))]
}

// levels are the delivery levels the chatter exercises.
var levels = []bus.Level{bus.Unreliable, bus.Reliable, bus.FIFO, bus.Causal, bus.Agreed, bus.Safe}

// chatter makes every live member send one small message at every level
// to chatGroup twice a second, until ctx ends. A level the bus does not
// provide is marked unsupported and not tried again.
func (d *demo) chatter(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n++
		for _, m := range d.members {
			for _, l := range levels {
				if m.dead.Load() || m.unsup[l].Load() {
					continue
				}
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				err := m.chat.Send(sctx, l, fmt.Appendf(nil, "%s %s #%d", m.name, l, n))
				cancel()
				switch {
				case err == nil:
					m.sent[l].Add(1)
				case errors.Is(err, bus.ErrUnsupportedLevel):
					m.unsup[l].Store(true)
				}
			}
		}
	}
}

// receive reads m's chatGroup stream until the group or the bus closes
// or ctx ends: views replace the member's view, messages are counted per
// level.
func (d *demo) receive(ctx context.Context, m *member) {
	for {
		ev, err := m.chat.Recv(ctx)
		if err != nil {
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			m.view.Store(ev)
		case *bus.Message:
			if ev.Level.Valid() {
				m.recv[ev.Level].Add(1)
			}
		}
	}
}
