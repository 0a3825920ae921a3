package proxycache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// ErrBadKey is returned for a page key that is not a clean relative path.
var ErrBadKey = errors.New("proxycache: invalid page key")

// Generator produces a page. Generate writes the page for key to w; it is
// called once per key at a time, however many requests wait for it, and its
// ctx is bounded by PageConfig.GenerateTimeout and Close, not by a client.
type Generator interface {
	Generate(ctx context.Context, key string, w io.Writer) error
}

// GeneratorFunc adapts a function to Generator.
type GeneratorFunc func(ctx context.Context, key string, w io.Writer) error

// Generate calls f.
func (f GeneratorFunc) Generate(ctx context.Context, key string, w io.Writer) error {
	return f(ctx, key, w)
}

// PageConfig configures a PageCache. The zero value is valid; each field
// documents its default.
type PageConfig struct {
	// Key maps a request to a page key, a clean relative slash path such as
	// "items/12345.html". Nil means the URL path without its leading '/',
	// with "index.html" appended to paths ending in '/'.
	Key func(r *http.Request) string
	// GenerateTimeout bounds one run of the Generator. Zero means 1 minute.
	GenerateTimeout time.Duration
	// Bus, when set, makes Invalidate and InvalidateAll cluster-wide over
	// Group. Nil means they are local.
	Bus bus.Bus
	// Group is the bus group of invalidations. Empty means "pagecache".
	Group string
	// WaitAll makes Invalidate and InvalidateAll return only once every
	// member of the view applied them. False means once this member did.
	WaitAll bool
	// InvalidationLog is how many recent invalidations each member
	// remembers, to tell members that were away what they missed. Zero
	// means 10000.
	InvalidationLog int
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// PageStats is a snapshot of a PageCache's counters.
type PageStats struct {
	Hits          uint64 // pages served from their file
	Generated     uint64 // pages generated and written
	Coalesced     uint64 // requests that waited for another request's generation
	Discarded     uint64 // generations invalidated before they were written
	Errors        uint64 // generations that failed
	Invalidations uint64 // invalidations applied (keys and all)
}

// PageCache is the write-through page cache of the news site: a page is
// served from <dir>/<key> while that file exists; otherwise the Generator
// runs once, however many requests want the page, the page is written
// (temporary file, then rename) and served. Invalidate deletes a page, over
// the bus when configured, and a generation that began before an
// invalidation of its key is never written after it.
//
// All methods are safe for concurrent use.
type PageCache struct {
	dir string
	gen Generator
	cfg PageConfig
	log *slog.Logger
	cl  *cluster

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	once   sync.Once

	floor atomic.Int64 // pages written before it (unix ns) may have missed invalidations: generated again

	mu     sync.Mutex
	gens   map[string]*generation
	seq    uint64
	ring   [purgeRing]purgeRec
	trashN uint64

	hits, generated, coalesced, discarded, errs, invalidations atomic.Uint64
}

type generation struct {
	done   chan struct{}
	stored bool
	err    error
}

const (
	pageTmp   = ".tmp"
	pageTrash = ".trash"
	pageStamp = ".stamp"
)

// NewPageCache serves pages from dir, generating missing ones with gen.
func NewPageCache(dir string, gen Generator, cfg PageConfig) (*PageCache, error) {
	if gen == nil {
		return nil, errors.New("proxycache: nil Generator")
	}
	if cfg.GenerateTimeout <= 0 {
		cfg.GenerateTimeout = time.Minute
	}
	if cfg.Group == "" {
		cfg.Group = "pagecache"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	p := &PageCache{dir: dir, gen: gen, cfg: cfg, log: log.With("component", "proxycache/pages"), gens: make(map[string]*generation)}
	_ = os.RemoveAll(filepath.Join(dir, pageTmp))
	for _, d := range []string{dir, filepath.Join(dir, pageTmp), filepath.Join(dir, pageTrash)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("proxycache: pages: %w", err)
		}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.Bus != nil {
		cl, err := startCluster(cfg.Bus, cfg.Group, cfg.WaitAll, cfg.InvalidationLog, p.log, clusterHooks{
			apply:       p.apply,
			applyMissed: p.applyMissed,
			setFloor:    p.setFloor,
			restored:    p.restored,
			serves:      func(purgeTarget) bool { return true },
		})
		if err != nil {
			p.cancel()
			return nil, err
		}
		p.cl = cl
	}
	p.wg.Go(p.emptyTrash)
	return p, nil
}

// validKey reports whether key is a clean relative path that names a page
// and not the cache's own state.
func validKey(key string) bool {
	if key == "" || len(key) > 1024 || path.Clean(key) != key || path.IsAbs(key) || strings.ContainsAny(key, "\\\x00") {
		return false
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return false
		}
	}
	return true
}

func (p *PageCache) keyOf(r *http.Request) string {
	if p.cfg.Key != nil {
		return p.cfg.Key(r)
	}
	k := strings.TrimPrefix(r.URL.Path, "/")
	if k == "" || strings.HasSuffix(k, "/") {
		k += "index.html"
	}
	return k
}

// ServeHTTP serves GET and HEAD requests for the page named by PageConfig.Key.
func (p *PageCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key := p.keyOf(r)
	if !validKey(key) {
		http.NotFound(w, r)
		return
	}
	f, err := p.Open(r.Context(), key)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			p.log.Warn("page not served", "key", key, "err", err)
		}
		http.Error(w, "page unavailable", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "page unavailable", http.StatusServiceUnavailable)
		return
	}
	http.ServeContent(w, r, key, fi.ModTime(), f)
}

