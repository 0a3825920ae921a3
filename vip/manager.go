package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// Config configures a Manager. The zero value is valid; each field
// documents its default.
type Config struct {
	// Prefer lists the virtual interfaces (by name) this member prefers to
	// own (wackamole's Prefer). Empty means none.
	Prefer []string
	// Mature is how long a freshly started member waits, learning the
	// group's state, before it takes interfaces. Zero means 5 s; negative
	// means at once.
	Mature time.Duration
	// Balance configures the leader's rebalancing rounds.
	Balance Balance
	// AnnounceCount is how many times each acquisition is announced (ARP
	// or neighbour advertisement), the first one included. Zero means 3.
	AnnounceCount int
	// AnnounceInterval separates the announcements of one acquisition.
	// Zero means 1 s (Linux ignores a second non-gratuitous override of a
	// neighbour entry within 1 s).
	AnnounceInterval time.Duration
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
	// ARPCache, if positive, is how often this member collects its
	// neighbour cache (at most 256 hosts) and shares it with the group;
	// when it acquires an interface, it announces it directly to the hosts
	// every member shared, which refreshes the caches of hosts that talked
	// to the previous owner (wackamole's Arp-Cache with Notify arp-cache).
	// It needs a Backend that implements NeighborSharer. Zero means off.
	ARPCache time.Duration
	// OnEvent, if not nil, is called for every acquisition, release,
	// conflict and backend failure, from the Manager's goroutine: it must
	// not block.
	OnEvent func(Event)
}

// Balance configures how the leader of the view evens out the number of
// interfaces per eligible member.
type Balance struct {
	// AcquisitionsPerRound bounds the moves of one round. Zero means all
	// needed moves at once.
	AcquisitionsPerRound int
	// Interval separates rounds. Zero means 4 s; negative disables
	// rebalancing (interfaces of failed or draining members still move).
	Interval time.Duration
}

func (c Config) withDefaults() Config {
	if c.Mature == 0 {
		c.Mature = 5 * time.Second
	}
	if c.Balance.Interval == 0 {
		c.Balance.Interval = 4 * time.Second
	}
	if c.AnnounceCount <= 0 {
		c.AnnounceCount = 3
	}
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventAcquired: this member added and announced the VIF's addresses.
	EventAcquired EventKind = iota + 1
	// EventReleased: this member removed the VIF's addresses.
	EventReleased
	// EventConflict: several members held the VIF when the view started;
	// Peer is the winner, which may be this member.
	EventConflict
	// EventFailed: a backend operation on the VIF failed (Err).
	EventFailed
)

var eventNames = [...]string{"", "acquired", "released", "conflict", "failed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", k)
}

// Event is passed to Config.OnEvent.
type Event struct {
	Kind EventKind
	// VIF is the virtual interface concerned.
	VIF string
	// View is the view in which it happened.
	View bus.ViewID
	// Peer is the winner of a Conflict, or the new owner on Released when
	// known.
	Peer bus.MemberID
	// Err is the error of a Failed event.
	Err error
}

// Stats is a snapshot of a Manager's counters and state.
type Stats struct {
	View     bus.ViewID // last view installed
	Members  int        // members of that view
	Leader   bool       // whether this member leads it
	Mature   bool
	Draining bool
	Held     int // VIFs whose addresses this member holds now

	Views         uint64 // views installed
	Acquisitions  uint64
	Releases      uint64
	Announcements uint64 // announcements after the one of each acquisition
	Conflicts     uint64 // conflicts seen (every member counts them)
	MovesSent     uint64 // moves issued as leader
	Failures      uint64 // backend errors
	BadMessages   uint64 // malformed or misdirected messages ignored
	Resends       uint64 // initial States sent again for a slow view
}

// Manager spreads virtual interfaces over the live members of one bus
// group and drives a Backend to hold this member's share.
//
// Its methods are safe for concurrent use. One goroutine owns the protocol
// state; a second reads the group and a third sends, so that a slow peer
// never stops this member from reading.
type Manager struct {
	g       bus.Group
	backend Backend
	cfg     Config
	log     *slog.Logger
	vifs    map[string]VIF
	names   []string
	digest  string

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	events    chan any // bus.Event or error, from the reader
	drainReq  chan struct{}
	drained   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	outMu  sync.Mutex
	out    []*message
	outSig chan struct{}

	mu     sync.Mutex
	stats  Stats
	owners map[string]bus.MemberID

	// Owned by the protocol goroutine.
	view        *bus.View
	self        bus.MemberID
	round       map[bus.MemberID]State // initial States of this view
	latest      map[bus.MemberID]State // latest States of this view
	complete    bool
	table       map[string]bus.MemberID
	bufMoves    [][]Move
	future      []futureMsg
	held        map[string]time.Time
	announceAt  map[string]time.Time
	announceN   map[string]int
	neighbors   []netip.Addr
	initial     *message                      // the initial State sent in this view
	resentAt    time.Time                     // when it was last sent again
	shared      map[bus.MemberID][]netip.Addr // neighbours shared, this view and the last
	mature      bool
	draining    bool
	drainClosed bool
	releaseErr  error
}

