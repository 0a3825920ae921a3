package logsub

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
)

// OtherKey collects the hits of the keys (URLs, referrers, servers, virtual
// hosts) an Aggregator no longer has room to count one by one.
const OtherKey = "(other)"

// AggregatorConfig configures an Aggregator. The zero value is valid.
type AggregatorConfig struct {
	// Window is the span of the sliding window rates and top lists cover,
	// in whole seconds. Zero means 60 s.
	Window time.Duration
	// TopN is the length of the top URL and referrer lists. Zero means 10.
	TopN int
	// MaxKeys bounds the distinct URLs, referrers, servers and virtual hosts
	// counted per second (and servers and virtual hosts in the totals);
	// further ones count under OtherKey. Zero means 1000.
	MaxKeys int
}

// Counts are hit, byte and status-class counts.
type Counts struct {
	Hits, Bytes uint64
	// Status counts hits by status class: Status[1] is 1xx ... Status[5]
	// is 5xx; Status[0] counts statuses outside 100-599.
	Status [6]uint64
}

func (c *Counts) add(r *Record) {
	c.Hits++
	if r.Bytes > 0 {
		c.Bytes += uint64(r.Bytes)
	}
	cl := r.Status / 100
	if cl < 1 || cl > 5 {
		cl = 0
	}
	c.Status[cl]++
}

func (c *Counts) merge(o *Counts) {
	c.Hits += o.Hits
	c.Bytes += o.Bytes
	for i := range c.Status {
		c.Status[i] += o.Status[i]
	}
}

// Series is the traffic of one server or virtual host.
type Series struct {
	Name string
	// Window counts the hits in the sliding window; HitsPerSec and
	// BytesPerSec are its rates.
	Window                  Counts
	HitsPerSec, BytesPerSec float64
	// Total counts every hit since the Aggregator started.
	Total Counts
}

// Count is one entry of a top list.
type Count struct {
	Key  string
	Hits uint64
}

// Snapshot is what an Aggregator saw: rates over the sliding window and
// totals since it started.
type Snapshot struct {
	// Time is when the snapshot was taken; Window the span it covers.
	Time   time.Time
	Window time.Duration
	// All is every server together; Servers and Vhosts break it down,
	// busiest first.
	All     Series
	Servers []Series
	Vhosts  []Series
	// TopURLs and TopReferrers are the most requested URLs and the most
	// frequent referrers ("-" excluded) in the window.
	TopURLs, TopReferrers []Count
	// Dropped counts records a Monitor could not aggregate in time.
	Dropped uint64
}

type bucket struct {
	sec     int64
	all     Counts
	servers map[string]*Counts
	vhosts  map[string]*Counts
	urls    map[string]uint64
	refs    map[string]uint64
}

// Aggregator computes live traffic statistics from records: hits/s,
// bytes/s and status-class rates per server and per virtual host, and top
// URLs and referrers over a sliding window of one-second buckets. Memory
// is bounded by Window × MaxKeys. Its methods are safe for concurrent use.
type Aggregator struct {
	cfg          AggregatorConfig
	mu           sync.Mutex
	ring         []bucket
	first        int64 // second of the earliest observation, 0 before the first
	totalServers map[string]*Counts
	totalVhosts  map[string]*Counts
	all          Counts
}

// NewAggregator returns an empty Aggregator.
func NewAggregator(cfg AggregatorConfig) *Aggregator {
	if cfg.Window < time.Second {
		cfg.Window = 60 * time.Second
	}
	if cfg.TopN <= 0 {
		cfg.TopN = 10
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 1000
	}
	return &Aggregator{
		cfg:          cfg,
		ring:         make([]bucket, int(cfg.Window/time.Second)),
		totalServers: make(map[string]*Counts),
		totalVhosts:  make(map[string]*Counts),
	}
}

func bump[V any](m map[string]V, key string, max int, zero func() V) V {
	if v, ok := m[key]; ok {
		return v
	}
	if len(m) >= max {
		key = OtherKey
		if v, ok := m[key]; ok {
			return v
		}
	}
	v := zero()
	m[strings.Clone(key)] = v
	return v
}

// countKey counts one hit of key, under OtherKey once m holds max keys.
func countKey(m map[string]uint64, key string, max int) {
	if _, ok := m[key]; ok {
		m[key]++
	} else if len(m) < max {
		m[strings.Clone(key)] = 1
	} else {
		m[OtherKey]++
	}
}

