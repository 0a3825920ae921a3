package logsub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/logwire"
)

// Config configures a Logger. The zero value is valid: a non-durable logger
// named after the host that syncs every 100 ms.
type Config struct {
	// Name identifies the logger in its acknowledgements; publishers count
	// one name once towards their quorum, so it must be stable across
	// restarts and distinct per copy of the logs. Empty means the host
	// name.
	Name string
	// Store configures the files. Store.StateFile makes the logger durable:
	// only a durable logger acknowledges records.
	Store StoreConfig
	// FsyncInterval is how often the logger commits its files and
	// acknowledges. Zero means 100 ms.
	FsyncInterval time.Duration
	// GapTimeout paces the handling of a hole in a stream (records missing
	// below others held): the logger asks for a retransmission at once and
	// then every GapTimeout/4, and a hole older than GapTimeout is logged
	// and counted in Stats.Holes. A logger never acknowledges past a hole.
	// Zero means 10 s.
	GapTimeout time.Duration
	// AckRepeat is how often the logger repeats its latest acknowledgement
	// of every stream that received records within AckRecent, so that an
	// ack lost while the bus reconfigured does not stall a publisher. Zero
	// means 1 s; AckRecent zero means 30 s.
	AckRepeat, AckRecent time.Duration
	// AckGroup returns the group acknowledgements for a log group go to.
	// Nil means the log group's name with ".ack" appended.
	AckGroup func(group string) string
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// ackSendTimeout bounds the Send of one ack message, so that a publisher
// the bus cannot reach never holds up the next fsync; a lost ack is
// repeated (Config.AckRepeat).
const ackSendTimeout = 2 * time.Second

// Stats is a snapshot of a Logger's counters.
type Stats struct {
	StoreStats
	Batches     uint64 // batch messages received
	BadMessages uint64 // messages that failed to decode (dropped)
	WriteErrors uint64 // records that could not be written
	Acks        uint64 // ack messages sent
	AckErrors   uint64 // ack messages that could not be sent
	Resends     uint64 // retransmissions asked for
	Syncs       uint64 // acks with AckSync sent
	Holes       int    // streams with records missing for longer than GapTimeout
}

// Logger subscribes to log groups on a bus and writes their records to a
// Store: spreadlogd. A durable Logger acknowledges records to their
// publishers after each fsync, per the logwire acknowledgement protocol.
// Its methods are safe for concurrent use.
type Logger struct {
	b       bus.Bus
	store   *Store
	cfg     Config
	log     *slog.Logger
	durable bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	groups []*loggerGroup

	mu     sync.Mutex
	stats  Stats
	gaps   map[epochKey]gapState
	recent map[epochKey]recentAck // streams acknowledged lately, repeated
	repeat time.Time              // when acks were last repeated
	closed bool
	done   chan struct{}

	// afterCommit, when set (by tests), runs between the Store's commit
	// and the acknowledgements it allows.
	afterCommit func()
}

type loggerGroup struct {
	name, ack string
	g, ackG   bus.Group
	sync      bool // send an AckSync at the next commit
}

// recentAck is the last acknowledgement of a stream, repeated every
// AckRepeat while the stream is recent, so that a lost ack message (its
// Send failed while the bus was reconfiguring) does not leave a publisher
// waiting.
type recentAck struct {
	entry   logwire.AckEntry
	changed time.Time
}

type gapState struct {
	next   uint64
	since  time.Time // when the gap at next was first seen
	asked  time.Time // when a retransmission was last asked for
	warned bool
}

// New opens the Store, joins every group and its ack group on b and starts
// the logger. The caller keeps ownership of b.
func New(ctx context.Context, b bus.Bus, groups []string, outputs []Output, cfg Config) (*Logger, error) {
	if len(groups) == 0 {
		return nil, fmt.Errorf("%w: no groups", ErrConfig)
	}
	if cfg.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("logsub: name: %w", err)
		}
		cfg.Name = h
	}
	if cfg.FsyncInterval == 0 {
		cfg.FsyncInterval = 100 * time.Millisecond
	}
	if cfg.GapTimeout == 0 {
		cfg.GapTimeout = 10 * time.Second
	}
	if cfg.AckRepeat == 0 {
		cfg.AckRepeat = time.Second
	}
	if cfg.AckRecent == 0 {
		cfg.AckRecent = 30 * time.Second
	}
	if cfg.FsyncInterval < 0 || cfg.GapTimeout < 0 || cfg.AckRepeat < 0 || cfg.AckRecent < 0 {
		return nil, fmt.Errorf("%w: negative interval", ErrConfig)
	}
	if cfg.AckGroup == nil {
		cfg.AckGroup = func(g string) string { return g + ".ack" }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Store.Logger = cfg.Logger
	for _, g := range groups {
		if err := bus.ValidateGroup(g); err != nil {
			return nil, err
		}
		if err := bus.ValidateGroup(cfg.AckGroup(g)); err != nil {
			return nil, err
		}
	}
	store, err := OpenStore(outputs, cfg.Store)
	if err != nil {
		return nil, err
	}
	l := &Logger{
		b: b, store: store, cfg: cfg, durable: cfg.Store.StateFile != "",
		log:  cfg.Logger.With("component", "logsub", "logger", cfg.Name),
		gaps: make(map[epochKey]gapState), recent: make(map[epochKey]recentAck), done: make(chan struct{}),
	}
	for _, name := range groups {
		lg := &loggerGroup{name: name, ack: cfg.AckGroup(name), sync: true}
		if lg.g, err = b.Join(ctx, name); err == nil {
			lg.ackG, err = b.Join(ctx, lg.ack)
		}
		l.groups = append(l.groups, lg)
		if err != nil {
			l.leave(ctx)
			store.Close()
			return nil, fmt.Errorf("logsub: join %s: %w", name, err)
		}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for _, lg := range l.groups {
		l.wg.Go(func() { l.recvLoop(lg) })
		l.wg.Go(func() { l.ackLoop(lg) })
	}
	l.wg.Go(l.commitLoop)
	l.log.Info("logger started", "groups", groups, "durable", l.durable)
	return l, nil
}

func (l *Logger) leave(ctx context.Context) {
	for _, lg := range l.groups {
		if lg.g != nil {
			lg.g.Leave(ctx)
		}
		if lg.ackG != nil {
			lg.ackG.Leave(ctx)
		}
	}
}

// recvLoop writes the batches of one log group.
func (l *Logger) recvLoop(lg *loggerGroup) {
	for {
		ev, err := lg.g.Recv(l.ctx)
		if err != nil {
			if !errors.Is(err, bus.ErrClosed) && l.ctx.Err() == nil {
				l.log.Error("receive failed", "group", lg.name, "err", err)
			}
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			if len(ev.Joined) > 0 {
				l.mu.Lock()
				lg.sync = true
				l.mu.Unlock()
			}
		case *bus.Message:
			if k, err := logwire.MessageKind(ev.Data); err == nil && k != logwire.KindBatch {
				continue // not ours to read
			}
			var werr uint64
			var stop bool
			_, err := eachRecord(ev.Data, lg.name, func(r *Record) error {
				_, err := l.store.Write(r)
				if errors.Is(err, ErrClosed) {
					stop = true
					return err
				}
				if err != nil {
					if werr == 0 {
						l.log.Error("write failed", "group", lg.name, "err", err)
					}
					werr++
				}
				return nil
			})
			if stop {
				return
			}
			l.mu.Lock()
			l.stats.Batches++
			l.stats.WriteErrors += werr
			if err != nil {
				l.stats.BadMessages++
			}
			l.mu.Unlock()
			if err != nil {
				l.log.Warn("dropped a malformed message", "group", lg.name, "sender", ev.Sender, "err", err)
			}
		}
	}
}

// ackLoop reads an ack group's stream, so that the logger never holds back
// the senders of other loggers' acks, and asks for an AckSync when members
// join it: publishers (new, or back after a partition) and this logger
// itself back in a view with them learn what it lacks.
func (l *Logger) ackLoop(lg *loggerGroup) {
	for {
		ev, err := lg.ackG.Recv(l.ctx)
		if err != nil {
			return
		}
		if v, ok := ev.(*bus.View); ok && len(v.Joined) > 0 {
			l.mu.Lock()
			lg.sync = true
			l.mu.Unlock()
		}
	}
}

func (l *Logger) commitLoop() {
	t := time.NewTicker(l.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
			l.commit(l.ctx)
		}
	}
}