type futureMsg struct {
	sender bus.MemberID
	msg    *message
}

// roundWarnAfter is how long a view may wait for its members' States
// before the Manager warns and sends its own again (a member that gets a
// repeated initial State answers with its own, so a State lost by the bus
// is recovered).
const roundWarnAfter = 2 * time.Second

// maxFuture bounds the messages kept for views not yet installed here.
const maxFuture = 1024

// New starts a Manager for the virtual interfaces vifs on group g, which
// it owns from now on (it reads g and leaves it on Shutdown or Close).
// Every member of g must be a Manager configured with the same vifs.
// backend is not closed by the Manager.
func New(g bus.Group, vifs []VIF, backend Backend, cfg Config) (*Manager, error) {
	if g == nil || backend == nil {
		return nil, fmt.Errorf("%w: nil group or backend", ErrBadConfig)
	}
	if err := ValidateVIFs(vifs); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Manager{
		g:          g,
		backend:    backend,
		cfg:        cfg,
		log:        cfg.Logger.With("component", "vip", "group", g.Name()),
		vifs:       make(map[string]VIF),
		digest:     Digest(vifs),
		events:     make(chan any, 64),
		drainReq:   make(chan struct{}, 1),
		drained:    make(chan struct{}),
		done:       make(chan struct{}),
		outSig:     make(chan struct{}, 1),
		held:       make(map[string]time.Time),
		announceAt: make(map[string]time.Time),
		announceN:  make(map[string]int),
		mature:     cfg.Mature < 0,
	}
	for _, v := range sortVIFs(vifs) {
		m.vifs[v.Name] = v
		m.names = append(m.names, v.Name)
	}
	for _, p := range cfg.Prefer {
		if _, ok := m.vifs[p]; !ok {
			return nil, fmt.Errorf("%w: preferred interface %q is not configured", ErrBadConfig, p)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.stats.Mature = m.mature
	m.wg.Go(func() { m.read(ctx) })
	m.wg.Go(func() { m.send(ctx) })
	m.wg.Go(func() { m.run(ctx) })
	return m, nil
}

// Stats returns a snapshot of the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Owners returns the assignment as this member knows it: each VIF's owner
// in the current view. It is empty until the members' states for the view
// have arrived.
func (m *Manager) Owners() map[string]bus.MemberID {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.owners)
}

// Shutdown hands this member's interfaces over to the others (each
// receiver acquires, then this member releases), then releases whatever is
// left, leaves the group and stops. If ctx ends first, it does the same
// without waiting and returns ctx's error.
func (m *Manager) Shutdown(ctx context.Context) error {
	select {
	case <-m.done:
		return m.Close()
	default:
	}
	select {
	case m.drainReq <- struct{}{}:
	default:
	}
	var err error
	select {
	case <-m.drained:
	case <-m.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, m.Close())
}

// Close releases every interface this member holds at once, leaves the
// group and waits for the Manager's goroutines. It is idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.wg.Wait()
		leaveCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := m.g.Leave(leaveCtx)
		if errors.Is(err, bus.ErrClosed) {
			err = nil
		}
		m.closeErr = errors.Join(m.releaseErr, err)
	})
	return m.closeErr
}

