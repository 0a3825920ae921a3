package online

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWindow is how long a user stays online after its last hit when
// Config.Window is zero.
const DefaultWindow = 30 * time.Minute

// DefaultMaxUsers bounds an Index when Config.MaxUsers is zero.
const DefaultMaxUsers = 10_000_000

// Config configures an Index. The zero value is valid; each field documents
// its default.
type Config struct {
	// Window is how long a user counts as online after its last hit.
	// Zero means DefaultWindow (30 minutes).
	Window time.Duration
	// Now is the clock Expire reads. Nil means time.Now.
	Now func() time.Time
	// MaxUsers bounds the users tracked: a hit of a new user when the
	// index is full evicts the user seen least recently (counted in
	// IndexStats.Evicted). Zero means DefaultMaxUsers (10 million, about
	// 1.7 GB).
	MaxUsers int
}

// Visit is a user's last hit: who, on which URL, when (to the millisecond).
type Visit struct {
	User string
	URL  string
	Time time.Time
}

// IndexStats is a snapshot of an Index's counters.
type IndexStats struct {
	Users      int    // users online (as of the last Expire)
	URLs       int    // distinct URLs those users were last seen on
	Hits       uint64 // hits applied
	Stale      uint64 // hits ignored: at or before the expiry cutoff
	OutOfOrder uint64 // hits ignored: older than the user's last hit
	Expired    uint64 // users removed by Expire
	Evicted    uint64 // users removed to stay within MaxUsers
}

// Index tracks which users were seen in the last Window and on which URL,
// answering how many are online (Count, O(1)), who is on a URL newest first
// (OnURL, O(limit)) and where a user is (Lookup, O(1)).
//
// Three indexes share one record per user: a Go map by user name (a
// deliberate choice: 60–80 ns per lookup against 1–1.6 µs for a skiplist at
// 100,000 users), a skiplist per URL ordered by time and one skiplist of all
// users ordered by time. The skiplist towers are inside the record, so a
// hit that moves a user to another URL unlinks it from its old places
// through its own links and appends it to the new ones, and Expire pops the
// oldest users from the front: neither searches. A hit older than the
// newest records it joins (clock skew between web servers) is placed by one
// search, O(log n).
//
// Hits are idempotent and commutative within the window: a hit older than
// the user's last hit is ignored, never replaces it (OutOfOrder), and a hit
// at or before the cutoff of the last Expire is ignored (Stale). Two hits
// of one user with the same millisecond: the later applied wins.
//
// Queries see the state as of the last Expire: call Expire periodically
// (the Server and Ingest do it before each batch; it is O(1) when nobody
// expires). The Index starts no goroutines.
//
// An Index is safe for concurrent use: a read-write mutex guards it, and
// Count reads an atomic counter without locking.
type Index struct {
	window   int64 // milliseconds
	now      func() time.Time
	maxUsers int

	mu     sync.RWMutex
	users  map[string]*rec
	urls   map[string]*urlList
	all    slist
	cutoff atomic.Int64 // hits at or before this are expired; only grows
	rng    uint64
	st     IndexStats
	count  atomic.Int64
}

// NewIndex returns an empty Index.
func NewIndex(cfg Config) *Index {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = DefaultMaxUsers
	}
	x := &Index{
		window:   max(cfg.Window.Milliseconds(), 1),
		now:      cfg.Now,
		maxUsers: cfg.MaxUsers,
		users:    make(map[string]*rec),
		urls:     make(map[string]*urlList),
		all:      slist{kind: byTime},
		rng:      rand.Uint64() | 1,
	}
	x.cutoff.Store(math.MinInt64)
	return x
}

// Window returns the configured window.
func (x *Index) Window() time.Duration { return time.Duration(x.window) * time.Millisecond }

// randomHeight draws a tower height with P(h > k) = 4^-k.
func (x *Index) randomHeight() int {
	r := x.rng
	r ^= r << 13
	r ^= r >> 7
	r ^= r << 17
	x.rng = r
	return min(1+bits.TrailingZeros64(r)/2, maxLevel)
}

// Hit records that user loaded url at t. It reports whether the hit was
// applied: false when t is older than the user's last hit or at or before
// the cutoff of the last Expire.
func (x *Index) Hit(user, url string, t time.Time) bool {
	ms := t.UnixMilli()
	x.mu.Lock()
	ok := x.hit(user, url, ms)
	x.mu.Unlock()
	return ok
}

// HitBytes is Hit for a user and URL held in byte slices (a network or log
// buffer) and a time in Unix milliseconds. It copies the bytes only for a
// user or URL it has not seen before.
func (x *Index) HitBytes(user, url []byte, unixMilli int64) bool {
	x.mu.Lock()
	ok := x.hitBytes(user, url, unixMilli)
	x.mu.Unlock()
	return ok
}

func (x *Index) hit(user, url string, ms int64) bool {
	if ms <= x.cutoff.Load() {
		x.st.Stale++
		return false
	}
	r := x.users[user]
	if r != nil {
		if ms < r.t {
			x.st.OutOfOrder++
			return false
		}
		x.move(r, x.urls[url], url, ms)
		return true
	}
	x.add(user, x.urls[url], url, ms)
	return true
}

func (x *Index) hitBytes(user, url []byte, ms int64) bool {
	if ms <= x.cutoff.Load() {
		x.st.Stale++
		return false
	}
	r := x.users[string(user)]
	if r != nil {
		if ms < r.t {
			x.st.OutOfOrder++
			return false
		}
		ul := r.url
		if ul.name != string(url) {
			ul = x.urls[string(url)]
		}
		x.move(r, ul, urlName(ul, url), ms)
		return true
	}
	ul := x.urls[string(url)]
	x.add(string(user), ul, urlName(ul, url), ms)
	return true
}

