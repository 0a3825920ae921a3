package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/logwire"
)

// DefaultMaxBacklogBytes bounds an Ingest's backlog when
// IngestConfig.MaxBacklogBytes is zero.
const DefaultMaxBacklogBytes = 64 << 20

// IngestConfig configures an Ingest. The zero value is valid; each field
// documents its default.
type IngestConfig struct {
	// MaxBacklogBytes bounds the messages received but not yet applied to
	// the index. A message that would exceed it is dropped and counted.
	// Zero means DefaultMaxBacklogBytes (64 MiB).
	MaxBacklogBytes int
	// UseRemoteAddr makes a record without an authenticated user count as
	// its client address. False (the default) skips such records and
	// counts them (IngestStats.Anonymous).
	UseRemoteAddr bool
	// KeepQuery keeps the query string in URLs. False (the default) keys
	// users by the path alone.
	KeepQuery bool
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// IngestStats is a snapshot of an Ingest's counters.
type IngestStats struct {
	Messages       uint64 // messages received on the log group
	Records        uint64 // records decoded
	Applied        uint64 // records that updated the index
	Ignored        uint64 // records the index ignored (older than the user's last hit, or expired)
	Anonymous      uint64 // records without a user (or URL), skipped
	BadMessages    uint64 // messages that failed to decode, skipped
	Dropped        uint64 // messages dropped because the backlog was full
	DroppedRecords uint64 // records in those messages
	Views          uint64 // membership views received
	Backlog        int    // bytes received and not yet applied
}

// Ingest feeds an Index from the access-log records that logpub publishers
// send to a log group (encoded as internal/logwire batches). It joins the
// group on a bus.Bus and owns two goroutines: one receives as fast as the
// bus delivers and queues the messages, the other decodes them and applies
// each batch under one lock of the index. Under a burst the queue grows, up
// to MaxBacklogBytes, and the index lags behind: publishers are never slowed
// by the index. Beyond that bound messages are dropped and counted.
// Undecodable messages are counted and skipped.
//
// The user of a record is its authenticated user (see UseRemoteAddr), its
// URL the request path (see KeepQuery), its time the request's start (the
// index clock when the record has none).
type Ingest struct {
	ix     *Index
	g      bus.Group
	cfg    IngestConfig
	log    *slog.Logger
	stop   context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}
	recvd  chan struct{} // closed when the receiver exits
	once   sync.Once
	closed atomic.Bool

	// beforeApply, if set (by tests), runs before each message is applied.
	beforeApply func()

	mu       sync.Mutex
	queue    [][]byte
	backlog  int
	dropping bool // the last message was dropped

	messages, records, applied, ignored, anonymous, bad, dropped, droppedRecs, views atomic.Uint64
}

// NewIngest joins group on b and starts feeding ix.
func NewIngest(ix *Index, b bus.Bus, group string, cfg IngestConfig) (*Ingest, error) {
	if err := bus.ValidateGroup(group); err != nil {
		return nil, fmt.Errorf("online: ingest: %w", err)
	}
	if cfg.MaxBacklogBytes <= 0 {
		cfg.MaxBacklogBytes = DefaultMaxBacklogBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := b.Join(ctx, group)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("online: join %s: %w", group, err)
	}
	in := &Ingest{
		ix:    ix,
		g:     g,
		cfg:   cfg,
		log:   cfg.Logger.With("component", "online.ingest", "group", group),
		stop:  cancel,
		wake:  make(chan struct{}, 1),
		recvd: make(chan struct{}),
	}
	in.wg.Go(func() { in.receive(ctx) })
	in.wg.Go(func() { in.apply(ctx) })
	return in, nil
}

func (in *Ingest) receive(ctx context.Context) {
	defer close(in.recvd)
	for {
		ev, err := in.g.Recv(ctx)
		if err != nil {
			if !errors.Is(err, bus.ErrClosed) && ctx.Err() == nil {
				in.log.Error("receive failed, no longer ingesting", "err", err)
			}
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			in.views.Add(1)
			in.log.Debug("view", "view", ev.String())
		case *bus.Message:
			in.messages.Add(1)
			in.enqueue(ev.Data)
		}
	}
}