func (m *Manager) read(ctx context.Context) {
	for {
		ev, err := m.g.Recv(ctx)
		var item any = ev
		if err != nil {
			item = err
		}
		select {
		case m.events <- item:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// enqueue hands a message to the sender goroutine. Only the latest
// non-initial State of a view is kept; messages of older views are
// dropped; consecutive moves merge, in order.
func (m *Manager) enqueue(msg *message) {
	m.outMu.Lock()
	keep := m.out[:0]
	for _, o := range m.out {
		if o.View != msg.View {
			continue
		}
		if msg.Kind == kindState && !msg.Initial && o.Kind == kindState && !o.Initial {
			continue
		}
		keep = append(keep, o)
	}
	m.out = keep
	if n := len(m.out); msg.Kind == kindMoves && n > 0 && m.out[n-1].Kind == kindMoves {
		m.out[n-1].Moves = append(m.out[n-1].Moves, msg.Moves...)
	} else {
		m.out = append(m.out, msg)
	}
	m.outMu.Unlock()
	select {
	case m.outSig <- struct{}{}:
	default:
	}
}

func (m *Manager) send(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.outSig:
		}
		for {
			m.outMu.Lock()
			if len(m.out) == 0 {
				m.outMu.Unlock()
				break
			}
			msg := m.out[0]
			m.out = m.out[1:]
			m.outMu.Unlock()
			data, err := encodeMessage(msg)
			if err == nil {
				err = m.g.Send(ctx, bus.FIFO, data)
			}
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, bus.ErrClosed) {
					return
				}
				m.log.Error("send failed", "kind", msg.Kind, "err", err)
			}
		}
	}
}

func (m *Manager) run(ctx context.Context) {
	defer close(m.done)
	defer m.releaseAll(context.WithoutCancel(ctx))
	var matureC <-chan time.Time
	if !m.mature {
		t := time.NewTimer(m.cfg.Mature)
		defer t.Stop()
		matureC = t.C
	}
	var balanceC <-chan time.Time
	if m.cfg.Balance.Interval > 0 {
		t := time.NewTicker(m.cfg.Balance.Interval)
		defer t.Stop()
		balanceC = t.C
	}
	announce := time.NewTimer(time.Hour)
	defer announce.Stop()
	// roundWarn fires when the States of a view are slow to arrive.
	roundWarn := time.NewTimer(time.Hour)
	defer roundWarn.Stop()
	lastView := bus.ViewID{}
	var arpC <-chan time.Time
	sharer, _ := m.backend.(NeighborSharer)
	if m.cfg.ARPCache > 0 && sharer != nil {
		t := time.NewTicker(m.cfg.ARPCache)
		defer t.Stop()
		arpC = t.C
		m.collectNeighbors(ctx, sharer)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case item := <-m.events:
			switch it := item.(type) {
			case error:
				if ctx.Err() == nil {
					m.log.Error("group lost: releasing every interface", "err", it)
				}
				return
			case *bus.View:
				m.onView(ctx, it)
			case *bus.Message:
				m.onMessage(ctx, it)
			}
		case <-matureC:
			m.mature = true
			m.log.Info("mature")
			m.sendState(false)
			m.leaderTick(ctx, false)
		case <-balanceC:
			m.leaderTick(ctx, true)
			m.reconcile(ctx)
		case <-announce.C:
			m.announceDue(ctx)
		case <-arpC:
			if m.collectNeighbors(ctx, sharer) {
				m.sendState(false)
			}
		case <-roundWarn.C:
			if !m.complete && m.view != nil {
				var missing []bus.MemberID
				for _, id := range m.view.Members {
					if _, ok := m.round[id]; !ok {
						missing = append(missing, id)
					}
				}
				m.log.Warn("still waiting for the states of members: sending ours again", "view", m.view.ID, "missing", missing)
				m.resend()
				roundWarn.Reset(roundWarnAfter)
			}
		case <-m.drainReq:
			if !m.draining {
				m.draining = true
				m.log.Info("draining: handing interfaces over")
				m.sendState(false)
				m.leaderTick(ctx, false)
				m.reconcile(ctx)
			}
		}
		if m.draining && len(m.held) == 0 && !m.drainClosed {
			m.drainClosed = true
			close(m.drained)
		}
		announce.Reset(m.nextAnnounce())
		if m.view != nil && m.view.ID != lastView {
			lastView = m.view.ID
			roundWarn.Reset(roundWarnAfter)
		}
		m.publish()
	}
}

func (m *Manager) publish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.view != nil {
		m.stats.View = m.view.ID
		m.stats.Members = len(m.view.Members)
		m.stats.Leader = m.view.IsLeader()
	}
	m.stats.Mature = m.mature
	m.stats.Draining = m.draining
	m.stats.Held = len(m.held)
	if m.complete {
		m.owners = maps.Clone(m.table)
	} else {
		m.owners = nil
	}
}

func (m *Manager) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

func (m *Manager) emit(ev Event) {
	if m.view != nil {
		ev.View = m.view.ID
	}
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(ev)
	}
}

