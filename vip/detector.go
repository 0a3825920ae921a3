package vip

import "time"

// Detector is the failure-detection profile of the bus a Manager runs on.
// The Manager itself has no timers that matter for failover: the time from
// a member's failure to its interfaces working elsewhere is the bus's
// failure detection and view change plus a few milliseconds, so the bus
// should be tuned for it. The fields carry the names of bus/cluster's
// Config fields; a main copies them over (examples/wackamole does).
type Detector struct {
	// ProbeInterval is how often each member probes another one
	// (memberlist's SWIM probe). A probe of a failed member fails after
	// one ProbeInterval.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before
	// indirect probes through other members and a TCP probe start.
	ProbeTimeout time.Duration
	// SuspicionMult sets how long a suspected member has to refute the
	// suspicion: SuspicionMult × ProbeInterval × max(1, log10(members)).
	// At 2, a single failed probe suffices (memberlist waits for
	// SuspicionMult − 2 independent confirmations and otherwise stretches
	// the timeout up to six times), so the time to declare a failure does
	// not depend on when the other members happen to probe.
	SuspicionMult int
	// GossipInterval is how often suspicions and failures are gossiped.
	GossipInterval time.Duration
	// SyncTimeout bounds how long a new coordinator of the bus waits for
	// the other members' state before it installs views.
	SyncTimeout time.Duration
}

// DefaultDetector returns the profile for members on one LAN that the
// package is measured with. A member whose link goes down is declared
// failed about 0.6 s later (0.47–0.98 s in the benchmark: waiting for the
// next probe of it, the failed probe, 300 ms of suspicion), and the
// client reaches its interfaces on another member at p50 0.7 s, p95
// 1.2 s after the fault (3 members, the package documentation has the
// phases).
//
// Its cost is sensitivity: a member that cannot answer for about three
// probe intervals (0.45 s: starved of CPU, a saturated link) is declared
// failed and its interfaces move until it rejoins. The package
// documentation gives the false failovers measured under load. On hosts
// that stall longer, start from bus/cluster's LAN profile (members
// declared failed in about 1 s).
func DefaultDetector() Detector {
	return Detector{
		ProbeInterval:  150 * time.Millisecond,
		ProbeTimeout:   75 * time.Millisecond,
		SuspicionMult:  2,
		GossipInterval: 30 * time.Millisecond,
		SyncTimeout:    150 * time.Millisecond,
	}
}
