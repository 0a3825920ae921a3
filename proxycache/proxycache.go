package proxycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// Errors.
var (
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("proxycache: closed")
	// ErrUnknownHost is returned (and answered as 403) for a host that is
	// not configured: the cache is not an open proxy.
	ErrUnknownHost = errors.New("proxycache: host not configured")
	// ErrBadOrigin is returned by New for an origin URL it cannot use.
	ErrBadOrigin = errors.New("proxycache: invalid origin")
	// ErrBadPurge is returned for a purge target that is not a URL of a
	// configured host.
	ErrBadPurge = errors.New("proxycache: invalid purge target")
)

// Config configures a Cache. The zero value is valid; each field documents
// its default.
type Config struct {
	// Transport performs origin requests. Nil means a clone of
	// http.DefaultTransport that keeps up to 64 idle connections per origin
	// and does not decompress bodies.
	Transport http.RoundTripper
	// MaxBytes bounds the on-disk store (bodies and sidecars); the least
	// recently used entries are evicted past it. Zero means 1 GiB.
	MaxBytes int64
	// MaxObjectSize is the largest body stored; larger responses are passed
	// through. Zero means MaxBytes/8.
	MaxObjectSize int64
	// MemoryObjectSize is the largest body also kept in memory once it was
	// hit twice. Such a hit touches no file: the body file is checked
	// (one stat) at most once a second, so a body deleted or replaced by
	// hand becomes a miss within a second. Zero means 16 KiB; negative
	// keeps no body in memory.
	MemoryObjectSize int64
	// MemoryBytes bounds the bodies kept in memory. Zero means 64 MiB.
	MemoryBytes int64
	// InactiveTimeout removes entries not used for that long, fresh or not.
	// Zero means 24 hours; negative disables it.
	InactiveTimeout time.Duration
	// HeuristicFraction is the share of the time since Last-Modified used
	// as freshness lifetime when a response has no explicit one and its
	// status allows a heuristic (RFC 9111 §4.2.2). Zero means 0.1; negative
	// disables heuristic freshness.
	HeuristicFraction float64
	// FillTimeout bounds one origin fetch that fills the cache, body
	// included; the fill runs on its own, independent of the client that
	// caused it. Zero means 5 minutes.
	FillTimeout time.Duration
	// PreserveHost sends the client's Host to the origin. False means the
	// origin URL's host, as httputil.ProxyRequest.SetURL does.
	PreserveHost bool
	// Name is the cache's name in Cache-Status fields (RFC 9211). Empty
	// means "proxycache".
	Name string

	// Bus, when set, makes purges cluster-wide: the Cache joins Group and
	// applies every member's purges. Nil means purges are local.
	Bus bus.Bus
	// Group is the bus group of the purge protocol. Empty means
	// "proxycache".
	Group string
	// PurgeLog is how many recent purges each member remembers, to tell
	// members that were away (restarted, partitioned) what they missed.
	// Zero means 10000.
	PurgeLog int
	// PurgeWaitAll makes PurgeURL, PurgePrefix and PurgeAll return only
	// once every member of the group's view has applied the purge (or the
	// context ends). False means they return once this member applied it;
	// the others apply it as it reaches them.
	PurgeWaitAll bool
	// Authorize decides whether a PURGE request or an admin API request may
	// proceed. Nil means only requests from loopback addresses are allowed.
	Authorize func(r *http.Request) bool

	// ErrorHandler answers requests whose origin fetch failed and for which
	// no stale entry may be served. Nil means 502 Bad Gateway (504 Gateway
	// Timeout for timeouts), like httputil.ReverseProxy.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Cache is a shared HTTP cache (RFC 9111) in front of configured origins,
// storing objects on disk as <root>/<host>/<path>. It is an http.Handler.
//
// All methods are safe for concurrent use.
type Cache struct {
	cfg       Config
	log       *slog.Logger
	transport http.RoundTripper
	origins   map[string]*origin
	store     *store
	st        counters
	cl        *cluster

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	fillWG sync.WaitGroup
	trash  chan struct{}

	mu      sync.Mutex
	fills   map[string]*fill
	closing bool
	closed  atomic.Bool
	once    sync.Once
}

type origin struct {
	host string // configured host name: the store directory and key prefix
	url  *url.URL
	rp   *httputil.ReverseProxy
}

type ctxKey struct{}

// New opens (or creates) the store at root, rebuilds its index from the
// sidecar files found there and starts serving for the hosts in origins:
// a request whose Host (without port, case-insensitive) or Host:port is a
// key of origins is served from that origin URL; any other is refused.
func New(root string, origins map[string]*url.URL, cfg Config) (*Cache, error) {
	if len(origins) == 0 {
		return nil, fmt.Errorf("%w: no origins", ErrBadOrigin)
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 30
	}
	if cfg.MaxObjectSize <= 0 {
		cfg.MaxObjectSize = cfg.MaxBytes / 8
	}
	if cfg.MemoryObjectSize == 0 {
		cfg.MemoryObjectSize = 16 << 10
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = 64 << 20
	}
	if cfg.InactiveTimeout == 0 {
		cfg.InactiveTimeout = 24 * time.Hour
	}
	if cfg.HeuristicFraction == 0 {
		cfg.HeuristicFraction = 0.1
	} else if cfg.HeuristicFraction < 0 {
		cfg.HeuristicFraction = 0
	}
	if cfg.FillTimeout <= 0 {
		cfg.FillTimeout = 5 * time.Minute
	}
	if cfg.Name == "" {
		cfg.Name = "proxycache"
	}
	if cfg.Group == "" {
		cfg.Group = "proxycache"
	}
	if cfg.Authorize == nil {
		cfg.Authorize = loopbackOnly
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Cache{cfg: cfg, log: log.With("component", "proxycache"), fills: make(map[string]*fill), trash: make(chan struct{}, 1)}
	c.transport = cfg.Transport
	if c.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.DisableCompression = true
		c.transport = t
	}
	c.origins = make(map[string]*origin, len(origins))
	for h, u := range origins {
		h = strings.ToLower(h)
		if h == "" || strings.ContainsAny(h, "/ \t") || u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: %q -> %v", ErrBadOrigin, h, u)
		}
		c.origins[h] = c.newOrigin(h, u)
	}
	st, err := openStore(root, cfg.MaxBytes, c.log, &c.st)
	if err != nil {
		return nil, err
	}
	c.store = st
	if cfg.MemoryObjectSize > 0 {
		st.memObj, st.memMax = cfg.MemoryObjectSize, cfg.MemoryBytes
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.Bus != nil {
		cl, err := startCluster(cfg.Bus, cfg.Group, cfg.PurgeWaitAll, cfg.PurgeLog, c.log, c.hooks())
		if err != nil {
			c.cancel()
			return nil, err
		}
		c.cl = cl
	}
	c.wg.Go(c.janitor)
	return c, nil
}

func loopbackOnly(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Cache) newOrigin(host string, u *url.URL) *origin {
	o := &origin{host: host, url: u}
	o.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			pr.SetXForwarded()
			if c.cfg.PreserveHost {
				pr.Out.Host = pr.In.Host
			}
			pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), ctxKey{}, pr.In))
		},
		Transport:      c.transport,
		ModifyResponse: c.afterPass,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			c.fail(w, r, err)
		},
		ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
	}
	return o
}

