package skiplist

import (
	"slices"
	"unsafe"
)

// Elements live in chunks, arrays of elements of one height class
// allocated together, and link to each other by 32-bit ids instead of
// pointers. When K and V hold no pointers, a chunk's only pointer is its
// owner field at offset 0, so the garbage collector marks a chunk by
// reading one word instead of scanning every link of every element, and a
// link takes 4 bytes instead of 8.
//
// An id packs the height class (3 bits), the chunk within the class and
// the slot within the chunk:
//
//	class<<classShift | chunk<<slotBits | slot
//
// Id 0 (class 0, chunk 0, slot 0) is never allocated and means "none".
// Slot 0 of chunk 0 of the top class is the head sentinel of the Map,
// which lives in the Map itself.
const (
	slotBits   = 12 // chunks hold fewer than 1<<slotBits elements
	slotMask   = 1<<slotBits - 1
	classShift = 29
	chunkMask  = 1<<(classShift-slotBits) - 1
	numClasses = 8
	// headID is the id of the head sentinel.
	headID = (numClasses - 1) << classShift
)

// classCap is the number of links an element of each height class has
// room for. The top class has maxLevel+1, the size of the head.
var classCap = [numClasses]int{1, 2, 3, 4, 6, 8, 16, maxLevel + 1}

// classOf returns the height class of a tower of h links, 1 <= h <= maxLevel+1.
func classOf(h int) int {
	switch {
	case h <= 4:
		return h - 1
	case h <= 6:
		return 4
	case h <= 8:
		return 5
	case h <= 16:
		return 6
	default:
		return 7
	}
}

// chunkLen is the number of elements in the j-th chunk of a class: small
// first chunks keep small maps small, large ones amortise allocations.
// The lengths are one short of a power of two so that, with the owner
// word, a large chunk fills whole pages (every stride is a multiple of 8).
func chunkLen(j int) int {
	switch j {
	case 0:
		return 8
	case 1:
		return 63
	case 2:
		return 511
	default:
		return 1<<slotBits - 1
	}
}

// chunk is the allocation holding n elements of one class: A is
// [n]tower[K, V, [cap]link[K]]. owner comes first so that, for pointer-free
// K and V, the garbage collector scans only that word.
type chunk[K, V, A any] struct {
	owner *arena[K, V]
	nodes A
}

// nodesOffset is the offset of the first element in every chunk: the
// elements of all classes share an alignment, that of Element[K, V] and
// link[K].
func nodesOffset[K, V any]() uintptr {
	var c chunk[K, V, [1]tower[K, V, [1]link[K]]]
	return unsafe.Offsetof(c.nodes)
}

// stride returns the size of an element of class c with its links.
func stride[K, V any](c int) uintptr {
	switch c {
	case 0:
		return unsafe.Sizeof(tower[K, V, [1]link[K]]{})
	case 1:
		return unsafe.Sizeof(tower[K, V, [2]link[K]]{})
	case 2:
		return unsafe.Sizeof(tower[K, V, [3]link[K]]{})
	case 3:
		return unsafe.Sizeof(tower[K, V, [4]link[K]]{})
	case 4:
		return unsafe.Sizeof(tower[K, V, [6]link[K]]{})
	case 5:
		return unsafe.Sizeof(tower[K, V, [8]link[K]]{})
	case 6:
		return unsafe.Sizeof(tower[K, V, [16]link[K]]{})
	default:
		return unsafe.Sizeof(tower[K, V, [maxLevel + 1]link[K]]{})
	}
}

// newChunkOf allocates a chunk of n elements of type T (n is one of the
// values chunkLen returns) and returns the address of its first element.
func newChunkOf[K, V, T any](a *arena[K, V], n int) unsafe.Pointer {
	switch n {
	case 8:
		c := &chunk[K, V, [8]T]{owner: a}
		return unsafe.Pointer(&c.nodes)
	case 63:
		c := &chunk[K, V, [63]T]{owner: a}
		return unsafe.Pointer(&c.nodes)
	case 511:
		c := &chunk[K, V, [511]T]{owner: a}
		return unsafe.Pointer(&c.nodes)
	default:
		c := &chunk[K, V, [1<<slotBits - 1]T]{owner: a}
		return unsafe.Pointer(&c.nodes)
	}
}