// Open returns the page file for key, generating it first if needed.
func (p *PageCache) Open(ctx context.Context, key string) (*os.File, error) {
	if !validKey(key) {
		return nil, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	name := filepath.Join(p.dir, filepath.FromSlash(key))
	for range 3 {
		if p.closed.Load() {
			return nil, ErrClosed
		}
		if f, err := os.Open(name); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.ModTime().UnixNano() >= p.floor.Load() {
				p.hits.Add(1)
				return f, nil
			}
			f.Close()
		}
		g := p.startGeneration(key, name)
		if g == nil {
			return nil, ErrClosed
		}
		select {
		case <-g.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if g.err != nil {
			return nil, g.err
		}
	}
	return nil, fmt.Errorf("proxycache: page %q invalidated while generating", key)
}

func (p *PageCache) startGeneration(key, name string) *generation {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return nil
	}
	if g := p.gens[key]; g != nil {
		p.coalesced.Add(1)
		return g
	}
	g := &generation{done: make(chan struct{})}
	p.gens[key] = g
	start := p.seq
	p.wg.Go(func() {
		g.stored, g.err = p.generate(key, name, start)
		p.mu.Lock()
		delete(p.gens, key)
		p.mu.Unlock()
		close(g.done)
	})
	return g
}

func (p *PageCache) generate(key, name string, start uint64) (bool, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.GenerateTimeout)
	defer cancel()
	tmp, err := os.CreateTemp(filepath.Join(p.dir, pageTmp), "page-*")
	if err != nil {
		p.errs.Add(1)
		return false, fmt.Errorf("proxycache: pages: %w", err)
	}
	err = p.gen.Generate(ctx, key, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		p.errs.Add(1)
		return false, fmt.Errorf("proxycache: generate %q: %w", key, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.invalidatedSinceLocked(start, key) {
		_ = os.Remove(tmp.Name())
		p.discarded.Add(1)
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		_ = os.Remove(tmp.Name())
		p.errs.Add(1)
		return false, fmt.Errorf("proxycache: pages: %w", err)
	}
	// The page's time is the generation's, on the clock the invalidation
	// catch-up compares with.
	now := time.Now()
	_ = os.Chtimes(tmp.Name(), now, now)
	if err := os.Rename(tmp.Name(), name); err != nil {
		_ = os.Remove(tmp.Name())
		p.errs.Add(1)
		return false, fmt.Errorf("proxycache: pages: %w", err)
	}
	p.generated.Add(1)
	return true, nil
}

func (p *PageCache) invalidatedSinceLocked(start uint64, key string) bool {
	if p.seq-start >= purgeRing {
		return true
	}
	for q := start + 1; q <= p.seq; q++ {
		if p.ring[q%purgeRing].matches(key) {
			return true
		}
	}
	return false
}

// Invalidate deletes the page for key, on every member when a bus is
// configured; the next request generates it again.
func (p *PageCache) Invalidate(ctx context.Context, key string) error {
	if !validKey(key) {
		return fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return p.send(ctx, purgeTarget{kind: purgeURL, host: "page", path: "/" + key})
}

// InvalidateAll deletes every page, on every member when a bus is
// configured.
func (p *PageCache) InvalidateAll(ctx context.Context) error {
	return p.send(ctx, purgeTarget{kind: purgeEvery})
}

func (p *PageCache) send(ctx context.Context, t purgeTarget) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if p.cl != nil {
		return p.cl.purge(ctx, t)
	}
	p.apply(t)
	return nil
}

func (p *PageCache) apply(t purgeTarget) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.invalidations.Add(1)
	if t.kind == purgeEvery {
		p.ring[p.seq%purgeRing] = purgeRec{seq: p.seq}
		des, _ := os.ReadDir(p.dir)
		for _, d := range des {
			if d.Name() == pageTmp || d.Name() == pageTrash || d.Name() == pageStamp {
				continue
			}
			p.trashN++
			_ = os.Rename(filepath.Join(p.dir, d.Name()),
				filepath.Join(p.dir, pageTrash, strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+strconv.FormatUint(p.trashN, 10)))
		}
		return
	}
	key := strings.TrimPrefix(t.path, "/")
	if !validKey(key) {
		return
	}
	p.ring[p.seq%purgeRing] = purgeRec{seq: p.seq, prefix: key, exact: true}
	if err := os.Remove(filepath.Join(p.dir, filepath.FromSlash(key))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.log.Warn("page not removed", "key", key, "err", err)
	}
}

