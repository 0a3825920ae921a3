package logsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/logwire"
)

// MonitorConfig configures a Monitor. The zero value is valid.
type MonitorConfig struct {
	// Aggregator configures the statistics.
	Aggregator AggregatorConfig
	// QueueLen bounds the messages waiting to be aggregated; when it is
	// full, messages are dropped (counted in Stats and Snapshot.Dropped).
	// Zero means 1024.
	QueueLen int
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// MonitorStats is a snapshot of a Monitor's counters.
type MonitorStats struct {
	Messages    uint64 // batch messages received
	Dropped     uint64 // batch messages dropped because aggregation lagged
	BadMessages uint64 // messages that failed to decode
	Records     uint64 // records aggregated
	Duplicates  uint64 // retransmitted records skipped
}

// Monitor subscribes to log groups and aggregates their records for live
// views (like ApacheTop and mls_mon). It is lossy by design: its receive
// loop only hands messages to a bounded queue and drops them when the
// aggregator lags, so a slow monitor never holds back publishers or
// loggers. It does not acknowledge anything. Its methods are safe for
// concurrent use.
type Monitor struct {
	agg *Aggregator
	log *slog.Logger

	groups []bus.Group
	queue  chan []byte
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	messages, dropped, bad, records, dups atomic.Uint64
}

// NewMonitor joins groups on b and starts aggregating. The caller keeps
// ownership of b.
func NewMonitor(ctx context.Context, b bus.Bus, groups []string, cfg MonitorConfig) (*Monitor, error) {
	if len(groups) == 0 {
		return nil, fmt.Errorf("%w: no groups", ErrConfig)
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Monitor{
		agg:   NewAggregator(cfg.Aggregator),
		log:   cfg.Logger.With("component", "logsub.monitor"),
		queue: make(chan []byte, cfg.QueueLen),
	}
	for _, name := range groups {
		g, err := b.Join(ctx, name)
		if err != nil {
			for _, g := range m.groups {
				g.Leave(ctx)
			}
			return nil, fmt.Errorf("logsub: join %s: %w", name, err)
		}
		m.groups = append(m.groups, g)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	for _, g := range m.groups {
		m.wg.Go(func() { m.recvLoop(g) })
	}
	m.wg.Go(m.aggregateLoop)
	return m, nil
}

func (m *Monitor) recvLoop(g bus.Group) {
	for {
		ev, err := g.Recv(m.ctx)
		if err != nil {
			if !errors.Is(err, bus.ErrClosed) && m.ctx.Err() == nil {
				m.log.Error("receive failed", "group", g.Name(), "err", err)
			}
			return
		}
		msg, ok := ev.(*bus.Message)
		if !ok {
			continue
		}
		m.messages.Add(1)
		select {
		case m.queue <- msg.Data:
		default:
			m.dropped.Add(1)
		}
	}
}

func (m *Monitor) aggregateLoop() {
	type stream struct {
		pub   string
		epoch uint64
	}
	highest := make(map[stream]uint64)
	for {
		var data []byte
		select {
		case <-m.ctx.Done():
			return
		case data = <-m.queue:
		}
		if k, err := logwire.MessageKind(data); err == nil && k != logwire.KindBatch {
			continue
		}
		h, _, err := logwire.DecodeBatchHeader(data)
		if err != nil {
			m.badMessage(err)
			continue
		}
		st := stream{h.Publisher, h.Epoch}
		hi := highest[st]
		if len(highest) > 1<<16 {
			clear(highest)
		}
		_, err = eachRecord(data, "", func(r *Record) error {
			if r.Seq <= hi {
				m.dups.Add(1)
				return nil
			}
			hi = r.Seq
			m.agg.Observe(r)
			m.records.Add(1)
			return nil
		})
		if err != nil {
			m.badMessage(err)
		}
		highest[st] = hi
	}
}

func (m *Monitor) badMessage(err error) {
	if m.bad.Add(1) == 1 {
		m.log.Warn("dropped a malformed message", "err", err)
	}
}

// Observe aggregates r directly (a record that did not come from the bus).
func (m *Monitor) Observe(r *Record) { m.agg.Observe(r) }

// Snapshot returns the current statistics.
func (m *Monitor) Snapshot() Snapshot {
	s := m.agg.Snapshot()
	s.Dropped = m.dropped.Load()
	return s
}

// Stats returns a snapshot of the counters.
func (m *Monitor) Stats() MonitorStats {
	return MonitorStats{
		Messages: m.messages.Load(), Dropped: m.dropped.Load(), BadMessages: m.bad.Load(),
		Records: m.records.Load(), Duplicates: m.dups.Load(),
	}
}

// Close leaves the groups and waits for the Monitor's goroutines. Close is
// idempotent.
func (m *Monitor) Close() error {
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
		for _, g := range m.groups {
			g.Leave(context.Background())
		}
	})
	return nil
}
