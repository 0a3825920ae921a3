package proxycache

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// PurgerConfig configures a Purger. The zero value is valid.
type PurgerConfig struct {
	// Group is the caches' purge group. Empty means "proxycache".
	Group string
	// WaitAll makes each purge return only once every member of the group
	// applied it. False means once the bus delivered it back to the Purger.
	WaitAll bool
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Purger sends purges to the Caches of a bus group without caching anything
// itself: the purge CLI. It joins the group, so that it can collect
// acknowledgements, and applies nothing.
//
// All methods are safe for concurrent use.
type Purger struct {
	cl *cluster
}

// NewPurger joins the purge group on b.
func NewPurger(b bus.Bus, cfg PurgerConfig) (*Purger, error) {
	if cfg.Group == "" {
		cfg.Group = "proxycache"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cl, err := startCluster(b, cfg.Group, cfg.WaitAll, 0, log.With("component", "proxycache/purger"), clusterHooks{
		apply:       func(purgeTarget) {},
		applyMissed: func(purgeTarget, time.Time) {},
		setFloor:    func(time.Time) {},
		restored:    func() (time.Time, bool) { return time.Time{}, false },
		serves:      func(purgeTarget) bool { return false },
	})
	if err != nil {
		return nil, err
	}
	return &Purger{cl: cl}, nil
}

// PurgeURL purges rawURL (absolute, with the host the caches serve) on
// every member.
func (p *Purger) PurgeURL(ctx context.Context, rawURL string) error {
	t, err := wireTarget(rawURL, purgeURL)
	if err != nil {
		return err
	}
	return p.cl.purge(ctx, t)
}

// PurgePrefix purges every URL that starts with rawPrefix on every member.
func (p *Purger) PurgePrefix(ctx context.Context, rawPrefix string) error {
	t, err := wireTarget(rawPrefix, purgePrefix)
	if err != nil {
		return err
	}
	return p.cl.purge(ctx, t)
}

// PurgeAll empties every member's cache.
func (p *Purger) PurgeAll(ctx context.Context) error {
	return p.cl.purge(ctx, purgeTarget{kind: purgeEvery})
}

// Members returns the number of members in the group's current view, the
// Purger included.
func (p *Purger) Members() int {
	_, n := p.cl.pending()
	return n
}

// Close leaves the group. It is idempotent.
func (p *Purger) Close() error {
	p.cl.closeOnce.Do(p.cl.close)
	return nil
}

// wireTarget builds a purge target from a URL without knowing the
// configured hosts; each Cache maps the host to its own on receipt.
func wireTarget(raw string, kind purgeKind) (purgeTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return purgeTarget{}, fmt.Errorf("%w: %q", ErrBadPurge, raw)
	}
	p := requestURI(u)
	if kind == purgePrefix && u.RawQuery == "" && !u.ForceQuery {
		p = u.EscapedPath()
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
	}
	return purgeTarget{kind: kind, host: strings.ToLower(u.Host), path: p}, nil
}