// emptyTrash deletes what InvalidateAll moved aside, once a second.
func (p *PageCache) emptyTrash() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		if i%int(stampEvery/time.Second) == 0 {
			p.stamp()
		}
		des, _ := os.ReadDir(filepath.Join(p.dir, pageTrash))
		for _, d := range des {
			_ = os.RemoveAll(filepath.Join(p.dir, pageTrash, d.Name()))
		}
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stats returns a snapshot of the counters.
func (p *PageCache) Stats() PageStats {
	return PageStats{Hits: p.hits.Load(), Generated: p.generated.Load(), Coalesced: p.coalesced.Load(),
		Discarded: p.discarded.Load(), Errors: p.errs.Load(), Invalidations: p.invalidations.Load()}
}

// Close cancels generations under way, leaves the bus group and waits for
// every goroutine. It is idempotent.
func (p *PageCache) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed.Store(true)
		p.mu.Unlock()
		p.cancel()
		if p.cl != nil {
			p.cl.close()
		}
		p.wg.Wait()
		p.stamp()
	})
	return nil
}

// restored reports whether pages survive from an earlier run, and since
// when they may have missed invalidations.
func (p *PageCache) restored() (time.Time, bool) {
	des, _ := os.ReadDir(p.dir)
	for _, d := range des {
		if n := d.Name(); n != pageTmp && n != pageTrash && n != pageStamp {
			return readStamp(filepath.Join(p.dir, pageStamp), time.Now()), true
		}
	}
	return time.Time{}, false
}

// applyMissed removes the pages t names that were written before at (plus
// purgeSlack): an invalidation applied elsewhere at that time.
func (p *PageCache) applyMissed(t purgeTarget, at time.Time) {
	before := at.Add(purgeSlack)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	p.invalidations.Add(1)
	remove := func(name string) {
		if fi, err := os.Lstat(name); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(before) {
			_ = os.Remove(name)
		}
	}
	if t.kind == purgeEvery {
		p.ring[p.seq%purgeRing] = purgeRec{seq: p.seq}
		_ = filepath.WalkDir(p.dir, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && name != p.dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && name != filepath.Join(p.dir, pageStamp) {
				remove(name)
			}
			return nil
		})
		return
	}
	key := strings.TrimPrefix(t.path, "/")
	if !validKey(key) {
		return
	}
	p.ring[p.seq%purgeRing] = purgeRec{seq: p.seq, prefix: key, exact: true}
	remove(filepath.Join(p.dir, filepath.FromSlash(key)))
}

func (p *PageCache) setFloor(t time.Time) {
	var v int64
	if !t.IsZero() {
		v = t.UnixNano()
	}
	p.floor.Store(v)
}

func (p *PageCache) stamp() {
	now := time.Now()
	var unsynced time.Time
	if p.cl != nil {
		unsynced = p.cl.unsyncedSince(now)
	}
	if err := writeStamp(filepath.Join(p.dir, pageStamp), now, unsynced); err != nil {
		p.log.Warn("stamp not written", "err", err)
	}
}
