//go:build linux

package vip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Netlink is the Linux Backend: it adds each address as a /32 or /128
// with netlink, announces IPv4 addresses with gratuitous ARP in both the
// request and the reply form and IPv6 addresses with unsolicited
// neighbour advertisements (Override set), adds back addresses removed
// behind its back, and optionally keeps them alive with a lifetime.
//
// NewNetlink binds every socket to the network namespace of the calling
// thread. Methods are safe for concurrent use.
type Netlink struct {
	cfg  NetlinkConfig
	log  *slog.Logger
	h    *netlink.Handle
	devs map[string]*device
	icmp *icmp.PacketConn // nil without IPv6 addresses
	v6   *ipv6.PacketConn

	cancel context.CancelFunc
	wg     sync.WaitGroup
	notify chan notifyJob
	once   sync.Once

	mu    sync.Mutex
	held  map[netip.Addr]heldAddr
	stats NetlinkStats
}

type device struct {
	name  string
	index int
	mac   net.HardwareAddr
	arp   *packet.Conn // nil without IPv4 addresses
}

type heldAddr struct {
	dev *device
}

type notifyJob struct {
	dev      *device
	ip       netip.Addr
	hosts    []netip.Addr
	throttle int
}

// NewNetlink opens the Linux backend for vifs: it resolves their devices,
// opens the sockets it needs, removes addresses of vifs left on the
// devices by an earlier run, and starts watching for addresses removed
// behind its back. Close releases it.
func NewNetlink(vifs []VIF, cfg NetlinkConfig) (*Netlink, error) {
	if err := ValidateVIFs(vifs); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, &OpError{Op: "open", Err: err}
	}
	n := &Netlink{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "vip", "backend", "netlink"),
		h:      h,
		devs:   make(map[string]*device),
		held:   make(map[netip.Addr]heldAddr),
		notify: make(chan notifyJob, 64),
	}
	fail := func(err error) (*Netlink, error) {
		n.closeSockets()
		return nil, err
	}
	hasV6 := false
	for _, v := range vifs {
		for _, a := range v.Addrs {
			d, err := n.device(a.Dev)
			if err != nil {
				return fail(err)
			}
			if a.IP.Is4() && d.arp == nil {
				c, err := packet.Listen(&net.Interface{Index: d.index, Name: d.name, HardwareAddr: d.mac}, packet.Raw, int(ethernet.EtherTypeARP), nil)
				if err != nil {
					return fail(&OpError{Op: "open", Dev: d.name, Err: err})
				}
				d.arp = c
			}
			hasV6 = hasV6 || a.IP.Is6()
		}
	}
	if hasV6 {
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return fail(&OpError{Op: "open", Err: err})
		}
		n.icmp = c
		n.v6 = c.IPv6PacketConn()
		if err := n.v6.SetMulticastHopLimit(255); err != nil {
			return fail(&OpError{Op: "open", Err: err})
		}
		// Receive nothing: the socket only sends.
		var f ipv6.ICMPFilter
		f.SetAll(true)
		_ = n.v6.SetICMPFilter(&f)
	}
	// Leftovers of an earlier run.
	for _, v := range vifs {
		for _, a := range v.Addrs {
			if err := n.cleanup(n.devs[a.Dev], a.IP); err != nil {
				return fail(err)
			}
		}
	}
	updates := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	err = netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) { n.log.Debug("address subscription", "err", err) },
	})
	if err != nil {
		return fail(&OpError{Op: "watch", Err: err})
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() {
		<-ctx.Done()
		close(done)
	})
	n.wg.Go(func() { n.watch(updates) })
	n.wg.Go(func() { n.notifier(ctx) })
	if cfg.Lifetime > 0 {
		n.wg.Go(func() { n.refresher(ctx) })
	}
	return n, nil
}

func (n *Netlink) device(name string) (*device, error) {
	if d, ok := n.devs[name]; ok {
		return d, nil
	}
	l, err := n.h.LinkByName(name)
	if err != nil {
		return nil, &OpError{Op: "open", Dev: name, Err: err}
	}
	d := &device{name: name, index: l.Attrs().Index, mac: l.Attrs().HardwareAddr}
	n.devs[name] = d
	return d, nil
}

