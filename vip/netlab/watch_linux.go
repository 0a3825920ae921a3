//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

// AddrWatch records when addresses appear on a host, from netlink address
// events timestamped on arrival.
type AddrWatch struct {
	mu    sync.Mutex
	added map[netip.Addr][]time.Time
	note  notifier
}

// notifier wakes every waiter when a watch records something.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed at the next record.
func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// waitFor polls found after every record until it reports true or ctx
// ends. The reader goroutine of a watch may lag the event the caller
// observed elsewhere (a neighbour entry filled by the reply to the very
// ARP request being looked for), so checks wait instead of looking once.
func waitFor(ctx context.Context, n *notifier, found func() (time.Time, bool), what string) (time.Time, error) {
	for {
		ch := n.wait()
		if at, ok := found(); ok {
			return at, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s never seen: %w", what, ctx.Err())
		}
	}
}

// WatchAddrs starts recording the addresses added on host.
func (l *Lab) WatchAddrs(host string) *AddrWatch {
	l.t.Helper()
	w := &AddrWatch{added: make(map[netip.Addr][]time.Time)}
	ch := make(chan netlink.AddrUpdate, 1024)
	done := make(chan struct{})
	ns := l.Hosts[host].NS
	require.NoError(l.t, netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &ns}))
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for u := range ch {
			ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok || !u.NewAddr {
				continue
			}
			w.mu.Lock()
			if len(w.added[ip.Unmap()]) < 10000 {
				w.added[ip.Unmap()] = append(w.added[ip.Unmap()], time.Now())
			}
			w.mu.Unlock()
			w.note.notify()
		}
	}()
	l.t.Cleanup(func() {
		close(done)
		<-finished
	})
	return w
}

// AddedAfter returns the first time ip was added at or after t.
func (w *AddrWatch) AddedAfter(ip netip.Addr, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.added[ip] {
		if !at.Before(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// WaitAddedAfter waits until ip has been added at or after t and returns
// when.
func (w *AddrWatch) WaitAddedAfter(ctx context.Context, ip netip.Addr, t time.Time) (time.Time, error) {
	return waitFor(ctx, &w.note, func() (time.Time, bool) { return w.AddedAfter(ip, t) }, "address "+ip.String())
}

// ARPWatch records the ARP packets a host receives on eth0, timestamped
// on arrival.
type ARPWatch struct {
	mu   sync.Mutex
	seen []arpSeen
	note notifier
}

type arpSeen struct {
	at     time.Time
	sender netip.Addr
	mac    string
}

// WatchARP starts recording the ARP packets host receives on eth0.
func (l *Lab) WatchARP(host string) *ARPWatch {
	l.t.Helper()
	w := &ARPWatch{}
	var c *packet.Conn
	require.NoError(l.t, l.In(host, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		return err
	}))
	finished := make(chan struct{})
	var closing atomic.Bool
	go func() {
		defer close(finished)
		buf := make([]byte, 1514)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				if closing.Load() || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			at := time.Now()
			// Ethernet header (14 bytes), then ARP for IPv4 over Ethernet:
			// sender hardware address at 8, sender protocol address at 14.
			f := buf[:n]
			if len(f) < 14+28 {
				continue
			}
			a := f[14:]
			if a[4] != 6 || a[5] != 4 {
				continue
			}
			w.mu.Lock()
			if len(w.seen) < 100000 {
				w.seen = append(w.seen, arpSeen{at: at, sender: netip.AddrFrom4([4]byte(a[14:18])), mac: net.HardwareAddr(a[8:14]).String()})
			}
			w.mu.Unlock()
			w.note.notify()
		}
	}()
	l.t.Cleanup(func() {
		closing.Store(true)
		c.Close()
		<-finished
	})
	return w
}

// FromAfter returns when the first ARP packet with sender ip and sender
// hardware address mac arrived at or after t.
func (w *ARPWatch) FromAfter(ip netip.Addr, mac net.HardwareAddr, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.seen {
		if !s.at.Before(t) && s.sender == ip && s.mac == mac.String() {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// WaitFromAfter waits until an ARP packet with sender ip and sender
// hardware address mac has arrived at or after t and returns when.
func (w *ARPWatch) WaitFromAfter(ctx context.Context, ip netip.Addr, mac net.HardwareAddr, t time.Time) (time.Time, error) {
	return waitFor(ctx, &w.note, func() (time.Time, bool) { return w.FromAfter(ip, mac, t) }, "ARP from "+ip.String()+" "+mac.String())
}
