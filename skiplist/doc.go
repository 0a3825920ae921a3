// Package skiplist provides ordered collections on skiplists: Map, an
// ordered map with element handles, and Table, one set of records kept in
// several orderings at once (the design of libskiplist, which the
// who's-online daemon of "Scalable Internet Architectures" rests on). It
// uses the standard library only and starts no goroutines.
//
// # Map
//
// Map[K, V] is an ordered map with O(log n) expected Get, Set, Insert and
// Delete; O(1) expected Front, Back, PopFront, PopBack and appends of keys
// larger than every key present (a finger at the tail); Ceil and Floor
// returning an Element that walks forward and backward; Remove of a known
// Element in O(height) without a search; Len in O(1); and iter.Seq2
// iterators All, Backward, Ascend, Descend and Range.
//
//	m := skiplist.New[int64, string]()
//	m.Set(42, "answer")
//	v, ok := m.Get(42)
//	for e := m.Ceil(40); e != nil; e = e.Next() { ... }
//	for k, v := range m.Range(10, 100) { ... }
//
// Each element is one allocation holding its tower: p = 1/4, links in both
// directions at every level, and each link keeps a copy of the next key so
// that a search loads only the elements it passes. A Map[int64, int64]
// costs 75 bytes per element on amd64.
//
// # Table
//
// Table[R] stores each record once, in an Entry, and links it into several
// indexes, each ordering the entries by its own key function and compare,
// Unique or Multi (equal keys kept in order of insertion or last update,
// deterministically). Every entry keeps its node in each index, so
// Table.Remove, Table.Update, Index.PopFront and Index.Delete unlink an
// entry from all indexes in O(height) per index without searching; Update
// leaves an entry in place in the indexes whose order its new record does
// not change, and Index.Upsert updates or inserts by a unique key. Indexes
// offer Find, Ceil, Floor, Front, Back, Next, Prev and iterators (All,
// Backward, Ascend, Descend).
//
// A who's-online index, the consumer this was written for, puts one record
// {user, url, last hit} in three indexes: by user (Unique), by (url, time)
// and by time:
//
//	hits := skiplist.NewTable[Hit]()
//	byUser := skiplist.NewIndex(hits, skiplist.Unique, func(h *Hit) string { return h.User })
//	byURL := skiplist.NewIndexFunc(hits, skiplist.Multi, urlTimeOf, compareURLTime)
//	byTime := skiplist.NewIndexFunc(hits, skiplist.Multi, lastOf, time.Time.Compare)
//
//	byUser.Upsert(Hit{user, url, now})       // moves the user, no search for the old place
//	byTime.PopFront()                        // expire the oldest
//	for e := range byURL.Descend(urlTime{url, now}) { ... } // newest first on url
//	hits.Len()                               // users online
//
// See the Table example. An entry costs about 240 bytes in two
// allocations for that record. A lookup by a string key dereferences the
// string of every record it passes; a caller that looks users up far more
// often than it walks them may keep a Go map from user to *Entry beside
// the table.
//
// # Iteration and mutation
//
// The iterators tolerate mutation by the loop body: after each yield they
// continue from the position the yielded element had, whatever was
// inserted, removed or moved meanwhile. Elements and entries stay valid
// after removal (their value is kept; Next and Prev return nil).
//
// # Concurrency
//
// Neither Map nor Table is safe for concurrent mutation. Concurrent reads
// are fine; a writer needs exclusive access (for example a sync.RWMutex
// held by the owner).
//
// # Performance
//
// Skiplists lose to B-trees on large random workloads: a search at one
// million keys makes a few dozen dependent pointer hops, most of them
// cache misses, where a B-tree touches a handful of nodes. They win on
// what libskiplist is used for: O(1) pop of the oldest, cheap appends of
// increasing keys, stable element handles, removal from several orderings
// without a search. The comparison benchmarks live in their own module
// (internal/bench/skiplist) against github.com/huandu/skiplist,
// github.com/google/btree (BTreeG) and github.com/tidwall/btree (BTreeG,
// NoLocks):
//
//	cd internal/bench/skiplist
//	go test -run '^$' -bench . -count 3 -timeout 80m
package skiplist