func (n *Netlink) lifetime() int {
	if n.cfg.Lifetime <= 0 {
		return 0
	}
	s := int((n.cfg.Lifetime + time.Second - 1) / time.Second)
	return max(s, 2)
}

func (n *Netlink) nlAddr(d *device, ip netip.Addr) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(ip.BitLen(), ip.BitLen())}}
	if ip.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if lt := n.lifetime(); lt > 0 {
		a.ValidLft, a.PreferedLft = lt, lt
	}
	return a
}

func (n *Netlink) link(d *device) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: d.index, Name: d.name}}
}

func (n *Netlink) cleanup(d *device, ip netip.Addr) error {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := n.h.AddrList(n.link(d), family)
	if err != nil {
		return &OpError{Op: "cleanup", Dev: d.name, Addr: ip, Err: err}
	}
	for _, a := range addrs {
		got, ok := netip.AddrFromSlice(a.IP)
		if !ok || got.Unmap() != ip {
			continue
		}
		if err := n.h.AddrDel(n.link(d), &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return &OpError{Op: "cleanup", Dev: d.name, Addr: ip, Err: err}
		}
		n.count(func(s *NetlinkStats) { s.Cleaned++ })
		n.log.Info("removed leftover address", "dev", d.name, "addr", ip)
	}
	return nil
}

func (n *Netlink) count(f func(*NetlinkStats)) {
	n.mu.Lock()
	f(&n.stats)
	n.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (n *Netlink) Stats() NetlinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Acquire adds the addresses of v and announces them once.
func (n *Netlink) Acquire(ctx context.Context, v VIF) error {
	var errs []error
	for _, a := range v.Addrs {
		d := n.devs[a.Dev]
		if d == nil {
			errs = append(errs, &OpError{Op: "acquire", Dev: a.Dev, Addr: a.IP, Err: errors.New("device not configured")})
			continue
		}
		n.mu.Lock()
		n.held[a.IP] = heldAddr{dev: d}
		n.mu.Unlock()
		if err := n.h.AddrReplace(n.link(d), n.nlAddr(d, a.IP)); err != nil {
			n.count(func(s *NetlinkStats) { s.Errors++ })
			errs = append(errs, &OpError{Op: "acquire", Dev: d.name, Addr: a.IP, Err: err})
			continue
		}
		n.count(func(s *NetlinkStats) { s.Added++ })
	}
	if err := errors.Join(errs...); err != nil {
		_ = n.Release(ctx, v)
		return err
	}
	return n.Announce(ctx, v)
}

// Release removes the addresses of v.
func (n *Netlink) Release(_ context.Context, v VIF) error {
	var errs []error
	for _, a := range v.Addrs {
		d := n.devs[a.Dev]
		if d == nil {
			continue
		}
		n.mu.Lock()
		delete(n.held, a.IP)
		n.mu.Unlock()
		err := n.h.AddrDel(n.link(d), n.nlAddr(d, a.IP))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			n.count(func(s *NetlinkStats) { s.Errors++ })
			errs = append(errs, &OpError{Op: "release", Dev: d.name, Addr: a.IP, Err: err})
			continue
		}
		n.count(func(s *NetlinkStats) { s.Removed++ })
	}
	return errors.Join(errs...)
}

// Announce sends, for each IPv4 address, a gratuitous ARP request and a
// gratuitous ARP reply (target hardware address = sender's), and for each
// IPv6 address an unsolicited neighbour advertisement with Override set,
// to all nodes; then it queues the direct announcements of Notify.
func (n *Netlink) Announce(_ context.Context, v VIF) error {
	var errs []error
	for _, a := range v.Addrs {
		d := n.devs[a.Dev]
		if d == nil {
			continue
		}
		var err error
		if a.IP.Is4() {
			err = n.garp(d, a.IP)
		} else {
			err = n.unsolicitedNA(d, a.IP)
		}
		if err != nil {
			n.count(func(s *NetlinkStats) { s.Errors++ })
			errs = append(errs, &OpError{Op: "announce", Dev: d.name, Addr: a.IP, Err: err})
			continue
		}
		if a.IP.Is4() {
			n.queueNotify(d, a.IP)
		}
	}
	return errors.Join(errs...)
}

