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
// Each element is one allocation: the key, the value, the tower height
// and the links of its tower right after them (p = 1/2, links in both
// directions at every level). Each link keeps a copy of the next key, so
// that a search loads only the elements it passes, and maps created with
// New compare with the operators instead of calling a compare func. A
// Map[int64, int64] costs 76 bytes per element on amd64 (24 bytes of
// element and 24 per level, 2 levels on average).
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
// GC work on every thread), medians of 3 runs in one run of the command
// above (bytes and allocations per element from BenchmarkBuild in a run
// of the same code at 1M), int64 keys and values, on a 2-vCPU machine
// shared with other jobs (wall ns/op ran up to several times higher and is
// not shown). Insert and Delete keep the size between 0.75n and 1.25n;
// Append adds keys above the largest.
//
//	op, n                peerscale   huandu   google  tidwall   ÷huandu  ÷tidwall
//	Insert random, 1k           288      560       91      107      0.51      2.69
//	Insert random, 100k         882     2420      307      384      0.36      2.30
//	Insert random, 1M          2711     5766      607      678      0.47      4.00
//	Get, 1k                      21      166       32       38      0.12      0.54
//	Get, 100k                   356     1213      216      234      0.29      1.52
//	Get, 1M                    1896     5259      552      566      0.36      3.35
//	Delete, 1k                  120      276       64       76      0.43      1.56
//	Delete, 100k                640     2136      243      274      0.30      2.34
//	Delete, 1M                 2272     4514      904     1043      0.50      2.18
//	PopFront, 1k                 33       46       43       48      0.73      0.69
//	PopFront, 100k               70      115       41       43      0.61      1.63
//	PopFront, 1M                 98      164       46       47      0.60      2.08
//	Append increasing, 1k       144      382       76      103      0.38      1.39
//	Append increasing, 100k      317      714      164      135      0.44      2.34
//	Append increasing, 1M       321      992      162      154      0.32      2.09
//	bytes per element, 1M      76.5    128.3     24.7     24.7
//	allocations per insert     1.00     4.00     0.07     0.07
//
// The same kind of run before the towers moved inside the element
// allocation (p = 1/4, a slice header per element, a compare func call
// per comparison) gave 3895/3297/3381 ns for Insert/Get/Delete at 1M
// against tidwall's 681/668/886, and 75 bytes per element.
//
// At one million random keys a search makes about 18 dependent hops
// (measured: p = 1/2, 21 levels), one element each, and every element it
// lands on below the top levels is a cache and TLB miss: a B-tree of
// degree 32 touches 4-5 nodes whose keys sit in one array. That is why
// Get stays near 3 times and Insert near 4 times tidwall/btree at 1M, and
// why they match or beat the B-trees at 1k where the list fits in cache.
// Insert pays, beyond the search, for a new element in fresh memory, the
// back links of its successors and the GC marking every allocation brings
// on a large heap of linked elements (a pointer-free layout is impossible
// with a generic V). Appends at 1M pay mostly for that marking: the same
// append costs 144 ns at 1k. PopFront, appends and walks from a found
// element are where a skiplist is cheap, and element handles make removal
// from several orderings free of searches (Table).
package skiplist