// commit syncs the store and sends the acknowledgements.
func (l *Logger) commit(ctx context.Context) error {
	// Take the pending AckSyncs before committing: the positions they
	// announce come from the same commit, never from records written
	// after it (those are not durable yet).
	var syncs []*loggerGroup
	if l.durable {
		l.mu.Lock()
		for _, lg := range l.groups {
			if lg.sync {
				lg.sync = false
				syncs = append(syncs, lg)
			}
		}
		l.mu.Unlock()
	}
	ps, committed, err := l.store.commit(len(syncs) > 0)
	if err != nil {
		l.mu.Lock()
		for _, lg := range syncs {
			lg.sync = true
		}
		l.mu.Unlock()
		if !errors.Is(err, ErrClosed) {
			l.log.Error("commit failed", "err", err)
		}
		return err
	}
	if !l.durable {
		return nil
	}
	if l.afterCommit != nil {
		l.afterCommit()
	}
	now := time.Now()
	l.mu.Lock()
	byGroup := make(map[string][]logwire.AckEntry)
	for _, p := range ps {
		k := epochKey{p.Group, p.Publisher, p.Epoch}
		e := logwire.AckEntry{Publisher: p.Publisher, Epoch: p.Epoch, Next: p.Next}
		if p.Gap {
			g, ok := l.gaps[k]
			if !ok || g.next != p.Next {
				g = gapState{next: p.Next, since: now}
			}
			if g.asked.IsZero() || now.Sub(g.asked) >= l.cfg.GapTimeout/4 {
				g.asked = now
				e.Resend, e.End = true, p.HoleEnd
				l.stats.Resends++
			}
			l.gaps[k] = g
		} else {
			delete(l.gaps, k)
		}
		byGroup[p.Group] = append(byGroup[p.Group], e)
		l.recent[k] = recentAck{entry: logwire.AckEntry{Publisher: p.Publisher, Epoch: p.Epoch, Next: p.Next}, changed: now}
	}
	if now.Sub(l.repeat) >= l.cfg.AckRepeat {
		l.repeat = now
		sent := make(map[epochKey]bool, len(ps))
		for _, p := range ps {
			sent[epochKey{p.Group, p.Publisher, p.Epoch}] = true
		}
		for k, r := range l.recent {
			if now.Sub(r.changed) > l.cfg.AckRecent {
				delete(l.recent, k)
			} else if !sent[k] {
				byGroup[k.group] = append(byGroup[k.group], r.entry)
			}
		}
	}
	stale := 0
	for k, g := range l.gaps {
		if now.Sub(g.since) < l.cfg.GapTimeout {
			continue
		}
		stale++
		if !g.warned {
			g.warned = true
			l.gaps[k] = g
			l.log.Warn("records still missing; asking for them again", "group", k.group, "publisher", k.publisher, "epoch", k.epoch, "from", g.next, "since", g.since)
		}
	}
	l.stats.Holes = stale
	l.mu.Unlock()

	for _, lg := range syncs {
		// Answer every stream of the group, so publishers resend from there.
		// The positions are repeated like other acks: a publisher that
		// missed the AckSync sees a logger stuck short of what it sent.
		var es []logwire.AckEntry
		l.mu.Lock()
		for _, p := range committed {
			if p.Group == lg.name {
				e := logwire.AckEntry{Publisher: p.Publisher, Epoch: p.Epoch, Next: p.Next}
				k := epochKey{p.Group, p.Publisher, p.Epoch}
				if _, ok := l.recent[k]; !ok {
					l.recent[k] = recentAck{entry: e, changed: now}
				}
				if p.Gap {
					// Records past the hole are here already: ask for the
					// hole only.
					e.Resend, e.End = true, p.HoleEnd
				}
				es = append(es, e)
			}
		}
		l.mu.Unlock()
		byGroup[lg.name] = es
	}
	var errs []error
	for _, lg := range l.groups {
		es, ok := byGroup[lg.name]
		isSync := slices.Contains(syncs, lg)
		if !ok && !isSync {
			continue
		}
		flags := logwire.AckDurable
		if isSync {
			flags |= logwire.AckSync
		}
		for len(es) > 0 || isSync {
			n := ackChunk(es, l.b.MaxMessageSize())
			msg := logwire.AppendAck(nil, &logwire.Ack{Logger: l.cfg.Name, Flags: flags, Entries: es[:n]})
			es = es[n:]
			sctx, cancel := context.WithTimeout(ctx, ackSendTimeout)
			err := l.b.Send(sctx, lg.ack, bus.FIFO, msg)
			cancel()
			l.mu.Lock()
			if err != nil {
				l.stats.AckErrors++
				if isSync {
					lg.sync = true // try again at the next commit
				}
			} else {
				l.stats.Acks++
				if isSync {
					l.stats.Syncs++
				}
			}
			l.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					l.log.Warn("ack failed", "group", lg.ack, "err", err)
				}
				errs = append(errs, err)
				break
			}
			isSync = false
		}
	}
	return errors.Join(errs...)
}