func (n *Netlink) sendARP(d *device, op arp.Operation, src netip.Addr, dstHW net.HardwareAddr, dst netip.Addr) error {
	p, err := arp.NewPacket(op, d.mac, src, dstHW, dst)
	if err != nil {
		return err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: d.mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	_, err = d.arp.WriteTo(fb, &packet.Addr{HardwareAddr: ethernet.Broadcast})
	return err
}

func (n *Netlink) garp(d *device, ip netip.Addr) error {
	if d.arp == nil {
		return errors.New("no ARP socket")
	}
	// Request form: sender IP = target IP.
	if err := n.sendARP(d, arp.OperationRequest, ip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, ip); err != nil {
		return err
	}
	// Reply form: target hardware address = sender hardware address.
	if err := n.sendARP(d, arp.OperationReply, ip, d.mac, ip); err != nil {
		return err
	}
	n.count(func(s *NetlinkStats) { s.ARPs += 2 })
	return nil
}

var allNodes = net.ParseIP("ff02::1")

func (n *Netlink) unsolicitedNA(d *device, ip netip.Addr) error {
	if n.v6 == nil {
		return errors.New("no ICMPv6 socket")
	}
	// Type 136, code 0, checksum (kernel), flags: Override; target;
	// option 2 (target link-layer address).
	msg := make([]byte, 24, 32)
	msg[0] = 136
	msg[4] = 0x20
	t := ip.As16()
	copy(msg[8:24], t[:])
	if len(d.mac) == 6 {
		msg = append(msg, 2, 1)
		msg = append(msg, d.mac...)
	}
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: d.index, Src: ip.AsSlice()}
	if _, err := n.v6.WriteTo(msg, cm, &net.IPAddr{IP: allNodes, Zone: strconv.Itoa(d.index)}); err != nil {
		return err
	}
	n.count(func(s *NetlinkStats) { s.NAs++ })
	return nil
}