func (m *Manager) onView(ctx context.Context, v *bus.View) {
	if m.shared == nil {
		m.shared = make(map[bus.MemberID][]netip.Addr)
	}
	for id := range m.shared {
		if !v.Contains(id) && (m.view == nil || !m.view.Contains(id)) {
			delete(m.shared, id)
		}
	}
	m.view = v.Clone()
	m.self = v.Members[v.Self]
	m.round = make(map[bus.MemberID]State)
	m.latest = make(map[bus.MemberID]State)
	m.complete = false
	m.table = nil
	m.bufMoves = nil
	m.resentAt = time.Time{}
	m.count(func(s *Stats) { s.Views++ })
	m.log.Debug("view", "view", v.String())
	m.sendState(true)
	pending := m.future
	m.future = nil
	for _, f := range pending {
		if f.msg.View.Compare(v.ID) > 0 {
			m.future = append(m.future, f)
		} else if f.msg.View == v.ID {
			m.handle(ctx, f.sender, f.msg)
		}
	}
}

func (m *Manager) onMessage(ctx context.Context, bm *bus.Message) {
	msg, err := decodeMessage(bm.Data)
	if err != nil {
		m.count(func(s *Stats) { s.BadMessages++ })
		m.log.Warn("ignoring message", "from", bm.Sender, "err", err)
		return
	}
	if m.view == nil || msg.View != m.view.ID {
		if m.view == nil || msg.View.Compare(m.view.ID) > 0 {
			if len(m.future) >= maxFuture {
				m.future = m.future[1:]
			}
			m.future = append(m.future, futureMsg{bm.Sender, msg})
		}
		return
	}
	m.handle(ctx, bm.Sender, msg)
}

func (m *Manager) handle(ctx context.Context, sender bus.MemberID, msg *message) {
	if !m.view.Contains(sender) {
		m.count(func(s *Stats) { s.BadMessages++ })
		return
	}
	switch msg.Kind {
	case kindState:
		st := *msg.State
		st.Member = sender
		if _, ok := m.round[sender]; msg.Initial && ok {
			// Sent again: the sender still misses States of this view.
			if sender != m.self && time.Since(m.resentAt) >= roundWarnAfter/2 {
				m.resend()
			}
			return
		}
		if msg.Initial {
			m.round[sender] = st
		}
		m.latest[sender] = st
		m.log.Debug("state", "from", sender, "initial", msg.Initial, "holdings", len(st.Holdings), "round", len(m.round), "of", len(m.view.Members))
		if len(st.Neighbors) > 0 {
			m.shared[sender] = st.Neighbors
		}
		if !m.complete {
			if len(m.round) == len(m.view.Members) {
				m.completeRound(ctx)
			}
			return
		}
		m.leaderTick(ctx, false)
		m.reconcile(ctx)
	case kindMoves:
		if sender != m.view.Leader() {
			m.count(func(s *Stats) { s.BadMessages++ })
			m.log.Warn("ignoring moves from a member that does not lead the view", "from", sender)
			return
		}
		if sender == m.self {
			return // applied when sent
		}
		if !m.complete {
			m.bufMoves = append(m.bufMoves, msg.Moves)
			return
		}
		m.applyMoves(msg.Moves)
		m.reconcile(ctx)
	}
}

func (m *Manager) applyMoves(moves []Move) {
	for _, mv := range moves {
		if _, ok := m.vifs[mv.VIF]; ok {
			m.table[mv.VIF] = mv.To
		}
	}
}

func (m *Manager) completeRound(ctx context.Context) {
	a := Plan(m.view.Members, m.names, slices.Collect(maps.Values(m.round)))
	m.log.Debug("plan", "view", m.view.ID, "owners", a.Owners, "conflicts", len(a.Conflicts))
	m.table = a.Owners
	m.complete = true
	if !slices.Contains(a.Eligible, m.self) && m.mature && !m.draining {
		if st, ok := m.round[m.self]; ok && len(a.Eligible) > 0 && st.Digest != m.round[a.Eligible[0]].Digest {
			m.log.Error("virtual interface configuration differs from the group's: not eligible", "digest", m.digest)
		}
	}
	for _, c := range a.Conflicts {
		m.count(func(s *Stats) { s.Conflicts++ })
		m.emit(Event{Kind: EventConflict, VIF: c.VIF, Peer: c.Winner})
		if c.Winner == m.self && m.held[c.VIF] != (time.Time{}) {
			m.log.Info("conflict won: announcing again", "vif", c.VIF, "losers", c.Losers)
			m.announceNow(ctx, c.VIF)
		}
	}
	for _, mv := range m.bufMoves {
		m.applyMoves(mv)
	}
	m.bufMoves = nil
	m.leaderTick(ctx, false)
	m.reconcile(ctx)
}

