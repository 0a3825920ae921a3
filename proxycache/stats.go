package proxycache

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Cache's counters, like sql.DBStats.
type Stats struct {
	Hits           uint64 // requests answered from a fresh entry
	Misses         uint64 // cacheable requests that found no usable entry
	StaleServed    uint64 // requests answered from a stale entry (max-stale, stale-while-revalidate, stale-if-error)
	Revalidations  uint64 // conditional requests sent to an origin
	NotModified    uint64 // revalidations answered 304
	Bypassed       uint64 // requests passed to the origin without the cache (unsafe methods, uncacheable answers)
	Fills          uint64 // origin fetches started to fill the cache
	Stored         uint64 // fills stored
	Coalesced      uint64 // requests that waited for another request's fill
	FillErrors     uint64 // fills that failed (origin unreachable, bad body, disk)
	Purges         uint64 // purges applied (local, invalidations and cluster messages)
	PurgedObjects  uint64 // entries removed by purges
	Evictions      uint64 // entries removed for MaxBytes or the inactive timeout
	BytesServed    uint64 // body bytes answered from the cache
	BytesFilled    uint64 // body bytes written to the store
	Refused        uint64 // requests for hosts that are not configured
	Objects        int    // entries in the store now
	StoreBytes     int64  // bytes in the store now
	PendingPurges  int    // cluster purges waiting for acknowledgements
	ClusterMembers int    // members in the purge group's current view (0 without a bus)

	CatchUps         uint64    // requests for purges missed while away (restart, partition)
	MissedPurges     uint64    // purge records received in answers to those requests and applied (each member answers with its own)
	CatchUpFailures  uint64    // catch-ups the answers could not vouch for entirely (then older entries are revalidated)
	RevalidateBefore time.Time // entries fetched before it are revalidated before use (zero: none)
}

type counters struct {
	hits, misses, stale, revalidations, notModified, bypassed atomic.Uint64
	fills, stored, coalesced, fillErrors                      atomic.Uint64
	purges, purgedObjects, evictions                          atomic.Uint64
	bytesServed, bytesFilled, refused                         atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := &c.st
	n, b := c.store.size()
	st := Stats{
		Hits: s.hits.Load(), Misses: s.misses.Load(), StaleServed: s.stale.Load(),
		Revalidations: s.revalidations.Load(), NotModified: s.notModified.Load(), Bypassed: s.bypassed.Load(),
		Fills: s.fills.Load(), Stored: s.stored.Load(), Coalesced: s.coalesced.Load(), FillErrors: s.fillErrors.Load(),
		Purges: s.purges.Load(), PurgedObjects: s.purgedObjects.Load(), Evictions: s.evictions.Load(),
		BytesServed: s.bytesServed.Load(), BytesFilled: s.bytesFilled.Load(), Refused: s.refused.Load(),
		Objects: n, StoreBytes: b,
	}
	if c.cl != nil {
		st.PendingPurges, st.ClusterMembers = c.cl.pending()
		st.CatchUps, st.MissedPurges, st.CatchUpFailures, st.RevalidateBefore = c.cl.catchUpStats()
	}
	return st
}
