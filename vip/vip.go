package vip

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Errors returned by the package. Callers test them with errors.Is.
var (
	// ErrBadConfig is wrapped by every validation error of a Config, a VIF
	// list or a wackamole.conf file.
	ErrBadConfig = errors.New("vip: invalid configuration")
	// ErrBadMessage is wrapped by the errors of decoding a peer's message.
	ErrBadMessage = errors.New("vip: malformed message")
)

// Address is one address of a virtual interface, on one network device.
type Address struct {
	// Dev is the name of the network device that carries the address.
	Dev string
	// IP is the IPv4 or IPv6 address. It is added as a host address
	// (/32 or /128), so removing it never takes another address with it.
	IP netip.Addr
}

// String returns "dev:ip", the form wackamole.conf uses.
func (a Address) String() string { return a.Dev + ":" + a.IP.String() }

// ParseAddress parses "dev:ip" or "dev:ip/bits". A prefix length is
// accepted for wackamole.conf compatibility and ignored: addresses are
// always added as host addresses.
func ParseAddress(s string) (Address, error) {
	dev, ip, ok := strings.Cut(s, ":")
	if !ok || dev == "" || ip == "" || len(dev) > 15 || strings.ContainsAny(dev, "/ \t\n{}=#") {
		return Address{}, fmt.Errorf("%w: address %q: want dev:ip", ErrBadConfig, s)
	}
	var a netip.Addr
	if strings.Contains(ip, "/") {
		p, err := netip.ParsePrefix(ip)
		if err != nil {
			return Address{}, fmt.Errorf("%w: address %q: %v", ErrBadConfig, s, err)
		}
		a = p.Addr()
	} else {
		var err error
		if a, err = netip.ParseAddr(ip); err != nil {
			return Address{}, fmt.Errorf("%w: address %q: %v", ErrBadConfig, s, err)
		}
	}
	if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		return Address{}, fmt.Errorf("%w: address %q: not a unicast address", ErrBadConfig, s)
	}
	return Address{Dev: dev, IP: a.Unmap()}, nil
}

// VIF is a virtual interface: a group of addresses that always move
// together from member to member.
type VIF struct {
	// Name identifies the virtual interface among the members; every
	// member must configure the same VIFs under the same names. Empty
	// means the first address in "dev:ip" form.
	Name string
	// Addrs are the addresses moved together. At least one.
	Addrs []Address
}

// normalize fills in the default name.
func (v VIF) normalize() VIF {
	if v.Name == "" && len(v.Addrs) > 0 {
		v.Name = v.Addrs[0].String()
	}
	v.Addrs = slices.Clone(v.Addrs)
	return v
}

// ValidateVIFs checks a list of virtual interfaces: names and addresses
// unique, every VIF with at least one address, device names non-empty.
// The error wraps ErrBadConfig.
func ValidateVIFs(vifs []VIF) error {
	if len(vifs) == 0 {
		return fmt.Errorf("%w: no virtual interfaces", ErrBadConfig)
	}
	names := make(map[string]bool)
	addrs := make(map[netip.Addr]string)
	for _, v := range vifs {
		v = v.normalize()
		if len(v.Addrs) == 0 {
			return fmt.Errorf("%w: virtual interface %q has no address", ErrBadConfig, v.Name)
		}
		if len(v.Name) > maxName {
			return fmt.Errorf("%w: virtual interface name %q longer than %d bytes", ErrBadConfig, v.Name, maxName)
		}
		if names[v.Name] {
			return fmt.Errorf("%w: duplicate virtual interface %q", ErrBadConfig, v.Name)
		}
		names[v.Name] = true
		for _, a := range v.Addrs {
			if a.Dev == "" || !a.IP.IsValid() {
				return fmt.Errorf("%w: virtual interface %q: bad address %q", ErrBadConfig, v.Name, a)
			}
			if other, dup := addrs[a.IP]; dup {
				return fmt.Errorf("%w: address %s in both %q and %q", ErrBadConfig, a.IP, other, v.Name)
			}
			addrs[a.IP] = v.Name
		}
	}
	return nil
}

// Digest returns a short fingerprint of a VIF list, independent of its
// order. Members announce it: only members with the same digest share
// the virtual interfaces.
func Digest(vifs []VIF) string {
	lines := make([]string, 0, len(vifs))
	for _, v := range vifs {
		v = v.normalize()
		as := make([]string, len(v.Addrs))
		for i, a := range v.Addrs {
			as[i] = a.String()
		}
		slices.Sort(as)
		lines = append(lines, v.Name+"="+strings.Join(as, ","))
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:8])
}

func sortVIFs(vifs []VIF) []VIF {
	out := make([]VIF, len(vifs))
	for i, v := range vifs {
		out[i] = v.normalize()
	}
	slices.SortFunc(out, func(a, b VIF) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Backend is what the Manager needs from the operating system. The Linux
// backend (NewNetlink) adds addresses with netlink and announces them with
// gratuitous ARP and unsolicited neighbour advertisements; DryRun only logs.
//
// The Manager calls a Backend from one goroutine at a time.
type Backend interface {
	// Acquire makes the addresses of v local and announces them once.
	// Acquiring addresses already present is not an error.
	Acquire(ctx context.Context, v VIF) error
	// Announce tells the neighbours again that the addresses of v are
	// here.
	Announce(ctx context.Context, v VIF) error
	// Release removes the addresses of v. Releasing addresses that are
	// absent is not an error.
	Release(ctx context.Context, v VIF) error
}

// NeighborSharer is implemented by Backends that take part in the
// sharing of neighbour caches (Config.ARPCache): Neighbors lists the hosts
// in this machine's neighbour caches on the devices of the VIFs, and
// NotifyHosts announces the addresses of v directly to hosts.
type NeighborSharer interface {
	Neighbors(ctx context.Context) ([]netip.Addr, error)
	NotifyHosts(ctx context.Context, v VIF, hosts []netip.Addr) error
}

// maxNeighbors bounds the neighbours one member shares.
const maxNeighbors = 256

// OpError is the error of a Backend operation on one address.
type OpError struct {
	// Op is "acquire", "announce", "release", "watch" or "cleanup".
	Op string
	// Dev is the network device.
	Dev string
	// Addr is the address concerned, if any.
	Addr netip.Addr
	// Err is the underlying error.
	Err error
}

func (e *OpError) Error() string {
	s := "vip: " + e.Op
	if e.Dev != "" {
		s += " " + e.Dev
	}
	if e.Addr.IsValid() {
		s += " " + e.Addr.String()
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// maxName bounds VIF names, so that announcements stay small.
const maxName = 200
