package cluster

import (
	"sync/atomic"

	"github.com/peerscale/peerscale/bus"
)

// Stats is a snapshot of a Bus's state and counters.
type Stats struct {
	// Members counts the live members of the cluster, this one included.
	Members int
	// Coordinator is the member that installs views.
	Coordinator bus.MemberID
	// Groups counts the groups with a known view; Joined those this
	// member belongs to.
	Groups, Joined int
	// ViewsApplied counts views this member learned; ViewsInstalled those
	// it installed as coordinator.
	ViewsApplied, ViewsInstalled uint64
	// Levels holds per-level message counters, indexed by bus.Level.
	Levels [bus.Safe + 1]LevelStats
	// MembersDown counts the members this one saw go: declared dead by
	// memberlist (and not answering on their link) or saying goodbye.
	MembersDown uint64
	// DeathsDoubted counts deaths memberlist reported while the data link
	// to the member was connected, so that it was pinged before being
	// given up (most are wrong suspicions of a loaded member).
	DeathsDoubted uint64
	// Exclusions counts the times this member found a live member
	// unreachable on its data link (LinkTimeout) or not reading
	// (SlowTimeout).
	Exclusions uint64
	// Retransmitted counts frames sent again after a reconnect.
	Retransmitted uint64
	// BadFrames counts connections closed for malformed, oversized or
	// unauthenticated input.
	BadFrames uint64
	// Links describes the link to each known peer.
	Links []LinkStats
}

// LevelStats counts the messages of one level.
type LevelStats struct {
	// Sent counts Send calls accepted.
	Sent uint64
	// Delivered counts messages queued for a local Recv.
	Delivered uint64
	// Dropped counts messages dropped: Unreliable ones on a full queue,
	// any level for a group this member has left.
	Dropped uint64
}

// LinkStats describes the link to one peer.
type LinkStats struct {
	Peer bus.MemberID
	// Connected reports whether a connection is up.
	Connected bool
	// Unacked counts frames in the retransmit window.
	Unacked int
	// FramesOut and FramesIn count frames written and read.
	FramesOut, FramesIn uint64
	// Reconnects counts connections after the first.
	Reconnects uint64
}

type levelCounters struct{ sent, delivered, dropped atomic.Uint64 }

type counters struct {
	levels        [bus.Safe + 1]levelCounters
	views         atomic.Uint64
	installed     atomic.Uint64
	down          atomic.Uint64
	doubted       atomic.Uint64
	exclusions    atomic.Uint64
	retransmitted atomic.Uint64
	badFrames     atomic.Uint64
}

func (c *counters) level(l bus.Level) *levelCounters {
	if !l.Valid() {
		return &c.levels[0]
	}
	return &c.levels[l]
}

// Stats returns a snapshot of the Bus's state and counters.
func (b *Bus) Stats() Stats {
	var s Stats
	b.mu.RLock()
	s.Members = b.nalive
	s.Coordinator = b.coord
	s.Groups = len(b.known)
	s.Joined = len(b.joined)
	links := make([]*link, 0, len(b.links))
	for _, l := range b.links {
		links = append(links, l)
	}
	b.mu.RUnlock()
	s.ViewsApplied = b.stats.views.Load()
	s.ViewsInstalled = b.stats.installed.Load()
	s.MembersDown = b.stats.down.Load()
	s.DeathsDoubted = b.stats.doubted.Load()
	s.Exclusions = b.stats.exclusions.Load()
	s.Retransmitted = b.stats.retransmitted.Load()
	s.BadFrames = b.stats.badFrames.Load()
	for i := range s.Levels {
		c := &b.stats.levels[i]
		s.Levels[i] = LevelStats{Sent: c.sent.Load(), Delivered: c.delivered.Load(), Dropped: c.dropped.Load()}
	}
	for _, l := range links {
		l.mu.Lock()
		ls := LinkStats{Peer: l.peer, Connected: l.conn != nil, Unacked: len(l.win)}
		l.mu.Unlock()
		ls.FramesOut, ls.FramesIn, ls.Reconnects = l.framesOut.Load(), l.framesIn.Load(), l.reconnects.Load()
		s.Links = append(s.Links, ls)
	}
	return s
}
