package onlinebench

// towersIndex is online.Index as it was before it moved onto
// skiplist.Table: the record holds both skiplist towers itself (level 0
// of each inline, the taller levels in one slice). It is kept here so that
// one benchmark run measures the index before and after.

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

type towersIndex struct {
	window   int64 // milliseconds
	now      func() time.Time
	maxUsers int

	mu     sync.RWMutex
	users  map[string]*trec
	urls   map[string]*turlList
	all    tslist
	cutoff atomic.Int64 // hits at or before this are expired; only grows
	rng    uint64
	st     towersStats
	count  atomic.Int64
}

// newTowersIndex returns an empty towersIndex.
func newTowersIndex(window time.Duration, now func() time.Time) *towersIndex {
	cfg := struct {
		Window   time.Duration
		Now      func() time.Time
		MaxUsers int
	}{window, now, 10_000_000}
	x := &towersIndex{
		window:   max(cfg.Window.Milliseconds(), 1),
		now:      cfg.Now,
		maxUsers: cfg.MaxUsers,
		users:    make(map[string]*trec),
		urls:     make(map[string]*turlList),
		all:      tslist{kind: tbyTime},
		rng:      rand.Uint64() | 1,
	}
	x.cutoff.Store(math.MinInt64)
	return x
}

// Window returns the configured window.
func (x *towersIndex) Window() time.Duration { return time.Duration(x.window) * time.Millisecond }

// randomHeight draws a tower height with P(h > k) = 4^-k.
func (x *towersIndex) randomHeight() int {
	r := x.rng
	r ^= r << 13
	r ^= r >> 7
	r ^= r << 17
	x.rng = r
	return min(1+bits.TrailingZeros64(r)/2, tmaxLevel)
}

// Hit records that user loaded url at t. It reports whether the hit was
// applied: false when t is older than the user's last hit or at or before
// the cutoff of the last Expire.
func (x *towersIndex) Hit(user, url string, t time.Time) bool {
	ms := t.UnixMilli()
	x.mu.Lock()
	ok := x.hit(user, url, ms)
	x.mu.Unlock()
	return ok
}

// HitBytes is Hit for a user and URL held in byte slices (a network or log
// buffer) and a time in Unix milliseconds. It copies the bytes only for a
// user or URL it has not seen before.
func (x *towersIndex) HitBytes(user, url []byte, unixMilli int64) bool {
	x.mu.Lock()
	ok := x.hitBytes(user, url, unixMilli)
	x.mu.Unlock()
	return ok
}

func (x *towersIndex) hit(user, url string, ms int64) bool {
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

func (x *towersIndex) hitBytes(user, url []byte, ms int64) bool {
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
		x.move(r, ul, turlName(ul, url), ms)
		return true
	}
	ul := x.urls[string(url)]
	x.add(string(user), ul, turlName(ul, url), ms)
	return true
}

// turlName returns the name of ul, or url as a new string when ul is nil,
// so that a known URL costs no allocation.
func turlName(ul *turlList, url []byte) string {
	if ul != nil {
		return ul.name
	}
	return string(url)
}

// move relinks an existing user at (url, ms); ul is the URL's list if it
// exists.
func (x *towersIndex) move(r *trec, ul *turlList, url string, ms int64) {
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
			ul = &turlList{name: url, s: tslist{kind: tbyURL}}
		}
		x.urls[url] = ul
	} else if old != ul && old.s.n == 0 {
		delete(x.urls, old.name)
	}
	r.url, r.t = ul, ms
	x.all.insert(r)
	ul.s.insert(r)
}