// ackChunk returns how many of es fit in one ack message of at most max
// bytes (at least one).
func ackChunk(es []logwire.AckEntry, max int) int {
	size := 3 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen64 // header, logger name length, count
	for i, e := range es {
		size += len(e.Publisher) + 3*binary.MaxVarintLen64 + 1
		if i > 0 && (size > max-256 || i >= logwire.MaxAckEntries) {
			return i
		}
	}
	return len(es)
}

// Reopen reopens every file (after logrotate moved them) and restarts
// pipes; mains call it on SIGHUP.
func (l *Logger) Reopen() error { return l.store.Reopen() }

// Stats returns a snapshot of the counters.
func (l *Logger) Stats() Stats {
	l.mu.Lock()
	s := l.stats
	l.mu.Unlock()
	s.StoreStats = l.store.Stats()
	return s
}

// Shutdown stops receiving, commits and acknowledges what was received,
// leaves the groups and closes the files. If ctx ends first it closes
// without the final acknowledgement.
func (l *Logger) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	err := l.commit(ctx)
	l.leave(ctx)
	err = errors.Join(err, l.store.Close())
	close(l.done)
	l.log.Info("logger stopped")
	return err
}

// Close stops the logger at once: it waits for its goroutines, leaves the
// groups and closes the files (committing them, without acknowledging).
// Close is idempotent.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.leave(ctx)
	err := l.store.Close()
	close(l.done)
	return err
}

// crash stops the goroutines and abandons the files without committing,
// as a killed process would (for tests).
func (l *Logger) crash(torn bool) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	l.store.crash(torn)
	close(l.done)
}