// Neighbors lists the IPv4 hosts in the neighbour tables of the devices
// of the VIFs.
func (n *Netlink) Neighbors(context.Context) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, d := range n.devs {
		neigh, err := n.h.NeighList(d.index, netlink.FAMILY_V4)
		if err != nil {
			return nil, &OpError{Op: "neighbors", Dev: d.name, Err: err}
		}
		for _, e := range neigh {
			if a, ok := netip.AddrFromSlice(e.IP); ok && e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0 {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}

// NotifyHosts queues direct announcements of the IPv4 addresses of v to
// hosts (throttled like Notify).
func (n *Netlink) NotifyHosts(_ context.Context, v VIF, hosts []netip.Addr) error {
	for _, a := range v.Addrs {
		d := n.devs[a.Dev]
		if d == nil || !a.IP.Is4() || d.arp == nil {
			continue
		}
		var v4 []netip.Addr
		for _, h := range hosts {
			if h.Is4() && len(v4) < maxNotifyHosts {
				v4 = append(v4, h)
			}
		}
		if len(v4) == 0 {
			continue
		}
		select {
		case n.notify <- notifyJob{dev: d, ip: a.IP, hosts: v4}:
		default:
			n.log.Warn("notify queue full: skipping direct announcements", "addr", a.IP)
		}
	}
	return nil
}

func (n *Netlink) queueNotify(d *device, ip netip.Addr) {
	var hosts []netip.Addr
	throttle := 0
	for _, t := range n.cfg.Notify {
		if t.Dev != d.name || !t.Prefix.Addr().Is4() {
			continue
		}
		hosts = appendHosts(hosts, t.Prefix)
		if t.Throttle > 0 && (throttle == 0 || t.Throttle < throttle) {
			throttle = t.Throttle
		}
	}
	if n.cfg.NotifyNeighbors {
		neigh, err := n.h.NeighList(d.index, netlink.FAMILY_V4)
		if err == nil {
			for _, e := range neigh {
				if a, ok := netip.AddrFromSlice(e.IP); ok && e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE) != 0 && len(hosts) < maxNotifyHosts {
					hosts = append(hosts, a.Unmap())
				}
			}
		}
	}
	if len(hosts) == 0 {
		return
	}
	select {
	case n.notify <- notifyJob{dev: d, ip: ip, hosts: hosts, throttle: throttle}:
	default:
		n.log.Warn("notify queue full: skipping direct announcements", "addr", ip)
	}
}

// appendHosts appends the host addresses of p (all of them for /31 and
// /32), up to maxNotifyHosts in total.
func appendHosts(hosts []netip.Addr, p netip.Prefix) []netip.Addr {
	p = p.Masked()
	a := p.Addr()
	if p.Bits() < 31 {
		a = a.Next() // skip the network address
	}
	for ; a.IsValid() && p.Contains(a) && len(hosts) < maxNotifyHosts; a = a.Next() {
		if p.Bits() < 31 && !p.Contains(a.Next()) {
			break // the broadcast address
		}
		hosts = append(hosts, a)
	}
	return hosts
}

func (n *Netlink) notifier(ctx context.Context) {
	for {
		var job notifyJob
		select {
		case <-ctx.Done():
			return
		case job = <-n.notify:
		}
		var tick *time.Ticker
		if job.throttle > 0 {
			tick = time.NewTicker(time.Second / time.Duration(job.throttle))
		}
		for _, h := range job.hosts {
			if h == job.ip {
				continue
			}
			if tick != nil {
				select {
				case <-ctx.Done():
					tick.Stop()
					return
				case <-tick.C:
				}
			}
			if err := n.sendARP(job.dev, arp.OperationRequest, job.ip, ethernet.Broadcast, h); err != nil {
				n.count(func(s *NetlinkStats) { s.Errors++ })
				n.log.Debug("notify", "host", h, "err", err)
				continue
			}
			n.count(func(s *NetlinkStats) { s.Notified++ })
		}
		if tick != nil {
			tick.Stop()
		}
	}
}

// watch adds back held addresses that disappear.
func (n *Netlink) watch(updates <-chan netlink.AddrUpdate) {
	for u := range updates {
		if u.NewAddr {
			continue
		}
		ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		n.mu.Lock()
		h, held := n.held[ip]
		n.mu.Unlock()
		if !held || h.dev.index != u.LinkIndex {
			continue
		}
		n.log.Warn("address removed behind our back: adding it again", "dev", h.dev.name, "addr", ip)
		err := n.h.AddrReplace(n.link(h.dev), n.nlAddr(h.dev, ip))
		if err == nil {
			if ip.Is4() {
				err = n.garp(h.dev, ip)
			} else {
				err = n.unsolicitedNA(h.dev, ip)
			}
		}
		if err != nil {
			n.count(func(s *NetlinkStats) { s.Errors++ })
			n.log.Error("adding address again", "dev", h.dev.name, "addr", ip, "err", err)
			continue
		}
		n.count(func(s *NetlinkStats) { s.Readded++ })
	}
}

func (n *Netlink) refresher(ctx context.Context) {
	t := time.NewTicker(time.Duration(n.lifetime()) * time.Second / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		held := make(map[netip.Addr]heldAddr, len(n.held))
		for ip, h := range n.held {
			held[ip] = h
		}
		n.mu.Unlock()
		for ip, h := range held {
			if err := n.h.AddrReplace(n.link(h.dev), n.nlAddr(h.dev, ip)); err != nil {
				n.count(func(s *NetlinkStats) { s.Errors++ })
				n.log.Error("refreshing address lifetime", "dev", h.dev.name, "addr", ip, "err", err)
				continue
			}
			n.count(func(s *NetlinkStats) { s.Refreshed++ })
		}
	}
}

func (n *Netlink) closeSockets() {
	for _, d := range n.devs {
		if d.arp != nil {
			d.arp.Close()
		}
	}
	if n.icmp != nil {
		n.icmp.Close()
	}
	n.h.Close()
}

// Close stops watching and closes the sockets. It does not remove the
// addresses held (the Manager releases them first); with a Lifetime they
// expire on their own. Close is idempotent.
func (n *Netlink) Close() error {
	n.once.Do(func() {
		n.cancel()
		n.wg.Wait()
		n.closeSockets()
	})
	return nil
}