// localStates returns the latest States, with this member's own taken
// from its current local state.
func (m *Manager) localStates() []State {
	out := make([]State, 0, len(m.latest)+1)
	for id, s := range m.latest {
		if id != m.self {
			out = append(out, s)
		}
	}
	return append(out, m.state())
}

func (m *Manager) leaderTick(ctx context.Context, balance bool) {
	if !m.complete || !m.view.IsLeader() {
		return
	}
	states := m.localStates()
	moves := Repair(m.view.Members, m.names, states, m.table)
	m.applyMoves(moves)
	if balance {
		more := Rebalance(m.view.Members, m.names, states, m.table, m.cfg.Balance.AcquisitionsPerRound)
		m.applyMoves(more)
		moves = append(moves, more...)
	}
	if len(moves) == 0 {
		return
	}
	m.count(func(s *Stats) { s.MovesSent += uint64(len(moves)) })
	m.log.Info("reassigning", "moves", len(moves), "balance", balance)
	m.enqueue(&message{Kind: kindMoves, View: m.view.ID, Moves: moves})
	m.reconcile(ctx)
}

func (m *Manager) state() State {
	s := State{Member: m.self, Digest: m.digest, Mature: m.mature, Draining: m.draining, Prefer: slices.Clone(m.cfg.Prefer), Neighbors: m.neighbors}
	now := time.Now()
	for _, name := range m.names {
		if at, ok := m.held[name]; ok {
			s.Holdings = append(s.Holdings, Holding{VIF: name, HeldFor: now.Sub(at).Truncate(time.Millisecond)})
		}
	}
	return s
}

func (m *Manager) sendState(initial bool) {
	if m.view == nil {
		return
	}
	s := m.state()
	msg := &message{Kind: kindState, View: m.view.ID, Initial: initial, State: &s}
	if initial {
		m.initial = msg
	}
	m.enqueue(msg)
}

// resend sends this view's initial State again, then the current one.
func (m *Manager) resend() {
	if m.initial == nil || m.view == nil || m.initial.View != m.view.ID {
		return
	}
	m.resentAt = time.Now()
	m.count(func(s *Stats) { s.Resends++ })
	again := *m.initial
	m.enqueue(&again)
	m.sendState(false)
}

// confirmed reports whether owner announced, in this view, that it holds vif.
func (m *Manager) confirmed(owner bus.MemberID, vif string) bool {
	s, ok := m.latest[owner]
	if !ok {
		return false
	}
	_, held := s.holds(vif)
	return held
}

// reconcile acquires what the table gives this member and releases what
// it gives others, once they confirm they hold it.
func (m *Manager) reconcile(ctx context.Context) {
	if !m.complete {
		return
	}
	alone := m.draining && !slices.ContainsFunc(m.view.Members, func(id bus.MemberID) bool {
		if id == m.self {
			return false
		}
		s, ok := m.latest[id]
		return ok && s.Mature && !s.Draining && s.Digest == m.digest
	})
	changed := false
	for _, name := range m.names {
		owner, owned := m.table[name]
		_, held := m.held[name]
		switch {
		case owned && owner == m.self && !held && !m.draining:
			if m.acquire(ctx, name) {
				changed = true
			}
		case held && (alone || owned && owner != m.self && m.confirmed(owner, name)):
			m.release(ctx, name, owner)
			changed = true
		}
	}
	if changed {
		m.sendState(false)
	}
}

func (m *Manager) acquire(ctx context.Context, name string) bool {
	if err := m.backend.Acquire(ctx, m.vifs[name]); err != nil {
		m.count(func(s *Stats) { s.Failures++ })
		m.log.Error("acquire failed", "vif", name, "err", err)
		m.emit(Event{Kind: EventFailed, VIF: name, Err: err})
		return false
	}
	m.held[name] = time.Now()
	if m.cfg.AnnounceCount > 1 {
		m.announceN[name] = m.cfg.AnnounceCount - 1
		m.announceAt[name] = time.Now().Add(m.cfg.AnnounceInterval)
	}
	held := len(m.held)
	m.count(func(s *Stats) { s.Acquisitions++; s.Held = held })
	m.log.Info("acquired", "vif", name, "view", m.view.ID)
	m.notifyShared(ctx, name)
	m.emit(Event{Kind: EventAcquired, VIF: name})
	return true
}

