// Package appcache is the integrated, application-level cache of the news
// site in "Scalable Internet Architectures": values of expensive queries
// (database reads) cached in memory across the cluster with
// github.com/golang/groupcache, each filled once by the member that owns its
// key, and invalidated cluster-wide by a generation announced over the bus.
//
// # Usage
//
//	c, err := appcache.New("articles", appcache.GetterFunc(loadArticle), appcache.Config{
//		SelfURL: "http://10.0.0.5:8081/_appcache", Bus: b,
//	})
//	mux.Handle("/_appcache/", c.Handler())   // peers fetch owned keys here
//	v, err := c.Get(ctx, "article/12345")    // local, owner's memory or owner's Getter
//	err = c.InvalidateAll(ctx)               // the data changed: new generation everywhere
//
// # Generations instead of removal
//
// groupcache has no removal by design. Every key is stored as
// "<generation>/<key>"; InvalidateAll sends a new generation at FIFO level
// and every member adopts the highest generation it has seen. A generation
// is a counter (high 40 bits) with random low bits, so concurrent
// invalidations from two members converge on one generation everywhere
// without a total order. The old values become unreachable and age out of
// groupcache's LRU. A member
// joining a running group does not know the generation: until the leader
// tells it (on every view with newcomers) its Gets go straight to the
// Getter, uncached. After a merge of partitions every member starts a new
// generation above its own, so the highest, adopted everywhere, is newer
// than anything either side invalidated; between the merge view and those
// messages a member may still read a value the other side had invalidated.
//
// # Peers
//
// Members announce their SelfURL over the bus; the owner of a key is chosen
// with groupcache's consistent hash over the members of the current view
// that announced one. A peer fetch is a plain HTTP GET of
// <SelfURL>/<name>/<key> answered with the raw value (no protobuf on the
// wire), bounded by MaxValueSize.
//
// # groupcache's process-wide state
//
// groupcache allows one peer picker per process (a second registration
// panics) and keeps every group in a global registry forever. This package
// registers one per-group picker, once, and gives each Cache a unique
// groupcache group name ("<name>#<random>"), so several Caches, and several
// members in one test process, can coexist; the peer protocol addresses
// caches by their common name. A closed Cache leaves its (empty-handed)
// group registered: create Caches at start, not per request. Nothing is
// registered on http.DefaultServeMux (groupcache's HTTPPool would).
//
// # Why image bodies are not kept here
//
// proxycache keeps HTTP objects on disk instead: groupcache cannot remove a
// purged image (only a generation could hide it, for every object at
// once), its state is process-global, values live in memory, and a peer
// fetch of a large value is expensive (measured on the target machines: 1
// MiB about 8 ms, 16 MiB about 89 ms, allocating about 6× the bytes served)
// while a disk hit served with sendfile costs tens of microseconds. It fits
// small, expensive, read-mostly query results.
//
// # Concurrency
//
// Cache is safe for concurrent use. Close leaves the bus group and waits for
// the goroutines the Cache started.
package appcache