// Observe counts r as received now. The Aggregator keeps no reference to r
// or its strings.
func (a *Aggregator) Observe(r *Record) { a.ObserveAt(r, time.Now()) }

// ObserveAt counts r as received at t.
func (a *Aggregator) ObserveAt(r *Record, t time.Time) {
	sec := t.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.first == 0 || sec < a.first {
		a.first = sec
	}
	b := &a.ring[int(sec%int64(len(a.ring)))]
	if b.sec != sec || b.servers == nil {
		*b = bucket{sec: sec, servers: map[string]*Counts{}, vhosts: map[string]*Counts{},
			urls: map[string]uint64{}, refs: map[string]uint64{}}
	}
	newCounts := func() *Counts { return new(Counts) }
	b.all.add(r)
	bump(b.servers, r.Server, a.cfg.MaxKeys, newCounts).add(r)
	bump(b.vhosts, r.Vhost, a.cfg.MaxKeys, newCounts).add(r)
	url := r.URL
	if url == "" {
		url = "-"
	}
	countKey(b.urls, url, a.cfg.MaxKeys)
	if r.Referer != "" && r.Referer != "-" {
		countKey(b.refs, r.Referer, a.cfg.MaxKeys)
	}
	a.all.add(r)
	bump(a.totalServers, r.Server, a.cfg.MaxKeys, newCounts).add(r)
	bump(a.totalVhosts, r.Vhost, a.cfg.MaxKeys, newCounts).add(r)
}

// Snapshot returns the statistics as of now.
func (a *Aggregator) Snapshot() Snapshot { return a.SnapshotAt(time.Now()) }

// SnapshotAt returns the statistics of the window that ends at t.
func (a *Aggregator) SnapshotAt(t time.Time) Snapshot {
	now := t.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	// The window grows from the first observation to its full span, so
	// that rates are right from the start.
	win := a.cfg.Window
	if el := time.Duration(now-a.first+1) * time.Second; a.first != 0 && el > 0 && el < win {
		win = el
	}
	secs := win.Seconds()
	s := Snapshot{Time: t, Window: win, All: Series{Name: "all", Total: a.all}}
	servers := map[string]*Series{}
	vhosts := map[string]*Series{}
	urls := map[string]uint64{}
	refs := map[string]uint64{}
	for i := range a.ring {
		b := &a.ring[i]
		if b.servers == nil || b.sec <= now-int64(len(a.ring)) || b.sec > now {
			continue
		}
		s.All.Window.merge(&b.all)
		for k, c := range b.servers {
			series(servers, k).Window.merge(c)
		}
		for k, c := range b.vhosts {
			series(vhosts, k).Window.merge(c)
		}
		for k, n := range b.urls {
			urls[k] += n
		}
		for k, n := range b.refs {
			refs[k] += n
		}
	}
	for k, c := range a.totalServers {
		series(servers, k).Total = *c
	}
	for k, c := range a.totalVhosts {
		series(vhosts, k).Total = *c
	}
	finish := func(m map[string]*Series) []Series {
		out := make([]Series, 0, len(m))
		for _, v := range m {
			v.HitsPerSec = float64(v.Window.Hits) / secs
			v.BytesPerSec = float64(v.Window.Bytes) / secs
			out = append(out, *v)
		}
		slices.SortFunc(out, func(x, y Series) int {
			if c := cmp.Compare(y.Window.Hits, x.Window.Hits); c != 0 {
				return c
			}
			if c := cmp.Compare(y.Total.Hits, x.Total.Hits); c != 0 {
				return c
			}
			return cmp.Compare(x.Name, y.Name)
		})
		return out
	}
	s.All.HitsPerSec = float64(s.All.Window.Hits) / secs
	s.All.BytesPerSec = float64(s.All.Window.Bytes) / secs
	s.Servers = finish(servers)
	s.Vhosts = finish(vhosts)
	s.TopURLs = top(urls, a.cfg.TopN)
	s.TopReferrers = top(refs, a.cfg.TopN)
	return s
}

func series(m map[string]*Series, name string) *Series {
	s := m[name]
	if s == nil {
		s = &Series{Name: name}
		m[name] = s
	}
	return s
}

func top(m map[string]uint64, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{k, v})
	}
	slices.SortFunc(out, func(x, y Count) int {
		if c := cmp.Compare(y.Hits, x.Hits); c != 0 {
			return c
		}
		return cmp.Compare(x.Key, y.Key)
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
