package vip

import (
	"context"
	"log/slog"
)

// DryRun is a Backend that only logs what it would do, so that the
// protocol can run without privileges. The zero value logs to
// slog.Default().
type DryRun struct {
	// Logger receives one Info record per operation. Nil means
	// slog.Default().
	Logger *slog.Logger
}

func (d DryRun) log(ctx context.Context, op string, v VIF) {
	l := d.Logger
	if l == nil {
		l = slog.Default()
	}
	addrs := make([]string, len(v.Addrs))
	for i, a := range v.Addrs {
		addrs[i] = a.String()
	}
	l.InfoContext(ctx, "dry run", "component", "vip", "op", op, "vif", v.Name, "addrs", addrs)
}

// Acquire logs the acquisition.
func (d DryRun) Acquire(ctx context.Context, v VIF) error { d.log(ctx, "acquire", v); return nil }

// Announce logs the announcement.
func (d DryRun) Announce(ctx context.Context, v VIF) error { d.log(ctx, "announce", v); return nil }

// Release logs the release.
func (d DryRun) Release(ctx context.Context, v VIF) error { d.log(ctx, "release", v); return nil }