// urlName returns the name of ul, or url as a new string when ul is nil,
// so that a known URL costs no allocation.
func urlName(ul *urlList, url []byte) string {
	if ul != nil {
		return ul.name
	}
	return string(url)
}

// move relinks an existing user at (url, ms); ul is the URL's list if it
// exists.
func (x *Index) move(r *rec, ul *urlList, url string, ms int64) {
	x.st.Hits++
	x.all.remove(r)
	old := r.url
	old.s.remove(r)
	if ul == nil {
		if old.s.n == 0 {
			// Reuse the emptied list for the new URL.
			delete(x.urls, old.name)
			old.name = url
			ul = old
		} else {
			ul = &urlList{name: url, s: slist{kind: byURL}}
		}
		x.urls[url] = ul
	} else if old != ul && old.s.n == 0 {
		delete(x.urls, old.name)
	}
	r.url, r.t = ul, ms
	x.all.insert(r)
	ul.s.insert(r)
}

func (x *Index) add(user string, ul *urlList, url string, ms int64) {
	x.st.Hits++
	if len(x.users) >= x.maxUsers {
		x.drop(x.all.first())
		x.st.Evicted++
		x.count.Add(-1)
		ul = x.urls[url] // the eviction may have emptied it
	}
	if ul == nil {
		ul = &urlList{name: url, s: slist{kind: byURL}}
		x.urls[url] = ul
	}
	r := &rec{user: user, url: ul, t: ms}
	if h := x.randomHeight(); h > 1 {
		r.up = make([]link, 2*(h-1))
	}
	x.users[user] = r
	x.all.insert(r)
	ul.s.insert(r)
	x.count.Add(1)
}

// Expire removes the users whose last hit is at or before Now() - Window
// and returns how many it removed. Later hits at or before that cutoff are
// ignored. The cutoff never moves back, even if the clock does. Expire
// costs O(1) plus O(height) per user removed.
func (x *Index) Expire() int {
	c := x.now().UnixMilli() - x.window
	for {
		old := x.cutoff.Load()
		if c <= old {
			c = old
			break
		}
		if x.cutoff.CompareAndSwap(old, c) {
			break
		}
	}
	// Fast path under the read lock: nobody to remove.
	x.mu.RLock()
	f := x.all.first()
	none := f == nil || f.t > c
	x.mu.RUnlock()
	if none {
		return 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for r := x.all.first(); r != nil && r.t <= c; r = x.all.first() {
		x.drop(r)
		n++
	}
	if n > 0 {
		x.st.Expired += uint64(n)
		x.count.Add(-int64(n))
	}
	return n
}

// drop removes r from every index.
func (x *Index) drop(r *rec) {
	x.all.remove(r)
	ul := r.url
	ul.s.remove(r)
	if ul.s.n == 0 {
		delete(x.urls, ul.name)
	}
	delete(x.users, r.user)
}

// Count returns the number of users online as of the last Expire, in O(1)
// and without locking.
func (x *Index) Count() int { return int(x.count.Load()) }

// Lookup returns user's last hit.
func (x *Index) Lookup(user string) (Visit, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := x.users[user]
	if r == nil {
		return Visit{}, false
	}
	return r.visit(), true
}

func (r *rec) visit() Visit {
	return Visit{User: r.user, URL: r.url.name, Time: time.UnixMilli(r.t)}
}

// OnURL returns the users whose last hit was on url, newest first, at most
// limit of them (all of them when limit <= 0).
func (x *Index) OnURL(url string, limit int) []Visit {
	return x.AppendOnURL(nil, url, limit)
}

// AppendOnURL is OnURL appending to dst, so a caller reusing dst does not
// allocate.
func (x *Index) AppendOnURL(dst []Visit, url string, limit int) []Visit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return appendURL(dst, x.urls[url], limit)
}

// CountURL returns the number of users whose last hit was on url.
func (x *Index) CountURL(url string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if ul := x.urls[url]; ul != nil {
		return ul.s.n
	}
	return 0
}

func growVisits(dst []Visit, n int) []Visit {
	if cap(dst)-len(dst) < n {
		d := make([]Visit, len(dst), len(dst)+n)
		copy(d, dst)
		dst = d
	}
	return dst
}

// Stats returns a snapshot of the index's counters.
func (x *Index) Stats() IndexStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := x.st
	s.Users = len(x.users)
	s.URLs = len(x.urls)
	return s
}

// lookupBytes is Lookup for a name in a byte slice, without allocating.
func (x *Index) lookupBytes(user []byte) (url string, ms int64, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := x.users[string(user)]
	if r == nil {
		return "", 0, false
	}
	return r.url.name, r.t, true
}

// appendOnURLBytes is AppendOnURL for a URL in a byte slice.
func (x *Index) appendOnURLBytes(dst []Visit, url []byte, limit int) []Visit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return appendURL(dst, x.urls[string(url)], limit)
}

func appendURL(dst []Visit, ul *urlList, limit int) []Visit {
	if ul == nil {
		return dst
	}
	if limit <= 0 || limit > ul.s.n {
		limit = ul.s.n
	}
	dst = growVisits(dst, limit)
	for r := ul.s.last(); r != nil && limit > 0; r = r.u0.prev {
		dst = append(dst, Visit{User: r.user, URL: ul.name, Time: time.UnixMilli(r.t)})
		limit--
	}
	return dst
}
