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
// # Failure detection
//
// A hard failover lasts as long as the bus takes to declare the owner
// failed and install a view without it; the Manager's share (States of
// the new view, Plan, address, first announcement) is 1–5 ms. The bus
// should therefore be tuned for failover: DefaultDetector is the profile
// the package is measured with (bus/cluster's Config fields ProbeInterval
// 150 ms, ProbeTimeout 75 ms, SuspicionMult 2, GossipInterval 30 ms,
// SyncTimeout 150 ms), and examples/wackamole uses it unless -profile lan
// or wan or single settings (-probe-interval, -suspicion-mult, ...) say
// otherwise.
//
// Phases of a hard failover (the owner's switch port goes down, 3
// daemons, the owner also coordinating the bus; medians of 20 trials,
// from the fault; bus/cluster at eeef1d6):
//
//	                                              vip profile   LAN profile
//	a survivor's probe of the owner fails         309 ms        278 ms
//	a survivor's bus sees the owner down          620 ms        884 ms
//	the new owner's Manager has the new view      698 ms        1063 ms
//	plan, address up, ARP at the client           +1–2 ms       +1–2 ms
//	client's neighbour entry on the new owner     699 ms        1066 ms
//	  p95 / max                                   1209 / 1209   2230 / 2230
//
// Where the time and its spread come from, trial by trial:
//
//   - Probe scheduling. Each member probes one other member per
//     ProbeInterval, in an order shuffled every round, and a probe of a
//     dead member fails only at the end of its interval: the first failed
//     probe came 167–671 ms after the fault with the vip profile (1.1–4.5
//     intervals) and 232–605 ms with the LAN profile. This is the spread
//     left with the vip profile.
//   - The suspicion timer did not vary: dead − suspect was 300–310 ms in
//     all 20 vip trials (SuspicionMult 2 expects no confirmation, so the
//     timeout is 2 × 150 ms) and 600–612 ms in all 20 LAN trials
//     (SuspicionMult 3 expects one confirmation from the other survivor;
//     it always came within the 600 ms minimum, without which memberlist
//     stretches the timeout up to 3.6 s). With only 2 members neither
//     profile expects a confirmation.
//   - Coordinator hand-over, the tail. When the failed owner coordinated
//     the bus, the next coordinator collects the survivors' states first.
//     A survivor that declares the failure before the next coordinator
//     does sends its state to a member that does not coordinate yet,
//     which drops it, and the new coordinator then waits its whole
//     SyncTimeout: 6 of 20 LAN trials took 1.1 s longer (1.9–2.2 s), 7 of
//     20 vip trials 150–230 ms longer. The short SyncTimeout of
//     DefaultDetector bounds that wait.
//
// A shorter suspicion comes at a price: a member silent for about three
// probe intervals (0.45 s) is declared failed and its interfaces move;
// when it rejoins, its older claim wins them back. The soak below counts
// these false failovers under load. SuspicionMult 3 with the same
// intervals (450 ms to refute, and a second member must confirm) measured
// p50 0.85 s, p95 1.10 s (20 trials), over the p50 goal of 0.8 s.
//
// After a partition heals, bus/cluster (at eeef1d6) lets both sides'
// coordinators install views for 1–3 s, alternately with and without the
// other side's members, and the Manager follows every view: addresses may
// move back and forth meanwhile (about 16 acquisitions and releases per
// heal on one member in the benchmark) before one owner remains.
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
//	go test ./examples/wackamole -run '^$' -bench Failover -benchtime 20x -v
//	  hard failover, 3 daemons, profiles vip and LAN in the same run, 20
//	  trials each, every trial broken into phases (see Failure detection):
//	  bus/cluster at b91f5ea:  vip p50 0.64 s, p95 0.99 s; LAN p50 1.08 s, p95 2.19 s
//	  bus/cluster at eeef1d6:  vip p50 0.70 s, p95 1.21 s; LAN p50 1.07 s, p95 2.23 s
//	  bus/cluster at 8917c90:  vip p50 0.66 s, p95 0.88 s; LAN p50 1.07 s, p95 2.14 s
//	    (first failed probe 164–423 / 232–521 ms, suspicion 300–305 /
//	    600–602 ms, coordinator waits in 7 / 7 of 20 trials)
//	  (WACKAMOLE_BENCH_PROFILES='vip;lan;vip -suspicion-mult 3' adds
//	  profiles: the last measured p50 0.85 s, p95 1.10 s)
//	WACKAMOLE_BENCH_PROFILES=vip WACKAMOLE_BENCH_PREFER=b go test ./examples/wackamole -run '^$' -bench Failover -benchtime 20x -v
//	  the owner does not coordinate the bus (no hand-over), at 21b8c50:
//	  vip p50 0.59 s, p95 0.90 s, max 0.90 s; view 0–14 ms after the
//	  bus saw the owner down, neighbour entry 1–6 ms after the view
//	vip/scripts/keepalived-baseline.sh 20   (2 hosts, same lab, 20 trials each,
//	  one run; bus/cluster at 053f1ac)
//	  keepalived advert_int 1:   p50 2.59 s, p95 3.59 s
//	  keepalived advert_int 0.1: p50 0.41 s, p95 0.67 s, max 1.07 s
//	  wackamole -profile vip:    p50 0.69 s, p95 0.84 s, max 0.91 s
//	  wackamole -profile lan:    p50 1.37 s, p95 1.82 s
//	WACKAMOLE_SOAK=10m WACKAMOLE_SOAK_PROFILES='vip;lan' go test ./examples/wackamole -run Soak -v
//	  false failovers: 3 daemons per profile, side by side, 2 spinning
//	  goroutines and UDP floods on a 2-core machine already at load 15:
//	  3 labs, 10 min, 2 spinning:  vip 3 suspicions, none declared failed;
//	                               LAN 0; vip -suspicion-mult 3: 1, none
//	  2 labs, 8 min, 4 spinning:   vip 55 suspicions, 3–4 members declared
//	                               failed, 3 interface moves; LAN 26
//	                               suspicions, none declared failed
//	  1 lab (vip), 10 min, 2 spinning, an earlier run:
//	                               62 suspicions, 6 declared failed, 7 moves
//	  Each false failure was a starved member refuting its suspicion just
//	  after the 300 ms timeout: the vip profile trades them for speed.
package vip
