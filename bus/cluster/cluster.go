package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerscale/peerscale/bus"
)

// ErrBadKey is returned by New for a Key that is not 16, 24 or 32 bytes.
var ErrBadKey = errors.New("cluster: key must be 16, 24 or 32 bytes")

// Bus is one member of a cluster bus. It implements bus.Bus.
//
// All methods are safe for concurrent use. Lock order: Bus.mu, then a
// group's or a link's mutex.
type Bus struct {
	cfg    Config
	log    *slog.Logger
	self   bus.MemberID
	meta   meta
	ml     *memberlist.Memberlist
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error

	mu     sync.RWMutex
	closed bool
	links  map[bus.MemberID]*link
	known  map[string]*viewMsg // latest view of every group
	joined map[string]*group
	stable map[string]uint64 // latest view seq every live member has
	tomb   map[bus.MemberID]time.Time
	coord  bus.MemberID
	nalive int
	// unreachable lists the live members the manager found unreachable
	// on their links (reported to the coordinator in the state).
	unreachable, slow []bus.MemberID
	viewCh            chan struct{} // closed and replaced when known or stable changes
	synced            chan struct{} // closed once the coordinator sent the views

	evMu       sync.Mutex
	evs        []event
	evWake     chan struct{}
	ackPending atomic.Bool
	mlSync     atomic.Bool // a memberlist state sync runs (syncUnknown)
	tracking   atomic.Int32

	seq   *sequencer
	outMu sync.Mutex
	out   map[string]*outbox

	recentMu  sync.Mutex
	recent    map[bus.MemberID]recentNode
	liveAddrs map[string]bool

	stats counters
}

var _ bus.Bus = (*Bus)(nil)

// New starts a member called name: it binds memberlist and the data
// listener on cfg.BindAddr, joins cfg.Seeds (a failed join is logged and
// retried every RejoinInterval) and returns once the member runs.
func New(name string, cfg Config) (*Bus, error) {
	cfg = cfg.withDefaults()
	if name == "" || len(name) > maxNameLen-20 {
		return nil, fmt.Errorf("cluster: member name length %d not in 1..%d", len(name), maxNameLen-20)
	}
	switch len(cfg.Key) {
	case 0, 16, 24, 32:
	default:
		return nil, ErrBadKey
	}
	if len(cfg.Label) > maxLabelLen {
		return nil, fmt.Errorf("cluster: label longer than %d bytes", maxLabelLen)
	}
	var inc [8]byte
	for binary.BigEndian.Uint64(inc[:]) == 0 {
		rand.Read(inc[:])
	}
	self := bus.MemberID{Name: name, Incarnation: binary.BigEndian.Uint64(inc[:])}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.DataPort)))
	if err != nil {
		return nil, fmt.Errorf("cluster: data listener: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "bus/cluster", "member", self.String()),
		self:      self,
		meta:      meta{Incarnation: self.Incarnation, Boot: time.Now().UnixNano(), DataAddr: ln.Addr().String()},
		ln:        ln,
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		links:     make(map[bus.MemberID]*link),
		known:     make(map[string]*viewMsg),
		joined:    make(map[string]*group),
		stable:    make(map[string]uint64),
		tomb:      make(map[bus.MemberID]time.Time),
		coord:     self,
		nalive:    1,
		viewCh:    make(chan struct{}),
		synced:    make(chan struct{}),
		evWake:    make(chan struct{}, 1),
		recent:    make(map[bus.MemberID]recentNode),
		liveAddrs: make(map[string]bool),
		out:       make(map[string]*outbox),
	}
	b.seq = newSequencer(b)
	ml, err := memberlist.Create(b.memberlistConfig())
	if err != nil {
		cancel()
		ln.Close()
		return nil, fmt.Errorf("cluster: memberlist: %w", err)
	}
	b.ml = ml
	if len(cfg.Seeds) > 0 {
		if _, err := ml.Join(cfg.Seeds); err != nil {
			b.log.Warn("join failed; retrying", "seeds", cfg.Seeds, "err", err)
		}
	}
	b.wg.Go(b.acceptLoop)
	b.wg.Go(b.manage)
	b.wg.Go(b.seq.loop)
	if cfg.RejoinInterval > 0 {
		b.wg.Go(b.rejoinLoop)
	}
	if ml.NumMembers() > 1 {
		// Learn the groups' views before the first Send.
		t := time.NewTimer(cfg.SyncTimeout + cfg.DialTimeout)
		select {
		case <-b.synced:
		case <-t.C:
			b.log.Warn("no views from the coordinator yet; going on")
		}
		t.Stop()
	}
	b.log.Info("member started", "gossip", ml.LocalNode().Address(), "data", b.meta.DataAddr)
	return b, nil
}