// afterPass runs on responses passed through: it invalidates the target
// after a successful unsafe request (RFC 9111 §4.4) and marks the response.
func (c *Cache) afterPass(resp *http.Response) error {
	in, _ := resp.Request.Context().Value(ctxKey{}).(*http.Request)
	if in == nil {
		return nil
	}
	resp.Header.Add("Cache-Status", c.cfg.Name+"; fwd=bypass")
	if safeMethod(in.Method) || resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return nil
	}
	o := c.originFor(in)
	if o == nil {
		return nil
	}
	c.invalidate(o, in.URL)
	for _, f := range []string{"Location", "Content-Location"} {
		if v := resp.Header.Get(f); v != "" {
			if u, err := in.URL.Parse(v); err == nil && (u.Host == "" || strings.EqualFold(u.Host, in.Host)) {
				c.invalidate(o, u)
			}
		}
	}
	return nil
}

// invalidate removes the entry for u at once and, with a bus, tells the
// other members without waiting (request paths never block on the bus).
func (c *Cache) invalidate(o *origin, u *url.URL) {
	t := purgeTarget{kind: purgeURL, host: o.host, path: requestURI(u)}
	if n := c.store.purgeKey(t.host + t.path); n > 0 {
		c.st.purgedObjects.Add(uint64(n))
	}
	c.removePurgedFiles()
	c.st.purges.Add(1)
	if c.cl != nil {
		c.cl.announce(t)
	}
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// originFor returns the configured origin for the request's host, or nil.
func (c *Cache) originFor(r *http.Request) *origin {
	h := strings.ToLower(r.Host)
	if o := c.origins[h]; o != nil {
		return o
	}
	if host, _, err := net.SplitHostPort(h); err == nil {
		return c.origins[strings.Trim(host, "[]")]
	}
	return nil
}

// requestURI is the key part after the host: escaped path and query.
func requestURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	} else if p[0] != '/' {
		p = "/" + p
	}
	if u.RawQuery != "" || u.ForceQuery {
		p += "?" + u.RawQuery
	}
	return p
}

