package online

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/skiplist"
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
	// 1.5 GB).
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
// One record per user is stored once, in a skiplist.Table, and ordered by
// two of its indexes: a skiplist.GroupIndex ordering the users of each URL
// by last hit, and a skiplist.Index of all users ordered by last hit. A Go
// map from user name to the record's entry is the third index (a
// deliberate choice: 60–80 ns per lookup against 1–1.6 µs for a skiplist
// at 100,000 users). Each entry carries its links in both orderings, so a
// hit that moves a user to another URL unlinks it from its old places
// through its own links and appends it to the new ones, and Expire pops
// the oldest users from the front of the time order: neither searches. A
// hit older than the newest records it joins (clock skew between web
// servers) is placed by one search from the back, O(log d) for d places.
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
	users  map[string]*skiplist.Entry[rec]
	urls   map[string]*urlList
	tab    *skiplist.Table[rec]
	byTime *skiplist.Index[rec, int64]
	byURL  *skiplist.GroupIndex[rec, int64]
	cutoff atomic.Int64 // hits at or before this are expired; only grows
	st     IndexStats
	count  atomic.Int64
}

// rec is one tracked user's last hit.
type rec struct {
	user string
	url  *urlList
	t    int64 // Unix milliseconds
}

// urlList is a URL and the users whose last hit was on it.
type urlList struct {
	name  string
	users skiplist.Group[rec]
}

func recTime(r *rec) int64               { return r.t }
func recURL(r *rec) *skiplist.Group[rec] { return &r.url.users }
func (r *rec) visit() Visit              { return Visit{User: r.user, URL: r.url.name, Time: time.UnixMilli(r.t)} }

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
	tab := skiplist.NewTable[rec]()
	x := &Index{
		window:   max(cfg.Window.Milliseconds(), 1),
		now:      cfg.Now,
		maxUsers: cfg.MaxUsers,
		users:    make(map[string]*skiplist.Entry[rec]),
		urls:     make(map[string]*urlList),
		tab:      tab,
		byTime:   skiplist.NewIndex(tab, skiplist.Multi, recTime),
		byURL:    skiplist.NewGroupIndex(tab, recURL, recTime),
	}
	x.cutoff.Store(math.MinInt64)
	return x
}

// Window returns the configured window.
func (x *Index) Window() time.Duration { return time.Duration(x.window) * time.Millisecond }

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
	if e := x.users[user]; e != nil {
		r := e.Value()
		if ms < r.t {
			x.st.OutOfOrder++
			return false
		}
		x.move(e, r, x.urls[url], url, ms)
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
	if e := x.users[string(user)]; e != nil {
		r := e.Value()
		if ms < r.t {
			x.st.OutOfOrder++
			return false
		}
		ul := r.url
		if ul.name != string(url) {
			ul = x.urls[string(url)]
		}
		x.move(e, r, ul, urlName(ul, url), ms)
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

// move updates the entry e of an existing user, whose record is r, to
// (url, ms); ul is the URL's list if it exists.
func (x *Index) move(e *skiplist.Entry[rec], r rec, ul *urlList, url string, ms int64) {
	x.st.Hits++
	old := r.url
	if ul == nil {
		if old.users.Len() == 1 {
			// The user is alone on its old URL: rename that list.
			delete(x.urls, old.name)
			old.name = url
			ul = old
		} else {
			ul = &urlList{name: url}
		}
		x.urls[url] = ul
	}
	r.url, r.t = ul, ms
	// The table has no unique index and e is in it: Update cannot fail.
	_ = x.tab.Update(e, r)
	if old != ul && old.users.Len() == 0 {
		delete(x.urls, old.name)
	}
}

func (x *Index) add(user string, ul *urlList, url string, ms int64) {
	x.st.Hits++
	if len(x.users) >= x.maxUsers {
		x.drop(x.byTime.Front())
		x.st.Evicted++
		x.count.Add(-1)
		ul = x.urls[url] // the eviction may have emptied it
	}
	if ul == nil {
		ul = &urlList{name: url}
		x.urls[url] = ul
	}
	e, _ := x.tab.Insert(rec{user: user, url: ul, t: ms}) // no unique index: cannot fail
	x.users[user] = e
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
	f := x.byTime.Front()
	none := f == nil || x.byTime.Key(f) > c
	x.mu.RUnlock()
	if none {
		return 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for e := x.byTime.Front(); e != nil && x.byTime.Key(e) <= c; e = x.byTime.Front() {
		x.drop(e)
		n++
	}
	if n > 0 {
		x.st.Expired += uint64(n)
		x.count.Add(-int64(n))
	}
	return n
}

// drop removes e from every index.
func (x *Index) drop(e *skiplist.Entry[rec]) {
	r := e.Value()
	x.tab.Remove(e)
	if r.url.users.Len() == 0 {
		delete(x.urls, r.url.name)
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
	e := x.users[user]
	if e == nil {
		return Visit{}, false
	}
	r := e.Value()
	return r.visit(), true
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
	return x.appendURL(dst, x.urls[url], limit)
}

// CountURL returns the number of users whose last hit was on url.
func (x *Index) CountURL(url string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if ul := x.urls[url]; ul != nil {
		return ul.users.Len()
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
	e := x.users[string(user)]
	if e == nil {
		return "", 0, false
	}
	r := e.Value()
	return r.url.name, r.t, true
}

// appendOnURLBytes is AppendOnURL for a URL in a byte slice.
func (x *Index) appendOnURLBytes(dst []Visit, url []byte, limit int) []Visit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.appendURL(dst, x.urls[string(url)], limit)
}

func (x *Index) appendURL(dst []Visit, ul *urlList, limit int) []Visit {
	if ul == nil {
		return dst
	}
	if n := ul.users.Len(); limit <= 0 || limit > n {
		limit = n
	}
	dst = growVisits(dst, limit)
	for e := x.byURL.Back(&ul.users); e != nil && limit > 0; e = x.byURL.Prev(e) {
		r := e.Value()
		dst = append(dst, Visit{User: r.user, URL: ul.name, Time: time.UnixMilli(r.t)})
		limit--
	}
	return dst
}
