package vip

import (
	"log/slog"
	"time"
)

// NetlinkConfig configures the Linux backend. The zero value is valid.
type NetlinkConfig struct {
	// Lifetime, if positive, adds addresses with this valid lifetime
	// (rounded up to whole seconds, at least 2 s) and refreshes them three
	// times per lifetime: if the process dies without releasing them, the
	// kernel removes them (a dead-man switch). Zero means permanent
	// addresses.
	Lifetime time.Duration
	// Notify lists hosts and prefixes to which each announcement of an
	// IPv4 address is also sent directly (an ARP request from the virtual
	// address to each host), refreshing their caches.
	Notify []NotifyTarget
	// NotifyNeighbors also sends those direct announcements to every host
	// in this machine's neighbour table on the device (wackamole's
	// arp-cache).
	NotifyNeighbors bool
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// NetlinkStats is a snapshot of the Linux backend's counters.
type NetlinkStats struct {
	Added     uint64 // addresses added
	Removed   uint64 // addresses removed
	Readded   uint64 // addresses removed behind our back and added again
	Cleaned   uint64 // leftover addresses removed at start
	Refreshed uint64 // lifetime refreshes
	ARPs      uint64 // gratuitous ARP frames sent (both forms count)
	NAs       uint64 // unsolicited neighbour advertisements sent
	Notified  uint64 // direct announcements to Notify hosts and neighbours
	Errors    uint64
}

// maxNotifyHosts bounds the hosts one announcement notifies directly.
const maxNotifyHosts = 4096
