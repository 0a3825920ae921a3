package appcache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/consistenthash"
	pb "github.com/golang/groupcache/groupcachepb"

	"github.com/peerscale/peerscale/bus"
)

// Errors.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("appcache: closed")
	// ErrTooLarge is returned when a peer's value exceeds MaxValueSize.
	ErrTooLarge = errors.New("appcache: value too large")
	// ErrBadMessage wraps every malformed bus message.
	ErrBadMessage = errors.New("appcache: malformed message")
)

// Getter loads a value that is not cached anywhere in the cluster, e.g. from
// the database. It runs on the member that owns key.
type Getter interface {
	Get(ctx context.Context, key string) ([]byte, error)
}

// GetterFunc adapts a function to Getter.
type GetterFunc func(ctx context.Context, key string) ([]byte, error)

// Get calls f.
func (f GetterFunc) Get(ctx context.Context, key string) ([]byte, error) { return f(ctx, key) }

// Config configures a Cache. The zero value is valid except that peers can
// fetch from this member only if SelfURL is set and Handler is served there.
type Config struct {
	// SelfURL is the base URL at which this member serves Handler, e.g.
	// "http://10.0.0.5:8081/_appcache". It is announced to the other
	// members over the bus. Empty means this member fills every key
	// itself and is never asked by the others.
	SelfURL string
	// CacheBytes bounds the values kept in memory. Zero means 64 MiB.
	CacheBytes int64
	// MaxValueSize bounds a value fetched from a peer. Zero means 16 MiB.
	MaxValueSize int64
	// Client fetches from peers. Nil means a client with a 10 s timeout.
	Client *http.Client
	// Bus carries peer announcements and generation bumps over Group.
	// Nil means a single member with local generations.
	Bus bus.Bus
	// Group is the bus group. Empty means "appcache." + the cache name.
	Group string
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Stats is a snapshot of a Cache's counters and of groupcache's.
type Stats struct {
	Gets         uint64 // Get calls
	Loads        uint64 // Getter calls on this member
	PeerFetches  uint64 // values fetched from the owning peer
	PeerServed   uint64 // values served to peers
	Bypassed     uint64 // Gets answered by the Getter while the generation was unknown
	Bumps        uint64 // generation changes applied
	Generation   uint64 // the current generation (0: unknown yet)
	Peers        int    // members whose URL is known
	MainBytes    int64  // groupcache main cache bytes
	HotBytes     int64  // groupcache hot cache bytes
	CacheHits    int64  // groupcache cache hits
	CacheEvicted int64  // groupcache evictions
}

// process-wide state that groupcache imposes: one peer picker for the whole
// process, and groups that can never be removed. Every Cache registers here
// under its own unique groupcache group name.
var registry = struct {
	once sync.Once
	mu   sync.Mutex
	m    map[string]*Cache
}{m: make(map[string]*Cache)}

func pickerFor(group string) groupcache.PeerPicker {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if c := registry.m[group]; c != nil {
		return c
	}
	return groupcache.NoPeers{}
}

// Cache is an application-level cache for expensive queries, filled once
// across the cluster by the member that owns each key (consistent hashing
// over the members of the bus group), with cluster-wide invalidation by
// generation.
//
// All methods are safe for concurrent use.
type Cache struct {
	name   string
	gcName string
	getter Getter
	cfg    Config
	log    *slog.Logger
	group  *groupcache.Group
	g      bus.Group
	self   bus.MemberID

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	closed atomic.Bool

	gen atomic.Uint64

	mu       sync.Mutex
	view     *bus.View
	urls     map[bus.MemberID]string
	ring     *consistenthash.Map
	ringURLs map[string]string // ring entry -> peer URL
	waits    map[uint64]chan struct{}
	nextID   uint64

	gets, loads, peerFetches, peerServed, bypassed, bumps atomic.Uint64
}

// New creates the cache called name (the same on every member).
func New(name string, getter Getter, cfg Config) (*Cache, error) {
	if name == "" || strings.ContainsAny(name, "/ ") || getter == nil {
		return nil, fmt.Errorf("appcache: invalid name %q or nil getter", name)
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 64 << 20
	}
	if cfg.MaxValueSize <= 0 {
		cfg.MaxValueSize = 16 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Group == "" {
		cfg.Group = "appcache." + name
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Cache{name: name, getter: getter, cfg: cfg, log: log.With("component", "appcache", "cache", name),
		urls: make(map[bus.MemberID]string), waits: make(map[uint64]chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.gcName = name + "#" + strconv.FormatUint(rand.Uint64(), 16)
	if cfg.Bus == nil {
		c.gen.Store(1)
	} else {
		c.self = cfg.Bus.Self()
	}
	c.rebuildRingLocked()
	registry.once.Do(func() { groupcache.RegisterPerGroupPeerPicker(pickerFor) })
	registry.mu.Lock()
	registry.m[c.gcName] = c
	registry.mu.Unlock()
	c.group = groupcache.NewGroup(c.gcName, cfg.CacheBytes, groupcache.GetterFunc(c.load))
	if cfg.Bus != nil {
		jctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
		g, err := cfg.Bus.Join(jctx, cfg.Group)
		cancel()
		if err != nil {
			c.unregister()
			return nil, fmt.Errorf("appcache: join %s: %w", cfg.Group, err)
		}
		c.g = g
		c.wg.Go(c.recvLoop)
	}
	return c, nil
}

func (c *Cache) unregister() {
	registry.mu.Lock()
	delete(registry.m, c.gcName)
	registry.mu.Unlock()
}

// load is groupcache's getter: it strips the generation from the key.
func (c *Cache) load(ctx context.Context, key string, dest groupcache.Sink) error {
	_, k, ok := strings.Cut(key, "/")
	if !ok {
		return fmt.Errorf("appcache: key %q without generation", key)
	}
	c.loads.Add(1)
	v, err := c.getter.Get(ctx, k)
	if err != nil {
		return err
	}
	return dest.SetBytes(v)
}

// Get returns the value for key: from memory, from the member that owns
// key, or from the Getter on the owner. The returned slice is the caller's.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	c.gets.Add(1)
	gen := c.gen.Load()
	if gen == 0 {
		c.bypassed.Add(1)
		c.loads.Add(1)
		return c.getter.Get(ctx, key)
	}
	var v []byte
	err := c.group.Get(ctx, strconv.FormatUint(gen, 16)+"/"+key, groupcache.AllocatingByteSliceSink(&v))
	return v, err
}

// Generation returns the current generation; 0 until a member that joined
// a running group has learnt it.
func (c *Cache) Generation() uint64 { return c.gen.Load() }

// InvalidateAll makes every value cached so far unreachable on every
// member, by moving the cluster to a new generation (groupcache cannot
// remove values; the old ones age out of its LRU). It returns once this
// member uses the new generation; the others switch when it reaches them.
func (c *Cache) InvalidateAll(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	next := newGeneration(c.gen.Load())
	if c.g == nil {
		c.raise(next)
		return nil
	}
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	done := make(chan struct{})
	c.waits[id] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waits, id)
		c.mu.Unlock()
	}()
	if err := c.g.Send(ctx, bus.FIFO, encode(msg{typ: msgGen, id: id, gen: next})); err != nil {
		return fmt.Errorf("appcache: invalidate: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// newGeneration returns a generation above old: counter+1 in the high 40
// bits, random low bits to tell concurrent bumps apart.
func newGeneration(old uint64) uint64 {
	return (old>>24+1)<<24 | rand.Uint64N(1<<24)
}

// PickPeer implements groupcache.PeerPicker with a consistent hash over
// the members that announced their URL.
func (c *Cache) PickPeer(key string) (groupcache.ProtoGetter, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil || c.ring.IsEmpty() {
		return nil, false
	}
	owner := c.ring.Get(key)
	u := c.ringURLs[owner]
	if u == "" || owner == c.self.String() {
		return nil, false
	}
	return &peer{c: c, base: u}, true
}

func (c *Cache) rebuildRingLocked() {
	c.ring = consistenthash.New(64, nil)
	c.ringURLs = make(map[string]string)
	for m, u := range c.urls {
		if c.view != nil && !c.view.Contains(m) {
			continue
		}
		c.ring.Add(m.String())
		c.ringURLs[m.String()] = u
	}
}

type peer struct {
	c    *Cache
	base string
}

func (p *peer) Get(ctx context.Context, in *pb.GetRequest, out *pb.GetResponse) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/"+url.PathEscape(p.c.name)+"/"+url.PathEscape(in.GetKey()), nil)
	if err != nil {
		return err
	}
	resp, err := p.c.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("appcache: peer %s: %w", p.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("appcache: peer %s: %s", p.base, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.c.cfg.MaxValueSize+1))
	if err != nil {
		return fmt.Errorf("appcache: peer %s: %w", p.base, err)
	}
	if int64(len(b)) > p.c.cfg.MaxValueSize {
		return ErrTooLarge
	}
	p.c.peerFetches.Add(1)
	out.Value = b
	return nil
}

// Handler serves this member's values to its peers, at SelfURL.
func (c *Cache) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := r.URL.EscapedPath()
		if i := strings.LastIndex(rest, "/"+url.PathEscape(c.name)+"/"); i >= 0 {
			rest = rest[i+len(url.PathEscape(c.name))+2:]
		} else {
			http.NotFound(w, r)
			return
		}
		key, err := url.PathUnescape(rest)
		if err != nil || c.closed.Load() {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		var v []byte
		if err := c.group.Get(r.Context(), key, groupcache.AllocatingByteSliceSink(&v)); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c.peerServed.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	})
}

// Bus messages:
//
//	hello: 'H' url
//	gen:   'G' id:uvarint gen:uvarint
const (
	msgHello = 'H'
	msgGen   = 'G'
)

type msg struct {
	typ byte
	id  uint64
	gen uint64
	url string
}

func encode(m msg) []byte {
	b := []byte{m.typ}
	switch m.typ {
	case msgHello:
		b = append(b, m.url...)
	case msgGen:
		b = binary.AppendUvarint(b, m.id)
		b = binary.AppendUvarint(b, m.gen)
	}
	return b
}

func decode(b []byte) (msg, error) {
	if len(b) == 0 {
		return msg{}, fmt.Errorf("%w: empty", ErrBadMessage)
	}
	m := msg{typ: b[0]}
	b = b[1:]
	switch m.typ {
	case msgHello:
		u, err := url.Parse(string(b))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(b) > 2048 {
			return msg{}, fmt.Errorf("%w: peer url %q", ErrBadMessage, b)
		}
		m.url = string(b)
	case msgGen:
		var n int
		m.id, n = binary.Uvarint(b)
		if n <= 0 || n != len(binary.AppendUvarint(nil, m.id)) {
			return msg{}, fmt.Errorf("%w: id", ErrBadMessage)
		}
		b = b[n:]
		m.gen, n = binary.Uvarint(b)
		if n <= 0 || n != len(b) || n != len(binary.AppendUvarint(nil, m.gen)) || m.gen == 0 {
			return msg{}, fmt.Errorf("%w: generation", ErrBadMessage)
		}
	default:
		return msg{}, fmt.Errorf("%w: type %#x", ErrBadMessage, m.typ)
	}
	return m, nil
}

func (c *Cache) recvLoop() {
	for {
		ev, err := c.g.Recv(c.ctx)
		if err != nil {
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			c.onView(ev)
		case *bus.Message:
			m, err := decode(ev.Data)
			if err != nil {
				c.log.Warn("ignoring message", "sender", ev.Sender.String(), "err", err)
				continue
			}
			c.onMessage(ev.Sender, m)
		}
	}
}

func (c *Cache) onView(v *bus.View) {
	c.mu.Lock()
	first := c.view == nil
	c.view = v.Clone()
	for m := range c.urls {
		if !v.Contains(m) {
			delete(c.urls, m)
		}
	}
	c.rebuildRingLocked()
	c.mu.Unlock()
	others := false
	for _, m := range v.Joined {
		others = others || m != c.self
	}
	if first && len(v.Members) == 1 && c.gen.Load() == 0 {
		c.gen.Store(newGeneration(0)) // alone: start the cluster's first generation
	}
	if !others && !first {
		return
	}
	// Announce ourselves to the newcomers; the leader tells them the
	// generation, or starts a new one after a merge (the sides may have
	// bumped separately).
	var out [][]byte
	if c.cfg.SelfURL != "" {
		out = append(out, encode(msg{typ: msgHello, url: c.cfg.SelfURL}))
	}
	switch g := c.gen.Load(); {
	case v.IsMerge():
		// Every member starts a generation above its own: the highest of
		// them is above both sides' and was made after the merge.
		g = newGeneration(g)
		c.raise(g)
		out = append(out, encode(msg{typ: msgGen, gen: g}))
	case v.IsLeader() && g != 0:
		out = append(out, encode(msg{typ: msgGen, gen: g}))
	}
	if len(out) > 0 {
		c.wg.Go(func() {
			for _, b := range out {
				if err := c.g.Send(c.ctx, bus.FIFO, b); err != nil {
					return
				}
			}
		})
	}
}

func (c *Cache) onMessage(from bus.MemberID, m msg) {
	switch m.typ {
	case msgHello:
		c.mu.Lock()
		if c.view == nil || c.view.Contains(from) {
			c.urls[from] = m.url
			c.rebuildRingLocked()
		}
		c.mu.Unlock()
	case msgGen:
		c.raise(m.gen)
		if from == c.self && m.id != 0 {
			c.mu.Lock()
			if ch := c.waits[m.id]; ch != nil {
				close(ch)
				delete(c.waits, m.id)
			}
			c.mu.Unlock()
		}
	}
}

// raise adopts g if it is above the current generation.
func (c *Cache) raise(g uint64) {
	for {
		cur := c.gen.Load()
		if g <= cur {
			return
		}
		if c.gen.CompareAndSwap(cur, g) {
			c.bumps.Add(1)
			return
		}
	}
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	peers := len(c.ringURLs)
	c.mu.Unlock()
	main := c.group.CacheStats(groupcache.MainCache)
	hot := c.group.CacheStats(groupcache.HotCache)
	return Stats{
		Gets: c.gets.Load(), Loads: c.loads.Load(), PeerFetches: c.peerFetches.Load(), PeerServed: c.peerServed.Load(),
		Bypassed: c.bypassed.Load(), Bumps: c.bumps.Load(), Generation: c.gen.Load(), Peers: peers,
		MainBytes: main.Bytes, HotBytes: hot.Bytes, CacheHits: main.Hits + hot.Hits, CacheEvicted: main.Evictions + hot.Evictions,
	}
}

// Close leaves the bus group and waits for the goroutines of the Cache.
// The groupcache group itself stays registered in the process (groupcache
// has no removal); it answers nothing once closed. Close is idempotent.
func (c *Cache) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.cancel()
		if c.g != nil {
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.g.Leave(lctx)
			cancel()
		}
		c.wg.Wait()
		c.unregister()
	})
	return nil
}