// newChunk allocates a chunk of n elements of class c.
func newChunk[K, V any](a *arena[K, V], c, n int) unsafe.Pointer {
	switch c {
	case 0:
		return newChunkOf[K, V, tower[K, V, [1]link[K]]](a, n)
	case 1:
		return newChunkOf[K, V, tower[K, V, [2]link[K]]](a, n)
	case 2:
		return newChunkOf[K, V, tower[K, V, [3]link[K]]](a, n)
	case 3:
		return newChunkOf[K, V, tower[K, V, [4]link[K]]](a, n)
	case 4:
		return newChunkOf[K, V, tower[K, V, [6]link[K]]](a, n)
	case 5:
		return newChunkOf[K, V, tower[K, V, [8]link[K]]](a, n)
	case 6:
		return newChunkOf[K, V, tower[K, V, [16]link[K]]](a, n)
	default:
		return newChunkOf[K, V, tower[K, V, [maxLevel + 1]link[K]]](a, n)
	}
}

// class is the storage of the elements of one height class.
type class struct {
	// chunks[j] is the address of the first element of chunk j.
	chunks []unsafe.Pointer
	stride uintptr
	// free holds the ids of freed slots; the slot taken is the last one.
	// It is kept apart from the elements so that taking a slot does not
	// load the (likely uncached) freed element before writing it. After
	// many releases it is sorted, lowest id last, so that elements
	// inserted in key order after a batch of removals (an expiry sweep,
	// then new arrivals) sit in address order and later walks and pops
	// read memory sequentially. unsorted counts releases since.
	free     []uint32
	unsorted int
	// next is the next never-used id; limit the end of its chunk.
	next, limit uint32
	used        int // elements allocated and not freed
}

// arena holds the elements of a Map. A Map replaces its arena when it is
// cleared, so that elements obtained before keep resolving their ids in
// the arena they belong to.
type arena[K, V any] struct {
	cls   [numClasses]class
	slots int // element slots in the chunks allocated so far
}

func newArena[K, V any](head *Element[K, V]) *arena[K, V] {
	a := &arena[K, V]{}
	for c := range a.cls {
		a.cls[c].stride = stride[K, V](c)
		a.cls[c].next = uint32(c) << classShift
		a.cls[c].limit = a.cls[c].next
	}
	top := &a.cls[numClasses-1]
	top.chunks = append(top.chunks, unsafe.Pointer(head))
	top.next = headID + 1<<slotBits // chunk 0 of the top class is the head
	top.limit = top.next
	return a
}

// ptr returns the element with id x, which must have been allocated by a
// (or be headID).
//
// Invariant: the chunk address is the first element of an allocation of
// at least chunkLen(j) elements of stride cl.stride (or the head, slot 0),
// and the slot is below that length, so the address stays inside the
// chunk's allocation.
func (a *arena[K, V]) ptr(x uint32) *Element[K, V] {
	cl := &a.cls[x>>classShift]
	return (*Element[K, V])(unsafe.Add(cl.chunks[(x>>slotBits)&chunkMask], uintptr(x&slotMask)*cl.stride))
}

// alloc returns a fresh element for a tower of h links, reusing a freed
// slot of its class when there is one.
func (a *arena[K, V]) alloc(h int) *Element[K, V] {
	c := classOf(h)
	cl := &a.cls[c]
	cl.used++
	if n := len(cl.free); n > 0 {
		if cl.unsorted > n/2 && n > 1 {
			// Amortised O(log n) per release: a sort follows at least
			// n/2 releases.
			slices.Sort(cl.free)
			slices.Reverse(cl.free)
			cl.unsorted = 0
		}
		x := cl.free[n-1]
		cl.free = cl.free[:n-1]
		return a.ptr(x)
	}
	if cl.next == cl.limit {
		j := len(cl.chunks)
		if j > chunkMask {
			panic("skiplist: too many elements")
		}
		n := chunkLen(j)
		cl.chunks = append(cl.chunks, newChunk(a, c, n))
		a.slots += n
		cl.next = uint32(c)<<classShift | uint32(j)<<slotBits
		cl.limit = cl.next + uint32(n)
		if cl.next == 0 {
			cl.next = 1 // id 0 means none
		}
	}
	x := cl.next
	cl.next++
	e := a.ptr(x)
	e.self = x
	return e
}

// release puts e, unlinked (height 0), on the free list of its class. Its
// key and value stay in place until the slot is reused.
func (a *arena[K, V]) release(e *Element[K, V]) {
	cl := &a.cls[e.self>>classShift]
	cl.used--
	cl.free = append(cl.free, e.self)
	cl.unsorted++
}

// owner returns the arena e was allocated in. e must not be the head.
//
// Invariant: e is the element at slot e.self&slotMask of a chunk of its
// class, so stepping back by that many strides and the chunk's element
// offset lands on the chunk's owner field, inside the same allocation.
func (e *Element[K, V]) owner() *arena[K, V] {
	back := nodesOffset[K, V]() + uintptr(e.self&slotMask)*stride[K, V](int(e.self>>classShift))
	return *(**arena[K, V])(unsafe.Add(unsafe.Pointer(e), -int(back)))
}