// inView reports whether peer is in group's latest view, or is the
// coordinator (which orders every group), with the channel closed on the
// next view change.
func (b *Bus) inView(group string, peer bus.MemberID) (<-chan struct{}, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v := b.known[group]
	return b.viewCh, peer == b.coord || v == nil || slices.Contains(v.Members, peer)
}

func (b *Bus) coordinator() bus.MemberID {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.coord
}

// Self returns this member's id.
func (b *Bus) Self() bus.MemberID { return b.self }

// GossipAddr returns the memberlist address ("host:port") to give other
// members as a seed.
func (b *Bus) GossipAddr() string { return b.ml.LocalNode().Address() }

// MaxMessageSize returns Config.MaxMessageSize.
func (b *Bus) MaxMessageSize() int { return b.cfg.MaxMessageSize }

func (b *Bus) isClosed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Join joins group. It returns once this member's first view of the group
// is installed and every live member knows it, so that any Send started
// afterwards, from any member, reaches this one.
func (b *Bus) Join(ctx context.Context, name string) (bus.Group, error) {
	if err := bus.ValidateGroup(name); err != nil {
		return nil, err
	}
	var h *group
	for h == nil {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, bus.ErrClosed
		}
		if _, ok := b.joined[name]; ok {
			b.mu.Unlock()
			return nil, bus.ErrAlreadyJoined
		}
		v := b.known[name]
		if v != nil && slices.Contains(v.Members, b.self) {
			// An earlier membership is still being removed.
			ch := b.viewCh
			b.mu.Unlock()
			b.post(event{kind: evLocal})
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-b.done:
				return nil, bus.ErrClosed
			}
		}
		var minSeq uint64
		if v != nil {
			minSeq = v.ID.Seq
		}
		h = newGroup(b, name, minSeq)
		b.joined[name] = h
		b.mu.Unlock()
	}
	b.post(event{kind: evLocal})
	var deadline <-chan time.Time
	for {
		b.mu.RLock()
		ch, st := b.viewCh, b.stable[name]
		b.mu.RUnlock()
		if fs := h.firstView(); fs != 0 {
			if st >= fs {
				return h, nil
			}
			if deadline == nil {
				t := time.NewTimer(b.cfg.SyncTimeout)
				defer t.Stop()
				deadline = t.C
			}
		}
		select {
		case <-ch:
		case <-deadline:
			return h, nil
		case <-ctx.Done():
			b.abandon(h)
			return nil, ctx.Err()
		case <-b.done:
			return nil, bus.ErrClosed
		}
	}
}

func (b *Bus) abandon(h *group) {
	b.mu.Lock()
	if b.joined[h.name] == h {
		delete(b.joined, h.name)
	}
	b.mu.Unlock()
	h.shut()
	b.post(event{kind: evLocal})
}

func (b *Bus) leave(ctx context.Context, h *group) error {
	b.abandon(h)
	for {
		b.mu.RLock()
		v, other, closed, ch := b.known[h.name], b.joined[h.name], b.closed, b.viewCh
		b.mu.RUnlock()
		if closed || other != nil || v == nil || !slices.Contains(v.Members, b.self) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.done:
			return nil
		}
	}
}

