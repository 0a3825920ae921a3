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
// # Concurrency
//
// Neither Map nor Table is safe for concurrent mutation. Concurrent reads
// are fine; writers need exclusive access. The types start no goroutines.
package skiplist
