// Package proxycache is a shared HTTP cache (RFC 9111) that sits in front of
// configured origins as an http.Handler and keeps what it caches on disk
// under intuitive names, with purges that can be applied cluster-wide over a
// bus group: the pulling image cache of "Scalable Internet Architectures".
//
// # Usage
//
//	origin, _ := url.Parse("http://10.0.0.5:8080")
//	c, err := proxycache.New("/var/cache/images",
//		map[string]*url.URL{"images.example.com": origin},
//		proxycache.Config{MaxBytes: 20 << 30, Bus: b})
//	...
//	srv := &http.Server{Addr: ":80", Handler: c}
//	...
//	err = c.PurgePrefix(ctx, "http://images.example.com/logos/")
//	...
//	err = c.Shutdown(ctx)
//
// A request whose Host is not a key of the origins map is refused with 403:
// the cache is not an open proxy.
//
// # Caching rules
//
// GET and HEAD are served from the cache; every other method is forwarded
// (httputil.ReverseProxy) and a successful unsafe request invalidates its
// target and the URLs in its Location and Content-Location fields (at once
// here, and on the other members through the bus, without waiting).
// Implemented: freshness from s-maxage, max-age, Expires and, for the
// heuristically cacheable statuses, 10% of the time since Last-Modified;
// current age per RFC 9111 §4.2.3 with the Age field; validation with
// If-None-Match / If-Modified-Since and the 304 merge of §4.3.4; Vary (one
// variant per URL is kept; a request for another variant refills it);
// no-store, private, no-cache, must-revalidate, proxy-revalidate,
// must-understand and public in responses; max-age, min-fresh, max-stale,
// no-cache, no-store, only-if-cached and Pragma: no-cache in requests;
// Authorization (a response to an authorized request is stored only with
// public, s-maxage or must-revalidate, and authorized requests are never
// answered from the cache); stale-while-revalidate and stale-if-error (RFC
// 5861); Age and Cache-Status (RFC 9211) on every answer; HEAD; Range and
// client conditionals answered from complete entries by http.ServeContent.
// A miss for HEAD or for a range fetches the whole representation with GET.
// Hop-by-hop fields are never stored.
//
// # Collapsed forwarding
//
// Concurrent requests for one key make one origin fetch (a fill). The fill
// runs in its own goroutine, bounded by Config.FillTimeout and Close, not by
// the client that started it: if that client goes away the fill still
// completes and serves the others. An answer that may not be stored (private,
// no-store, too large, Set by an authorized request...) goes to the first
// client only; the waiting requests are released to fetch on their own, so a
// private response is never shared. Requests with Authorization or a
// no-store directive never join a fill.
//
// # Storage
//
// http://www.example.com/img/logo.gif is stored as
// <root>/www.example.com/img/logo.gif, with its metadata (status, header,
// times, variant) in the sidecar logo.gif%m beside it. The sidecar records the
// body's device, inode, size and modification time, so a body deleted or
// replaced by hand is a miss, never a wrong answer. Bodies are written to
// <root>/%tmp and renamed into place, body first, sidecar last. Bytes outside
// [A-Za-z0-9-_.~+,=:@] (and a leading dot) are written %XX; a query string
// becomes part of the last name (a.gif%3Fw=10); an empty segment is "%_"; a
// name over 200 bytes is cut and ends in %h plus a hash. Because '%' is only
// ever written followed by two upper-case hex digits, no URL can name the
// sidecars, %tmp or %trash, and ".." can never appear: no URL reaches
// outside the root (FuzzObjectPath). When an object sits where a directory
// is needed ("/a" cached, then "/a/b"), the directory wins.
//
// At start the index is rebuilt from the sidecars; sidecars without their
// body and bodies without a sidecar are deleted. MaxBytes bounds the store
// with least-recently-used eviction (access times are refreshed at most once
// a second, so the order is approximate), and entries unused for
// InactiveTimeout are removed. Hits are written straight to the server's
// ResponseWriter (http.ServeContent when the request has a range or a
// precondition): the header first, then the body file with one
// sendfile(2); no wrapper hides ReadFrom. Bodies up to MemoryObjectSize
// that were hit twice are also kept in memory (up to MemoryBytes) and
// answered with one Write, without opening the file; such a body is
// checked against its file at most once a second, so a body deleted or
// replaced by hand stops being served within a second (and is never
// served with another entry's header).
//
// A hit does no per-request parsing or allocation of its own: the
// stored fields are parsed once per entry, the whole header of a plain
// fresh hit is prepared per entry and rebuilt only when its Age or ttl
// changes (at most once a second), and index lookups take a read lock
// (the access time behind the LRU order is refreshed at most once a
// second per entry).
//
// # Purge
//
// PurgeURL, PurgePrefix and PurgeAll remove entries; a prefix ending in '/'
// renames its directory into <root>/%trash at once and deletes it in the
// background. The PURGE method on the cache's own listener ("PURGE
// /logos/*" for a prefix) and the JSON API of AdminHandler go through
// Config.Authorize (loopback only by default).
//
// Each member keeps a purge sequence number: a fill records it when it
// starts and is not stored if a purge that covers its key was applied since,
// so a fill begun before a purge is never stored after it.
//
// A purge takes its entries out of the index (which is what stops them
// being served) and is acknowledged at once; with a bus, their files are
// removed in batches 20 ms later, outside the store's lock, so neither the
// purge's latency nor concurrent hits wait for the file system (an unlink
// can stall for milliseconds behind a journal commit). A file is removed
// only if it is still the purged entry's. Should the process die in
// between, the purged entries come back with the index at restart and the
// catch-up below removes them again (the purge is in the others' logs).
// Without a bus the files are removed before the purge returns.
//
// With Config.Bus, purges are multicast to Config.Group at FIFO level (they
// are idempotent removals, so no total order is needed and bus/cluster,
// which stops at FIFO, carries them); the call returns once this
// member applied the purge, or, with Config.PurgeWaitAll, once every member
// of the view acknowledged it.
//
// # Members that were away
//
// A join costs no member its cache. Every member keeps a log of the last
// Config.PurgeLog purges it applied, stamped with its own clock, and
// remembers since when each member that left its view may have missed
// them. Two situations call for a catch-up:
//
//   - a store that comes back from disk (a restart) may have missed the
//     purges made since it stopped: the store's stamp file, <root>/%stamp,
//     rewritten every 10 s and at Close, says since when (a minute before
//     the last stamp, or earlier if members it had lost had not come back);
//   - members that left this member's view come back (a partition heals):
//     each side may have missed the other's purges since the start of the
//     last view they shared (at most a minute before the bus noticed).
//
// The member then asks the members concerned, over the group, for the
// purges they applied since then. Each one answers with those records and
// their ages (ages, not times, so clocks need not agree) and with how far
// back its log is complete. The asker applies each purge only to entries
// fetched before it (a second of slack), so what it filled since stays;
// everything else is kept. Until the answers are in, entries fetched
// before the catch-up began are revalidated before use (a conditional
// request; a 304 keeps them). If the answers cannot vouch for the whole gap
// (a log too short, a member that left or did not answer within 10 s), the
// entries fetched before the uncovered time stay marked: each is
// revalidated once, on its next use, instead of being deleted. A brand-new
// member with an empty store asks nothing; the members it joins ask it
// (it may come from the other side of a partition) but keep serving while
// it answers. An answer vouches only for the time since the answering
// member started (or since the oldest purge its log had to drop): after
// the whole cluster restarted, entries fetched before the members started
// are revalidated once. Stats reports CatchUps, MissedPurges,
// CatchUpFailures and RevalidateBefore.
//
// What this does not cover: a purge made only by members that are gone
// for good before the others learnt it (the bus does not promise its
// delivery either), and three or more sides healing at once whose
// answers together have a hole no single answer shows (each answer is
// taken for the whole other side).
//
// # Write-through pages
//
// PageCache is the news site's page cache: a page is served from
// <dir>/<key> (items/12345.html) while that file exists; otherwise its
// Generator runs once however many requests wait (in its own goroutine,
// bounded by PageConfig.GenerateTimeout, not by the first client), the page
// is written through a temporary file and a rename, and served.
// Invalidate(key) and InvalidateAll remove pages, over the bus with
// PageConfig.Bus, under the same sequence rule: a generation that began
// before an invalidation of its key is discarded and run again. A member
// that was away catches up like a Cache: pages written before an
// invalidation it missed are deleted, the others kept, and when the
// answers cannot vouch for the whole gap, pages written before it are
// generated again on their next request. The application cache for database reads, on groupcache, is the
// subpackage appcache.
//
// Purger (NewPurger) sends purges to the Caches of a group without caching
// anything: examples/purge is the command-line client.
//
// # Statistics
//
// Stats returns a snapshot: hits, misses, stale answers, revalidations and
// 304s, fills, stored fills, coalesced waits, fill errors, purges and purged
// objects, evictions, bytes served and filled, refused requests, and the
// store's objects and bytes. PageCache.Stats does the same for pages.
//
// # Concurrency
//
// Cache is safe for concurrent use. Request paths never block on the bus;
// purge calls block until applied (bounded by their ctx). Close cancels fills
// and waits for every goroutine; Shutdown first lets fills under way finish.
//
// # Performance
//
// Measured on the 2-core shared development machine, a virtual machine
// under heavy load from other work (load average 10-27 during these runs:
// requests/s swing widely; CPU time per request is the steadier figure,
// compared within one run). proxycache/scripts/bench.sh runs wrk (1
// thread, 8 keep-alive connections, CPU 1) against proxycache, nginx 1.22
// proxy_cache (sendfile on, tcp_nopush off, one worker), http.FileServer
// serving proxycache's stored files, and the smallest net/http handlers
// that can answer: "sendfile" (open, fstat, io.Copy of the file),
// "memory" (two header fields and one Write of a prepared []byte) and
// "memhdr" (the same with the seven header fields of a proxycache hit).
// Servers run on CPU 0 (Go with GOMAXPROCS=1); every server is checked to
// answer 200 with the whole object (and a cache hit) before it is
// measured, rounds interleave the servers, and the table gives medians of
// the CPU time of the server process (utime+stime). Two runs of
//
//	RUNS=3 DURATION=3s proxycache/scripts/bench.sh
//
// gave (CPU µs per request, user+sys, medians of 3; first run / second):
//
//	size     server      CPU µs/request   proxycache's efficiency against it
//	10 KiB   proxycache   40.4 / 46.2
//	10 KiB   nginx        28.7 / 35.9     0.71 / 0.78
//	10 KiB   FileServer   86.3 / 90.4     2.14 / 1.96
//	10 KiB   sendfile     73.5 / 82.9     1.82 / 1.79
//	10 KiB   memory       35.8 / 43.6     0.89 / 0.94
//	10 KiB   memhdr       37.4 / 41.9     0.93 / 0.91
//	1 MiB    proxycache  337   / 341
//	1 MiB    nginx       248   / 321      0.74 / 0.94
//	1 MiB    FileServer  381   / 370      1.13 / 1.08
//	1 MiB    sendfile    346   / 393      1.03 / 1.15
//	1 MiB    memory      367   / 383      1.09 / 1.12
//
// Efficiency is the other server's CPU time per request divided by
// proxycache's (above 1, proxycache is cheaper). Before the hit path was
// reworked the same script gave 0.51-0.65× nginx at 10 KiB (0.60 in a run
// of this version's script, with memory at 0.71).
//
// At 10 KiB the goal of 0.85× nginx is below what net/http allows here:
// the smallest handler that answers from memory reaches only 0.80× and
// 0.82× nginx in the same runs (0.73-0.93× in earlier ones), and
// proxycache is within 6-11% of it (and of memhdr, which sends the same
// header). A hit has nothing left of its own to remove: no system call, no
// allocation (BenchmarkHitHandler: 0 allocs), no parsing; what remains is
// net/http's per-request work (reading and parsing the request, the
// background read that watches the connection, cloning and writing the
// header) and its two write(2) calls for a body larger than its 4 KiB
// buffer, against nginx's writev and sendfile. FileServer is passed by
// about 2× (goal ≥ 1.4×). At 1 MiB every server spends the time in the
// kernel's sendfile(2) and loopback delivery; proxycache matches the
// minimal Go sendfile handler (1.03-1.15×) and reached 0.74-0.94× nginx in
// these runs (1.10-1.15× in earlier ones, when nginx measured 400 µs).
//
// Other figures, from go test benchmarks:
//
//	go test ./proxycache -run '^$' -bench HitHandler -count 3
//	    a hit from memory (10 KiB) without net/http: 0 allocs,
//	    3.0-3.7 µs of wall time on the loaded machine
//	go test ./proxycache -run '^$' -bench CollapsedMiss
//	    500 concurrent misses on one key: 1.000 origin fetch per batch
//	go test ./internal/bench/proxycache -run '^$' -bench ClusterPurge -benchtime 2000x -count 3
//	    purge of a cached URL across 3 members over bus/cluster on loopback,
//	    call to applied everywhere (PurgeWaitAll):
//	        purge  p50 216-222 µs, p99 0.63-1.8 ms
//	        bus    p50 68-74 µs,   p99 0.25-0.27 ms (the same exchange without
//	               proxycache: one FIFO message out, two Reliable answers)
//	    (before: p50 150-170 µs and p99 1.5-12 ms for URLs that were not
//	    even cached). The tail came from the disk: each member unlinked the
//	    body and sidecar under the store's lock before acknowledging, and
//	    woke its janitor to list the trash directory; unlinks on this ext4
//	    stall behind journal commits. Now the index change alone precedes
//	    the acknowledgement and the files go in batches afterwards.
//
// # Testing
//
// Unit tests run the origin in process (an http.RoundTripper calling a
// handler) under testing/synctest for every timer rule. TestHTTPCacheTests
// runs the HTTP caching test suite, npm package http-cache-tests@0.4.5,
// against the cache on 127.0.0.1 (it needs node and npm; it skips without
// them unless PEERSCALE_REQUIRE_TOOLS=1). Its test server binds port 0 and
// reports the port it got; at least 151 of the 157 required tests must
// pass (a test that fails is run once more on its own, since the suite's
// timing tests fail on a loaded machine). The suite runs through a small
// runner the test writes beside the package, which gives every test a 60 s
// deadline and always prints results: the package's own runner ends
// silently with no results when one fetch never settles. Cluster tests run three or four
// caches over bus/inproc: purges interleaved at random with fills, a join,
// a restart and a partition heal that keep what was not purged, and a
// catch-up beyond the others' logs that revalidates instead of deleting.
// internal/bench/proxycache restarts a cache over bus/cluster on loopback
// (TestRestartOverCluster).
package proxycache