func (x *towersIndex) add(user string, ul *turlList, url string, ms int64) {
	x.st.Hits++
	if len(x.users) >= x.maxUsers {
		x.drop(x.all.first())
		x.st.Evicted++
		x.count.Add(-1)
		ul = x.urls[url] // the eviction may have emptied it
	}
	if ul == nil {
		ul = &turlList{name: url, s: tslist{kind: tbyURL}}
		x.urls[url] = ul
	}
	r := &trec{user: user, url: ul, t: ms}
	if h := x.randomHeight(); h > 1 {
		r.up = make([]tlink, 2*(h-1))
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
func (x *towersIndex) Expire() int {
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
func (x *towersIndex) drop(r *trec) {
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
func (x *towersIndex) Count() int { return int(x.count.Load()) }

// Lookup returns user's last hit.
func (x *towersIndex) Lookup(user string) (visit, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := x.users[user]
	if r == nil {
		return visit{}, false
	}
	return r.visit(), true
}

func (r *trec) visit() visit {
	return visit{User: r.user, URL: r.url.name, Time: time.UnixMilli(r.t)}
}

// OnURL returns the users whose last hit was on url, newest first, at most
// limit of them (all of them when limit <= 0).
func (x *towersIndex) OnURL(url string, limit int) []visit {
	return x.AppendOnURL(nil, url, limit)
}

// AppendOnURL is OnURL appending to dst, so a caller reusing dst does not
// allocate.
func (x *towersIndex) AppendOnURL(dst []visit, url string, limit int) []visit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return tappendURL(dst, x.urls[url], limit)
}

// CountURL returns the number of users whose last hit was on url.
func (x *towersIndex) CountURL(url string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if ul := x.urls[url]; ul != nil {
		return ul.s.n
	}
	return 0
}

func tgrowVisits(dst []visit, n int) []visit {
	if cap(dst)-len(dst) < n {
		d := make([]visit, len(dst), len(dst)+n)
		copy(d, dst)
		dst = d
	}
	return dst
}

// Stats returns a snapshot of the index's counters.
func (x *towersIndex) Stats() towersStats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s := x.st
	s.Users = len(x.users)
	s.URLs = len(x.urls)
	return s
}

// lookupBytes is Lookup for a name in a byte slice, without allocating.
func (x *towersIndex) lookupBytes(user []byte) (url string, ms int64, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := x.users[string(user)]
	if r == nil {
		return "", 0, false
	}
	return r.url.name, r.t, true
}

// appendOnURLBytes is AppendOnURL for a URL in a byte slice.
func (x *towersIndex) appendOnURLBytes(dst []visit, url []byte, limit int) []visit {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return tappendURL(dst, x.urls[string(url)], limit)
}

func tappendURL(dst []visit, ul *turlList, limit int) []visit {
	if ul == nil {
		return dst
	}
	if limit <= 0 || limit > ul.s.n {
		limit = ul.s.n
	}
	dst = tgrowVisits(dst, limit)
	for r := ul.s.last(); r != nil && limit > 0; r = r.u0.prev {
		dst = append(dst, visit{User: r.user, URL: ul.name, Time: time.UnixMilli(r.t)})
		limit--
	}
	return dst
}

// tmaxLevel bounds tower heights. With p = 1/4, 16 levels serve 4^16 records.
const tmaxLevel = 16

// List kinds: which of a record's two towers a list uses.
const (
	tbyTime = 0
	tbyURL  = 1
)

// tlink is one level of a tower in one list.
type tlink struct {
	next, prev *trec // nil means the end of the list (the head for prev)
}

// trec is one tracked user.
type trec struct {
	user string
	url  *turlList
	t    int64 // last hit, Unix milliseconds
	t0   tlink // level 0 in the time list
	u0   tlink // level 0 in the URL's list
	// up holds levels 1..h-1 of both towers, interleaved: up[2(i-1)] is
	// level i of the time list, up[2(i-1)+1] level i of the URL list.
	up []tlink
}

func (r *trec) height() int { return 1 + len(r.up)/2 }

func (r *trec) lk(kind, level int) *tlink {
	if level == 0 {
		if kind == tbyTime {
			return &r.t0
		}
		return &r.u0
	}
	return &r.up[2*(level-1)+kind]
}

// tslist is a skiplist of records ordered by t; records with equal t keep
// the order in which they were linked. head[i].next is the first record at
// level i, head[i].prev the last.
type tslist struct {
	kind int
	n    int
	head []tlink
}

func (s *tslist) first() *trec {
	if len(s.head) == 0 {
		return nil
	}
	return s.head[0].next
}

func (s *tslist) last() *trec {
	if len(s.head) == 0 {
		return nil
	}
	return s.head[0].prev
}

// next returns the record after p at level i, p == nil meaning the head.
func (s *tslist) next(p *trec, i int) *trec {
	if p == nil {
		return s.head[i].next
	}
	return p.lk(s.kind, i).next
}

// insert links r after every record whose t is <= r.t. The search starts
// at the tail and climbs only as high as the distance back requires, so an
// append (the common case: hits arrive roughly in time order) takes
// O(height) and a record d places from the end O(log d) expected.
func (s *tslist) insert(r *trec) {
	h := r.height()
	for len(s.head) < h {
		s.head = append(s.head, tlink{})
	}
	var preds [tmaxLevel]*trec
	// Climb to the lowest level whose last record is not after r.
	top := 0
	for top < len(s.head) && s.head[top].prev != nil && s.head[top].prev.t > r.t {
		top++
	}
	var x *trec
	if top < len(s.head) {
		x = s.head[top].prev
		for i := top; i < h; i++ {
			preds[i] = s.head[i].prev
		}
	}
	for i := top - 1; i >= 0; i-- {
		for nx := s.next(x, i); nx != nil && nx.t <= r.t; nx = s.next(x, i) {
			x = nx
		}
		if i < h {
			preds[i] = x
		}
	}
	for i := range h {
		p := preds[i]
		nx := s.next(p, i)
		*r.lk(s.kind, i) = tlink{next: nx, prev: p}
		if p == nil {
			s.head[i].next = r
		} else {
			p.lk(s.kind, i).next = r
		}
		if nx == nil {
			s.head[i].prev = r
		} else {
			nx.lk(s.kind, i).prev = r
		}
	}
	s.n++
}

// remove unlinks r in O(height).
func (s *tslist) remove(r *trec) {
	for i := range r.height() {
		l := r.lk(s.kind, i)
		if l.prev == nil {
			s.head[i].next = l.next
		} else {
			l.prev.lk(s.kind, i).next = l.next
		}
		if l.next == nil {
			s.head[i].prev = l.prev
		} else {
			l.next.lk(s.kind, i).prev = l.prev
		}
		*l = tlink{}
	}
	for len(s.head) > 1 && s.head[len(s.head)-1].next == nil {
		s.head = s.head[:len(s.head)-1]
	}
	s.n--
}

// turlList is the list of the users whose last hit was on one URL.
type turlList struct {
	name string
	s    tslist
}

// towersStats are the counters of a towersIndex.
type towersStats struct {
	Users      int
	URLs       int
	Hits       uint64
	Stale      uint64
	OutOfOrder uint64
	Expired    uint64
	Evicted    uint64
}
