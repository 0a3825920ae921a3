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
// Elements live in chunks, arrays of elements of one tower height class
// that the Map allocates a few thousand at a time, and link to each other
// by 32-bit ids instead of pointers: the key, the value, the tower height
// and the links of the tower right after them (p = 0.6, links in both
// directions at every level). Each link keeps a copy of the next key, so
// that a search loads only the elements it passes, and maps created with
// New compare with the operators instead of calling a compare func. When
// K and V hold no pointers a chunk holds a single pointer, so the garbage
// collector does not scan the elements: appends and inserts into a large
// map no longer pay for marking it. A Map[int64, int64] costs 69 bytes per
// element on amd64 (24 bytes of element and 16 per level, 2.5 levels on
// average) and well under one allocation per insert. Deleted slots are
// reused by later inserts; a Map that becomes empty gives its chunks back.
//
// # Table
//
// Table[R] stores each record once, in an Entry whose own allocation holds
// the record and the level-0 links of every index; the one entry in four
// whose tower (one height for all its indexes, p = 1/4) is taller keeps
// the upper levels in a second allocation. A table has at most 16 indexes,
// each ordering the entries by its own key function and compare,
// Unique or Multi (equal keys kept in order of insertion or last update,
// deterministically). Every entry keeps its node in each index, so
// Table.Remove, Table.Update, Index.PopFront and Index.Delete unlink an
// entry from all indexes in O(height) per index without searching; Update
// leaves an entry in place in the indexes whose order its new record does
// not change, and Index.Upsert updates or inserts by a unique key. Indexes
// offer Find, Ceil, Floor, Front, Back, Next, Prev and iterators (All,
// Backward, Ascend, Descend). GroupIndex[R, K] orders the entries within
// caller-owned Groups (the users of one URL): an Update that names another
// group moves the entry through its own links. Inserts and updates search
// from the back, so appending the newest key costs O(height).
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
// See the Table and GroupIndex examples (package online uses a GroupIndex
// per URL instead of the (url, time) index). An entry costs 144 bytes for
// that record in three indexes, and 80 bytes plus about 11 on average for
// a 32-byte record in two. A lookup by a string key dereferences the
// string of every record it passes; a caller that looks users up far more
// often than it walks them may keep a Go map from user to *Entry beside
// the table.
//
// # Iteration and mutation
//
// The iterators tolerate mutation by the loop body: after each yield they
// continue from the position the yielded element had, whatever was
// inserted, removed or moved meanwhile.
//
// A Map Element is valid while it is in its Map. After its removal
// (Delete, Remove, PopFront, PopBack, Clear) its Key and Value keep
// working and Next and Prev return nil until a later insertion into the
// Map reuses its slot: read what a PopFront returned before inserting
// again. Remove returns false for a removed element until then, and for
// elements of another Map or from before a Clear. Table entries stay valid
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
// and, steadier on a shared machine, the same operations measured in short
// alternating batches in one process:
//
//	PEERSCALE_BENCH_INTERLEAVED=1 go test -run Interleaved -v -timeout 60m
//
// Figures below come from the second command: process CPU time per
// operation (which counts GC work on every thread), medians of 15 rounds
// of alternating batches, and for ÷tidwall the median of the per-round
// ratios; bytes and allocations per element come from BenchmarkBuild of
// the first command at 1M. Keys and values are int64, on a 2-vCPU machine
// shared with other jobs (load average 5 to 19 during the runs). Insert
// and Delete change at most n/4 elements per batch; PopFront and Append
// work on a map of increasing keys.
//
//	op, n                peerscale   huandu   google  tidwall   ÷huandu  ÷tidwall
//	Insert random, 1k          159      467       55       72      0.34      2.33
//	Insert random, 100k        729     2154      335      350      0.34      2.31
//	Insert random, 1M         1938     6208      692      773      0.31      2.69
//	Get, 1k                     59      181       46       56      0.33      1.17
//	Get, 100k                  611     1897      266      269      0.32      1.87
//	Get, 1M                   1866     5618      671      701      0.33      2.56
//	Delete, 1k                 131      280       56       81      0.47      1.68
//	Delete, 100k               458     1479      297      320      0.31      1.31
//	Delete, 1M                1647     5315      752      732      0.31      2.29
//	PopFront, 1k                36       55       33       58      0.65      0.68
//	PopFront, 100k              28       40       37       37      0.70      0.75
//	PopFront, 1M                27       45       43       37      0.60      0.74
//	Append increasing, 1k        43      411       51       78      0.10      0.59
//	Append increasing, 100k        34      220       81       70      0.15      0.47
//	Append increasing, 1M        33      648      246      184      0.05      0.23
//	bytes per element, 1M      68.8    128.3     24.7     24.7
//	allocations per insert      0.00     4.00     0.07     0.07
//
// The sequential benchmarks of the first command, run under heavier load
// and a few minutes apart per structure, gave at 1M Insert/Get/Delete
// 3768/3572/2920 cpu-ns/op against tidwall's 1006/1092/704 and PopFront of
// a random-key map 77-98 ns (tidwall 47-50); their ratios moved by ±30%
// between runs.
//
// Before elements moved into chunks (one allocation per element with
// pointer links, p = 1/2) the sequential benchmarks gave Insert/Get/Delete
// 2711/1896/2272 ns at 1M against tidwall's 678/566/1043 (4.00, 3.35 and
// 2.18 times), Append 321 ns and 76.5 bytes per element. What changed:
//
//   - Chunks of pointer-free elements: the garbage collector marks a chunk
//     by reading its owner word, so appends no longer pay for marking a
//     large heap of linked elements (Append at 1M 358 -> 40 ns), and
//     32-bit links shrink an element from 76.5 to 58.5 bytes at p = 1/2.
//   - p = 0.6 instead of 1/2: more levels, fewer moves on the levels that
//     miss the cache; Get 11% faster at 1M in one process, 68.8 bytes.
//   - Free slots on a stack beside the chunks (an insert no longer loads
//     the freed element before writing it: Insert 2.71 -> 2.53 times
//     tidwall), handed out lowest id first after a batch of removals.
//
// At one million random keys a search still makes about 20 dependent
// hops, one element each, and those on the 5 or 6 lowest levels are cache
// and TLB misses (the levels above cost about 150 ns together, measured by
// stopping searches at each level): a B-tree of degree 32 touches 4-5
// nodes whose keys sit in one array. That is why Get, Insert and Delete
// stay 2-3 times tidwall/btree at 1M while PopFront and appends beat it.
// Insert pays, beyond the search, for the back links of its successors.
// Walks from a found element, O(1) pops and appends are where a skiplist
// is cheap, and element handles make removal from several orderings free
// of searches (Table).
package skiplist