// Send multicasts data to the members of group in the latest view this
// member knows. Unreliable never blocks; the other levels wait while the
// window to a member, or this member's own queue, is full. Causal is
// provided as Agreed; Safe returns bus.ErrUnsupportedLevel.
func (b *Bus) Send(ctx context.Context, name string, level bus.Level, data []byte) error {
	if err := bus.ValidateGroup(name); err != nil {
		return err
	}
	if !level.Valid() {
		return fmt.Errorf("%w: %d", bus.ErrBadLevel, level)
	}
	if level == bus.Safe {
		return fmt.Errorf("%w: %s", bus.ErrUnsupportedLevel, level)
	}
	if len(data) > b.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", bus.ErrTooLarge, len(data), b.cfg.MaxMessageSize)
	}
	if level.Total() {
		return b.sendTotal(ctx, name, level, data)
	}
	var buf [8]*link
	links := buf[:0]
	var missing []bus.MemberID
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return bus.ErrClosed
	}
	v := b.known[name]
	if v == nil {
		b.mu.RUnlock()
		b.stats.level(level).sent.Add(1)
		return nil
	}
	var h *group
	for _, m := range v.Members {
		if m == b.self {
			h = b.joined[name]
		} else if l := b.links[m]; l != nil {
			links = append(links, l)
		} else {
			missing = append(missing, m)
		}
	}
	viewSeq := v.ID.Seq
	b.mu.RUnlock()
	for _, m := range missing {
		if l := b.linkFor(m, ""); l != nil {
			links = append(links, l)
		}
	}
	body := encodeData(level, viewSeq, name, data)
	if level == bus.Unreliable {
		for _, l := range links {
			if !l.sendUnreliable(body) {
				b.stats.level(level).dropped.Add(1)
			}
		}
	} else {
		ready, err := waitRoomAll(ctx, links, h, len(body), name)
		if err != nil {
			return err
		}
		for _, l := range ready {
			l.sendGroup(nil, fData, body, name)
		}
	}
	if h != nil {
		m := &bus.Message{Group: h.name, Sender: b.self, Level: level, Data: body[len(body)-len(data):]}
		if ok, _ := h.push(ctx, level != bus.Unreliable, viewSeq, m); ok {
			b.stats.level(level).delivered.Add(1)
		} else {
			b.stats.level(level).dropped.Add(1)
		}
	}
	b.stats.level(level).sent.Add(1)
	return nil
}

// deliver hands a message received from a peer to the joined group. It
// never blocks: the sender holds back beyond the credit this member gave.
func (b *Bus) deliver(l *link, m dataMsg) {
	if m.Level.Total() {
		b.deliverTotal(l, l.peer, m, false)
		return
	}
	b.mu.RLock()
	h := b.joined[m.Group]
	b.mu.RUnlock()
	if h == nil {
		b.stats.level(m.Level).dropped.Add(1)
		if m.Level != bus.Unreliable {
			l.consumed(m.Group, 1)
		}
		return
	}
	msg := &bus.Message{Group: h.name, Sender: l.peer, Level: m.Level, Data: bytes.Clone(m.Payload)}
	if ok, _ := h.push(nil, m.Level != bus.Unreliable, m.ViewSeq, msg); ok {
		b.stats.level(m.Level).delivered.Add(1)
	} else {
		b.stats.level(m.Level).dropped.Add(1)
		if m.Level != bus.Unreliable {
			l.consumed(m.Group, 1)
		}
	}
}

// consumed returns credit for messages from sender that left the queue of
// group.
func (b *Bus) consumed(sender bus.MemberID, group string, n int) {
	if sender == b.self {
		return
	}
	b.mu.RLock()
	l := b.links[sender]
	b.mu.RUnlock()
	if l != nil {
		l.consumed(group, n)
	}
}

// applyView installs v as the latest known view of its group if it is
// newer, and delivers it to the group's handle.
func (b *Bus) applyView(v viewMsg) {
	b.mu.Lock()
	if k := b.known[v.Group]; k != nil && v.ID.Seq <= k.ID.Seq {
		b.mu.Unlock()
		return
	}
	b.known[v.Group] = &v
	h := b.joined[v.Group]
	close(b.viewCh)
	b.viewCh = make(chan struct{})
	b.mu.Unlock()
	b.stats.views.Add(1)
	if h != nil {
		b.afterOrder(h, h.onOrderedView(&v, b.self))
	}
}

func (b *Bus) markSynced() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.synced:
	default:
		close(b.synced)
	}
}

func (b *Bus) applyStable(group string, seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if seq > b.stable[group] {
		b.stable[group] = seq
		close(b.viewCh)
		b.viewCh = make(chan struct{})
	}
}

// linkFor returns the link to id, creating it, or nil when id has left or
// the Bus is closed.
func (b *Bus) linkFor(id bus.MemberID, addr string) *link {
	b.mu.Lock()
	if b.closed || id == b.self {
		b.mu.Unlock()
		return nil
	}
	if _, dead := b.tomb[id]; dead {
		b.mu.Unlock()
		return nil
	}
	l := b.links[id]
	if l == nil {
		l = newLink(b, id)
		b.links[id] = l
		if l.dialer {
			b.wg.Go(l.dialLoop)
		}
	}
	b.mu.Unlock()
	if addr != "" {
		l.setAddr(addr)
	}
	return l
}

