// Package skiplist provides ordered collections on skiplists: Map, an
// ordered map with element handles, and Table, one set of records kept in
// several orderings at once (the design of libskiplist, which the
// who's-online daemon of "Scalable Internet Architectures" rests on).
//
// # Map
//
// Map[K, V] is an ordered map with O(log n) expected Get, Set, Insert and
// Delete, O(1) expected Front/Back/PopFront/PopBack and appends of
// increasing keys, Ceil/Floor returning an Element that walks forward and
// backward, Remove of a known Element without a search, and iter.Seq2
// iterators (All, Backward, Ascend, Descend, Range).
//
// # Table
//
// Table[R] stores each record once, in an Entry, and links it into several
// indexes, each ordering the entries by its own key function and compare,
// Unique or Multi (equal keys kept in order of insertion or last update).
// Every entry keeps its node in each index, so Table.Remove, Table.Update,
// Index.PopFront and Index.Delete unlink an entry from all indexes in
// O(height) per index without searching; Update leaves an entry in place
// in the indexes whose order its new record does not change. Indexes offer
// Find, Ceil, Floor, Front, Back, Next, Prev and iterators (All, Backward,
// Ascend, Descend) that tolerate mutation of the table by the loop body.
//
// A who's-online index, the consumer this was written for, uses three
// indexes on one record {user, url, last hit}: by user (Unique), by (url,
// time) and by time; see the Table example.
//
// # Concurrency
//
// Neither Map nor Table is safe for concurrent mutation. Concurrent reads
// are fine; writers need exclusive access. The types start no goroutines.
package skiplist
