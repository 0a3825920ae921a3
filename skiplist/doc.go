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
//
// Figures below: process CPU time per operation (cpu-ns/op, which counts
// GC work on every thread), medians of 3 runs, int64 keys and values, on a
// 2-vCPU machine shared with other jobs (load average near 30, so wall
// ns/op ran 2-8 times higher and is not shown). Insert and Delete keep the
// size between 0.75n and 1.25n; Append adds keys above the largest.
//
//	op, n                peerscale   huandu   google  tidwall   ÷huandu  ÷tidwall
//	Insert random, 1k          349      513       74      113      0.68      3.1
//	Insert random, 100k       2037     3450      320      299      0.59      6.8
//	Insert random, 1M         6549     8895     1106      836      0.74      7.8
//	Get, 1k                     74      204       40       48      0.36      1.5
//	Get, 100k                 1434     3631      392      332      0.39      4.3
//	Get, 1M                   5490     9162      942      691      0.60      7.9
//	Delete, 1k                 170      348       91      116      0.49      1.5
//	Delete, 100k              1756     2497      368      284      0.70      6.2
//	Delete, 1M                5174     7787      962      776      0.66      6.7
//	PopFront, 1k                27       44       38       53      0.62      0.52
//	PopFront, 100k             135      222       83       71      0.61      1.9
//	PopFront, 1M               107      617       78       60      0.17      1.8
//	Append increasing, 1k      143      437       74       83      0.33      1.7
//	Append increasing, 100k    236      505      182      226      0.47      1.0
//	Append increasing, 1M      385     1314      142      120      0.29      3.2
//	bytes per element, 1M     75.4    128.3     24.7     24.7
//	allocations per insert    1.00     4.00     0.07     0.07
//
// At one million random keys a search makes about 27 dependent hops
// (measured with p = 1/4; p = 1/2 makes 19 but needs about 100 bytes per
// element in this layout), most of them cache and TLB misses on a shared
// machine, and every insert allocates an element the GC must then mark:
// the skiplist costs 6-8 times a B-tree there, and 0.6-0.75 times
// huandu/skiplist. Append at 1M pays mostly for that GC marking of a
// million linked elements (the same append costs 143 ns at 1k). PopFront, appends and walks from a found element are
// where a skiplist is cheap, and element handles make removal from several
// orderings free of searches (Table).
package skiplist