// removeLink drops the link to a member that left and remembers that the
// incarnation is gone.
func (b *Bus) removeLink(id bus.MemberID) {
	now := time.Now()
	b.mu.Lock()
	l := b.links[id]
	delete(b.links, id)
	b.tomb[id] = now
	if len(b.tomb) > 1024 {
		for k, t := range b.tomb {
			if now.Sub(t) > 10*time.Minute {
				delete(b.tomb, k)
			}
		}
	}
	b.mu.Unlock()
	if l != nil {
		l.close()
	}
}

// Shutdown leaves every group, waits until every member acknowledged
// what this one sent, then closes. ctx bounds the wait; Close runs in any
// case.
func (b *Bus) Shutdown(ctx context.Context) error {
	b.mu.RLock()
	hs := make([]*group, 0, len(b.joined))
	for _, h := range b.joined {
		hs = append(hs, h)
	}
	b.mu.RUnlock()
	var errs []error
	for _, h := range hs {
		if err := h.Leave(ctx); err != nil {
			errs = append(errs, err)
			break
		}
	}
	for len(errs) == 0 {
		b.mu.RLock()
		var pending *link
		for _, l := range b.links {
			l.mu.Lock()
			if len(l.win) > 0 && !l.down && !l.closed {
				pending = l
			}
			l.mu.Unlock()
		}
		b.mu.RUnlock()
		if pending == nil {
			break
		}
		pending.mu.Lock()
		space, down := pending.space, pending.downCh
		pending.mu.Unlock()
		select {
		case <-space:
		case <-down:
		case <-pending.done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		case <-b.done:
			errs = append(errs, bus.ErrClosed)
		}
	}
	errs = append(errs, b.Close())
	return errors.Join(errs...)
}

// Close leaves the cluster at once: it tells the linked members goodbye,
// leaves memberlist, closes every connection and waits for every goroutine
// the Bus started. It is idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.close(true) })
	return b.closeErr
}

// crash stops the member like a killed process: no goodbye, no memberlist
// leave; the others find out through failure detection.
func (b *Bus) crash() {
	b.closeOnce.Do(func() { b.closeErr = b.close(false) })
}

func (b *Bus) close(graceful bool) error {
	b.mu.Lock()
	b.closed = true
	hs := b.joined
	b.joined = make(map[string]*group)
	links := make([]*link, 0, len(b.links))
	for _, l := range b.links {
		links = append(links, l)
	}
	b.mu.Unlock()
	for _, h := range hs {
		h.shut()
	}
	// One grace period for all the goodbyes: a link whose writer is stuck
	// (a peer that stopped reading) must not hold Close.
	grace, cancelGrace := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancelGrace()
	var errs []error
	if graceful {
		for _, l := range links {
			l.sendBye()
		}
		for _, l := range links {
			select {
			case <-l.byeSent:
			case <-grace.Done():
			}
		}
		if err := b.ml.Leave(250 * time.Millisecond); err != nil {
			b.log.Debug("memberlist leave", "err", err)
		}
	}
	close(b.done)
	b.cancel()
	if err := b.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: memberlist shutdown: %w", err))
	}
	b.ln.Close()
	for _, l := range links {
		l.close()
	}
	b.mu.Lock()
	for _, l := range b.links {
		l.close()
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.log.Info("member closed")
	return errors.Join(errs...)
}

// waitRoomAll waits for room for a message of n bytes to group name on
// every link and then in the sender's own queue h (nil when it is not a
// member), so that a Send ended by its ctx reached every member or none.
// It returns links without those whose peer is no longer in the group.
func waitRoomAll(ctx context.Context, links []*link, h *group, n int, name string) ([]*link, error) {
	for i, l := range links {
		if err := l.waitRoom(ctx, n, name); errors.Is(err, errNotMember) {
			links[i] = nil
		} else if err != nil {
			return nil, err
		}
	}
	links = slices.DeleteFunc(links, func(l *link) bool { return l == nil })
	if h != nil {
		if err := h.waitRoom(ctx); err != nil {
			return nil, err
		}
	}
	return links, nil
}
