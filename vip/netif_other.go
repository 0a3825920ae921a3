//go:build !linux

package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Netlink is the Linux backend; on other systems NewNetlink fails.
type Netlink struct{}

// NewNetlink returns an error wrapping errors.ErrUnsupported on systems
// other than Linux.
func NewNetlink(vifs []VIF, cfg NetlinkConfig) (*Netlink, error) {
	return nil, fmt.Errorf("vip: netlink backend: %w", errors.ErrUnsupported)
}

// Acquire is not supported.
func (*Netlink) Acquire(context.Context, VIF) error { return errors.ErrUnsupported }

// Announce is not supported.
func (*Netlink) Announce(context.Context, VIF) error { return errors.ErrUnsupported }

// Release is not supported.
func (*Netlink) Release(context.Context, VIF) error { return errors.ErrUnsupported }

// Stats returns zero.
func (*Netlink) Stats() NetlinkStats { return NetlinkStats{} }

// Close does nothing.
func (*Netlink) Close() error { return nil }

// Neighbors is not supported.
func (*Netlink) Neighbors(context.Context) ([]netip.Addr, error) { return nil, errors.ErrUnsupported }

// NotifyHosts is not supported.
func (*Netlink) NotifyHosts(context.Context, VIF, []netip.Addr) error { return errors.ErrUnsupported }