// enqueue queues a message without copying it (bus payloads are
// read-only) and wakes the applier.
func (in *Ingest) enqueue(data []byte) {
	in.mu.Lock()
	if in.backlog+len(data) > in.cfg.MaxBacklogBytes {
		first := !in.dropping
		in.dropping = true
		in.mu.Unlock()
		in.dropped.Add(1)
		if h, _, err := logwire.DecodeBatchHeader(data); err == nil {
			in.droppedRecs.Add(uint64(h.Count))
		}
		if first {
			in.log.Warn("backlog full, dropping messages", "max_backlog_bytes", in.cfg.MaxBacklogBytes)
		}
		return
	}
	if in.dropping {
		in.dropping = false
		in.log.Info("backlog below its bound again", "dropped_total", in.dropped.Load())
	}
	in.queue = append(in.queue, data)
	in.backlog += len(data)
	in.mu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

func (in *Ingest) apply(ctx context.Context) {
	var batch [][]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-in.wake:
		case <-in.recvd:
			// The receiver is gone (Shutdown): apply what is left.
			in.drain(ctx, batch[:0])
			return
		}
		batch = in.drain(ctx, batch[:0])
	}
}

// drain applies queued messages until the queue is empty or ctx ends.
func (in *Ingest) drain(ctx context.Context, batch [][]byte) [][]byte {
	for ctx.Err() == nil {
		in.mu.Lock()
		batch, in.queue = in.queue, batch[:0]
		in.mu.Unlock()
		if len(batch) == 0 {
			return batch
		}
		for i, m := range batch {
			if in.beforeApply != nil {
				in.beforeApply()
			}
			if ctx.Err() != nil {
				return batch // Close: the rest is dropped
			}
			in.applyMessage(m)
			in.mu.Lock()
			in.backlog -= len(m)
			in.mu.Unlock()
			batch[i] = nil
		}
		in.ix.Expire()
	}
	return batch
}

func (in *Ingest) applyMessage(m []byte) {
	k, err := logwire.MessageKind(m)
	if err == nil && k != logwire.KindBatch {
		return // acks and other kinds are not for us
	}
	var bt *logwire.Batch
	if err == nil {
		bt, err = logwire.DecodeBatch(m)
	}
	if err != nil {
		in.bad.Add(1)
		in.log.Debug("undecodable message skipped", "bytes", len(m), "err", err)
		return
	}
	in.records.Add(uint64(len(bt.Records)))
	var applied, ignored, anon uint64
	x := in.ix
	var nowMS int64
	x.mu.Lock()
	for i := range bt.Records {
		r := &bt.Records[i]
		user, url := r.User, r.URL
		if user == "" && in.cfg.UseRemoteAddr {
			user = r.Remote
		}
		if !in.cfg.KeepQuery {
			url, _, _ = strings.Cut(url, "?")
		}
		if user == "" || url == "" {
			anon++
			continue
		}
		var ms int64
		if r.Time.IsZero() {
			if nowMS == 0 {
				nowMS = x.now().UnixMilli()
			}
			ms = nowMS
		} else {
			ms = r.Time.UnixMilli()
		}
		if x.hit(user, url, ms) {
			applied++
		} else {
			ignored++
		}
	}
	x.mu.Unlock()
	in.applied.Add(applied)
	in.ignored.Add(ignored)
	in.anonymous.Add(anon)
}

// Stats returns a snapshot of the ingest's counters.
func (in *Ingest) Stats() IngestStats {
	in.mu.Lock()
	backlog := in.backlog
	in.mu.Unlock()
	return IngestStats{
		Messages:       in.messages.Load(),
		Records:        in.records.Load(),
		Applied:        in.applied.Load(),
		Ignored:        in.ignored.Load(),
		Anonymous:      in.anonymous.Load(),
		BadMessages:    in.bad.Load(),
		Dropped:        in.dropped.Load(),
		DroppedRecords: in.droppedRecs.Load(),
		Views:          in.views.Load(),
		Backlog:        backlog,
	}
}

// Shutdown leaves the log group, applies the backlog and waits for the
// goroutines. If ctx ends first it stops as Close does and returns ctx's
// error.
func (in *Ingest) Shutdown(ctx context.Context) error {
	if in.closed.Load() {
		return ErrClosed
	}
	err := in.g.Leave(ctx)
	done := make(chan struct{})
	go func() {
		in.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		in.Close()
		<-done
		return ctx.Err()
	}
	in.stop()
	if err != nil {
		return fmt.Errorf("online: leave: %w", err)
	}
	return nil
}

// Close stops at once, dropping the backlog, leaves the group and waits
// for the goroutines. It is idempotent; Shutdown after Close returns
// ErrClosed.
func (in *Ingest) Close() error {
	in.closed.Store(true)
	in.stop()
	in.wg.Wait()
	var err error
	in.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if e := in.g.Leave(ctx); e != nil && !errors.Is(e, bus.ErrClosed) {
			err = fmt.Errorf("online: leave: %w", e)
		}
	})
	return err
}