func (m *Manager) release(ctx context.Context, name string, to bus.MemberID) {
	delete(m.held, name)
	delete(m.announceAt, name)
	delete(m.announceN, name)
	if err := m.backend.Release(ctx, m.vifs[name]); err != nil {
		m.count(func(s *Stats) { s.Failures++ })
		m.log.Error("release failed", "vif", name, "err", err)
		m.emit(Event{Kind: EventFailed, VIF: name, Err: err})
		m.releaseErr = errors.Join(m.releaseErr, err)
		return
	}
	held := len(m.held)
	m.count(func(s *Stats) { s.Releases++; s.Held = held })
	m.log.Info("released", "vif", name, "to", to)
	m.emit(Event{Kind: EventReleased, VIF: name, Peer: to})
}

func (m *Manager) releaseAll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, name := range slices.Sorted(maps.Keys(m.held)) {
		m.release(ctx, name, bus.MemberID{})
	}
	m.publish()
}

func (m *Manager) announceNow(ctx context.Context, name string) {
	if err := m.backend.Announce(ctx, m.vifs[name]); err != nil {
		m.count(func(s *Stats) { s.Failures++ })
		m.log.Warn("announce failed", "vif", name, "err", err)
		m.emit(Event{Kind: EventFailed, VIF: name, Err: err})
	} else {
		m.count(func(s *Stats) { s.Announcements++ })
	}
	if m.cfg.AnnounceCount > 1 {
		m.announceN[name] = m.cfg.AnnounceCount - 1
		m.announceAt[name] = time.Now().Add(m.cfg.AnnounceInterval)
	}
}

func (m *Manager) announceDue(ctx context.Context) {
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(m.announceAt)) {
		if m.announceAt[name].After(now) {
			continue
		}
		if err := m.backend.Announce(ctx, m.vifs[name]); err != nil {
			m.count(func(s *Stats) { s.Failures++ })
			m.log.Warn("announce failed", "vif", name, "err", err)
		} else {
			m.count(func(s *Stats) { s.Announcements++ })
		}
		m.announceN[name]--
		if m.announceN[name] <= 0 {
			delete(m.announceN, name)
			delete(m.announceAt, name)
		} else {
			m.announceAt[name] = now.Add(m.cfg.AnnounceInterval)
		}
	}
}

func (m *Manager) nextAnnounce() time.Duration {
	if len(m.announceAt) == 0 {
		return time.Hour
	}
	next := slices.MinFunc(slices.Collect(maps.Values(m.announceAt)), func(a, b time.Time) int { return a.Compare(b) })
	return max(time.Until(next), 0)
}

// collectNeighbors refreshes the neighbours this member shares and reports
// whether they changed.
func (m *Manager) collectNeighbors(ctx context.Context, sharer NeighborSharer) bool {
	ns, err := sharer.Neighbors(ctx)
	if err != nil {
		m.log.Warn("listing neighbours", "err", err)
		return false
	}
	slices.SortFunc(ns, func(a, b netip.Addr) int { return a.Compare(b) })
	ns = slices.Compact(ns)
	if len(ns) > maxNeighbors {
		ns = ns[:maxNeighbors]
	}
	if slices.Equal(ns, m.neighbors) {
		return false
	}
	m.neighbors = ns
	return true
}

// notifyShared announces vif directly to the neighbours shared by the
// members of this view and the last one (the previous owner included).
func (m *Manager) notifyShared(ctx context.Context, vif string) {
	sharer, ok := m.backend.(NeighborSharer)
	if !ok || m.cfg.ARPCache <= 0 {
		return
	}
	seen := make(map[netip.Addr]bool)
	var hosts []netip.Addr
	add := func(ns []netip.Addr) {
		for _, a := range ns {
			if !seen[a] {
				seen[a] = true
				hosts = append(hosts, a)
			}
		}
	}
	add(m.neighbors)
	for _, id := range slices.SortedFunc(maps.Keys(m.shared), bus.MemberID.Compare) {
		add(m.shared[id])
	}
	if len(hosts) == 0 {
		return
	}
	if err := sharer.NotifyHosts(ctx, m.vifs[vif], hosts); err != nil {
		m.log.Warn("notifying shared neighbours", "vif", vif, "err", err)
	}
}
