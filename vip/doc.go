// Package vip keeps a set of virtual IP addresses served by whichever
// members of a bus group are alive, after wackamole: no HA appliance, no
// single point of failure, and no Agreed order needed, because every member
// computes the same allocation from the view and the members'
// announcements.
//
// # Usage
//
//	g, _ := b.Join(ctx, "wackamole")              // any bus.Bus
//	backend, _ := vip.NewNetlink(vifs, vip.NetlinkConfig{Lifetime: 3 * time.Second})
//	m, _ := vip.New(g, vifs, backend, vip.Config{Prefer: []string{"www"}})
//	...
//	_ = m.Shutdown(ctx) // hand interfaces over, then leave
//	_ = backend.Close()
//
// A VIF (virtual interface) is a group of addresses, IPv4 or IPv6, on one
// or more devices, that always move together. Every member configures the
// same VIFs; ParseConf reads them, with the other settings, from a
// wackamole.conf so that existing installations can migrate, and
// examples/wackamole is the daemon.
//
// # Allocation
//
// On every view, each member sends at FIFO level a State tagged with the
// view id: its VIF digest, whether it is mature and draining, its
// preferences and what it holds, with the age of each claim. Once a member
// has the States of every member of the view, it runs Plan, a pure
// function of the view and those States, so all members agree without
// further messages:
//
//   - a VIF held by an eligible member stays with it; several claimants
//     (after a partition heals) are resolved by the oldest claim, then
//     Prefer, then a hash of (VIF, member), whatever the message order; the
//     losers release and the winner announces again;
//   - the VIFs of failed members go to the members that prefer them, else
//     to the least loaded: only a failed member's interfaces move, and a
//     balanced assignment stays balanced (max − min ≤ 1).
//
// Eligible members share the most common VIF digest (the same
// configuration), are mature (Config.Mature after their start) and are not
// draining. Within a view only the leader (the oldest member) changes the
// assignment, with Move messages that every member applies in the leader's
// FIFO order: Repair when a member matures or drains, and Rebalance every
// Balance.Interval, at most Balance.AcquisitionsPerRound moves per round,
// each one needed (the minimum number of moves). A member acquires what
// the assignment gives it, and releases what it gives another member only
// once that member announced it holds it: on Shutdown the receiver
// acquires, then the giver releases.
//
// A view whose States are not all in after 2 s is logged with the missing
// members, and this member sends its initial State again; a member that
// receives a repeated initial State answers with its own, so a State lost
// by the bus is recovered. Until every State is in, nothing moves.
//
// # Linux
//
// NewNetlink adds each address as a /32 or /128 (removing one never takes
// another with it; IPv6 without duplicate address detection), announces
// IPv4 addresses with gratuitous ARP in both forms Linux accepts as an
// override within its 1 s locktime (a request with sender IP = target IP,
// a reply with target MAC = sender MAC) and IPv6 addresses with an
// unsolicited neighbour advertisement with the Override flag; the Manager
// repeats each announcement (AnnounceCount, AnnounceInterval). The backend
// adds back addresses removed behind its back (netlink address events),
// removes leftovers of a crashed run at start, and with
// NetlinkConfig.Lifetime keeps addresses alive by refreshing their valid
// lifetime, so that a killed daemon's addresses expire instead of staying
// as a second owner. Notify targets and the local neighbour table get
// direct announcements (ARP requests from the virtual address), throttled;
// with Config.ARPCache the members also share their neighbour caches, so
// the new owner refreshes the hosts that talked to the failed one
// (wackamole's Arp-Cache and Notify arp-cache). On other systems
// NewNetlink returns an error wrapping errors.ErrUnsupported; DryRun only
// logs.
//
// # Concurrency
//
// Manager methods are safe for concurrent use. One goroutine owns the
// protocol state and calls the Backend and Config.OnEvent (which must not
// block); one reads the group; one sends, keeping only the latest State
// of the current view, so memory stays bounded and a slow peer never stops
// this member from reading. Close waits for all three.
//
// # Testing
//
// The planner's properties (one owner, coverage, balance, minimal moves,
// order independence, heal) are tested without root; the Manager runs on
// bus/inproc under testing/synctest with crashes, partitions and heals and
// a fake Backend. As root, tests build network namespaces (package netlab:
// veth ports on a bridge, 198.18.0.0/15 and 2001:2::/48 only) and watch a
// client's neighbour table through netlink events: cold start, failover,
// graceful drain, rebalance, Prefer, an address removed behind our back,
// leftovers, lifetime expiry, IPv6. examples/wackamole runs real daemons
// over bus/cluster in namespaces (hard failover, heal, SIGKILL). They skip
// without root and fail instead when PEERSCALE_REQUIRE_ROOT_TESTS=1.
//
// # Performance
//
// Measured on a shared 2-core machine; failover is timed from the fault to
// the netlink event that shows the client's neighbour entry on the new
// owner.
//
//	go test ./vip -run '^$' -bench 'Decision|Plan' -benchtime 300x -count 3
//	  decision after detection (view → Acquire; in-process bus, 3 members,
//	  8 VIFs): p50 0.19–0.22 ms, p99 0.5–1.4 ms
//	  Plan: 3 members/8 VIFs 3 µs, 8/64 0.25 ms, 32/256 2.6 ms
//	go test ./vip -run Netlink -v   (namespaces, in-process bus)
//	  failover after detection, IPv4 and IPv6: 13–30 ms
//	go test ./examples/wackamole -run Graceful -v
//	  graceful hand-over between daemons over bus/cluster: 1.5 ms
//	go test ./examples/wackamole -run '^$' -bench Failover -benchtime 20x
//	  hard failover, 3 daemons over bus/cluster's LAN profile, 20 trials:
//	  p50 1.10 s, p95 2.30 s (0.84–1.22 s, or about 2 s when the bus's
//	  failure detection and coordinator hand-over take longer; the vip
//	  share is a few ms)
//	vip/scripts/keepalived-baseline.sh 20   (2 hosts, same lab, 20 trials)
//	  keepalived advert_int 1:   p50 2.63 s, p95 3.70 s
//	  keepalived advert_int 0.1: p50 0.42 s, p95 0.64 s
//	  wackamole, LAN profile:    p50 1.37 s, p95 1.79 s
package vip