// ServeHTTP serves GET and HEAD from the cache, forwards other methods to
// the origin (invalidating the target after unsafe ones), and handles the
// PURGE method through Config.Authorize.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.closed.Load() {
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	o := c.originFor(r)
	if o == nil {
		c.st.refused.Add(1)
		http.Error(w, ErrUnknownHost.Error(), http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		c.serveCacheable(w, r, o)
	case "PURGE":
		c.servePurgeMethod(w, r, o)
	default:
		c.pass(w, r, o)
	}
}

func (c *Cache) pass(w http.ResponseWriter, r *http.Request, o *origin) {
	c.st.bypassed.Add(1)
	o.rp.ServeHTTP(w, r)
}

func (c *Cache) fail(w http.ResponseWriter, r *http.Request, err error) {
	if c.cfg.ErrorHandler != nil {
		c.cfg.ErrorHandler(w, r, err)
		return
	}
	code := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusGatewayTimeout
	}
	c.log.Warn("origin request failed", "url", r.URL.String(), "host", r.Host, "err", err)
	w.Header().Set("Cache-Status", c.cfg.Name+"; fwd=miss; detail=\"origin error\"")
	w.WriteHeader(code)
}

// unlinkDelay is how long after a purge its files are removed (in
// batches) when the purge came through the bus.
const unlinkDelay = 20 * time.Millisecond

// janitor enforces the inactive timeout and deletes purged trees.
func (c *Cache) janitor() {
	every := time.Minute
	if t := c.cfg.InactiveTimeout; t > 0 && t/4 < every {
		every = max(t/4, time.Second)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	stamp := time.NewTicker(stampEvery)
	defer stamp.Stop()
	c.stamp()
	// Files of purged entries go in batches, a little after the purge:
	// the disk work then does not compete with the purge messages for
	// the CPU.
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	defer batch.Stop()
	armed := false
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-stamp.C:
			c.stamp()
		case <-c.trash:
			if !armed {
				batch.Reset(unlinkDelay)
				armed = true
			}
		case <-batch.C:
			armed = false
			c.store.removeFiles()
			if c.store.trashed.Load() {
				c.store.emptyTrash()
			}
		case now := <-tick.C:
			if t := c.cfg.InactiveTimeout; t > 0 {
				c.store.expire(now.Add(-t))
			}
			c.store.removeFiles()
			c.store.emptyTrash()
		}
	}
}

// removePurgedFiles removes the files of the entries just purged: at once
// on a cache alone, and with a cluster in a batch a little later, so that
// the disk work does not compete with the purge messages.
func (c *Cache) removePurgedFiles() {
	if c.cl == nil {
		c.store.removeFiles()
		return
	}
	c.kickTrash()
}

func (c *Cache) kickTrash() {
	select {
	case c.trash <- struct{}{}:
	default:
	}
}

// Shutdown stops accepting fills, waits for the fills under way (bounded by
// ctx), leaves the purge group and releases everything, like Close.
func (c *Cache) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		c.fillWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return c.Close()
	case <-ctx.Done():
	}
	err := ctx.Err()
	return errors.Join(err, c.Close())
}

// Close stops the Cache at once: fills under way are cancelled, the purge
// group is left, and every goroutine the Cache started has exited when it
// returns. Close is idempotent; afterwards requests get 503 and methods
// return ErrClosed.
func (c *Cache) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.cancel()
		if c.cl != nil {
			c.cl.close()
		}
		c.wg.Wait()
		c.stamp()
		c.store.removeFiles()
		c.store.emptyTrash()
	})
	return nil
}
