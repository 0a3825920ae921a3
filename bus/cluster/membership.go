package cluster

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/peerscale/peerscale/bus"
)

// linkLinger is how long the link state of a dead member is kept in case
// memberlist declared it dead wrongly and it comes back.
const linkLinger = time.Minute

type evKind uint8

const (
	evJoin  evKind = iota + 1 // memberlist: a member is alive
	evLeave                   // memberlist: a member left or died
	evBye                     // a linked member said goodbye
	evState                   // a member's state (to the coordinator)
	evLocal                   // this member's joined groups changed
	evAck                     // a link acknowledged frames
)

type event struct {
	kind  evKind
	id    bus.MemberID
	meta  meta
	addr  string // memberlist address
	state stateMsg
}

type recentNode struct {
	addr string
	at   time.Time
}

// post queues an event for the manager. It never blocks: memberlist calls
// it holding its node lock.
func (b *Bus) post(e event) {
	b.evMu.Lock()
	b.evs = append(b.evs, e)
	b.evMu.Unlock()
	notify(b.evWake)
}

func (b *Bus) linkAcked() {
	if b.tracking.Load() > 0 && !b.ackPending.Swap(true) {
		b.post(event{kind: evAck})
	}
}

// delegate serves memberlist: static node metadata and nothing else.
type delegate struct{ meta []byte }

func (d *delegate) NodeMeta(int) []byte                 { return d.meta }
func (d *delegate) NotifyMsg([]byte)                    {}
func (d *delegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *delegate) LocalState(bool) []byte              { return nil }
func (d *delegate) MergeRemoteState(buf []byte, _ bool) {}

// events turns memberlist's callbacks into manager events.
type events struct{ b *Bus }

func (e *events) node(n *memberlist.Node) (event, bool) {
	id, err := bus.ParseMemberID(n.Name)
	if err != nil {
		e.b.log.Debug("ignoring node", "node", n.Name, "err", err)
		return event{}, false
	}
	m, err := decodeMeta(n.Meta)
	if err != nil || m.Incarnation != id.Incarnation {
		e.b.log.Debug("ignoring node with bad metadata", "node", n.Name, "err", err)
		return event{}, false
	}
	return event{id: id, meta: m, addr: n.Address()}, true
}

func (e *events) NotifyJoin(n *memberlist.Node) {
	if ev, ok := e.node(n); ok {
		ev.kind = evJoin
		e.b.post(ev)
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	if ev, ok := e.node(n); ok {
		ev.kind = evLeave
		e.b.post(ev)
	}
}

func (e *events) NotifyUpdate(*memberlist.Node) {}

// mlHandler re-levels memberlist's "[LEVEL] memberlist: ..." lines.
type mlHandler struct{ slog.Handler }

func (h mlHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h mlHandler) Handle(ctx context.Context, r slog.Record) error {
	msg, level := r.Message, slog.LevelInfo
	for _, p := range []struct {
		tag string
		l   slog.Level
	}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelError}, {"[ERROR] ", slog.LevelError}} {
		if i := strings.Index(msg, p.tag); i >= 0 {
			msg, level = msg[i+len(p.tag):], p.l
			break
		}
	}
	if !h.Handler.Enabled(ctx, level) {
		return nil
	}
	nr := slog.NewRecord(r.Time, level, msg, r.PC)
	return h.Handler.Handle(ctx, nr)
}

func (b *Bus) memberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.Name = b.self.String()
	c.BindAddr = b.cfg.BindAddr
	c.BindPort = b.cfg.GossipPort
	c.AdvertisePort = b.cfg.GossipPort
	c.ProbeInterval = b.cfg.ProbeInterval
	c.ProbeTimeout = b.cfg.ProbeTimeout
	c.SuspicionMult = b.cfg.SuspicionMult
	c.GossipInterval = b.cfg.GossipInterval
	c.TCPTimeout = b.cfg.DialTimeout
	c.RetransmitMult = 4 // the LAN default: every member hears of a join
	c.Label = b.cfg.Label
	if b.cfg.Key != nil {
		c.SecretKey = b.cfg.Key
	}
	c.Delegate = &delegate{meta: b.meta.encode()}
	c.Events = &events{b: b}
	c.Logger = log.New(logWriter{b.log}, "", 0)
	c.LogOutput = nil
	if b.cfg.Memberlist != nil {
		b.cfg.Memberlist(c)
	}
	return c
}

// logWriter bridges memberlist's log.Logger to slog.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	h := mlHandler{w.l.With("subsystem", "memberlist").Handler()}
	slog.NewLogLogger(h, slog.LevelInfo).Print(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// member is a live member as the manager sees it.
type member struct {
	id   bus.MemberID
	meta meta
	addr string
}

// tracker follows one installed view until every live member acknowledged
// it, then tells them it is stable.
type tracker struct {
	group string
	seq   uint64
	waits map[*link]uint64
	until time.Time
}

// manager runs the membership and coordinator logic in one goroutine.
type manager struct {
	b        *Bus
	alive    map[bus.MemberID]member
	coord    bus.MemberID
	syncing  bool
	syncWait map[bus.MemberID]bool
	syncEnd  time.Time
	wants    map[bus.MemberID]map[string]bool
	floor    map[string]uint64
	trackers []*tracker
	lastTick time.Time
	lastSync time.Time // last memberlist state sync for an unknown peer

	// Agreed order after taking over (agreed.go).
	orders      map[bus.MemberID]map[string]orderState // members' reported progress
	flushing    bool
	flushEnd    time.Time
	flushTarget map[string]uint64
	reset       map[string]bool // groups whose next view starts a new sequencer

	// Asymmetric faults: live members this member's links cannot reach
	// (LinkTimeout) or that stopped reading (SlowTimeout), and what the
	// members reported of theirs.
	unreach map[bus.MemberID]bool
	slow    map[bus.MemberID]bool
	repSlow map[bus.MemberID][]bus.MemberID
	repUnr  map[bus.MemberID][]bus.MemberID
	stale   map[bus.MemberID]bool // excluded: back only after a fresh state
	wasExcl map[bus.MemberID]bool // excluded at the last look

	// States that came while another member coordinated: a member that
	// sees the old coordinator die before this one does sends its state
	// here first. They are used when this member takes over.
	early map[bus.MemberID]earlyState

	// The view of each group each member reported in its last state.
	reported map[bus.MemberID]map[string]viewMsg

	// Members memberlist declared dead while their links still had a
	// connection: kept alive while their links answer pings.
	doubt map[bus.MemberID]*doubt
	// Views of other coordinators whose members are coming back: when
	// the first of them was ready to merge.
	mergeWait map[bus.ViewID]time.Time
}

// doubt is a death memberlist reported that the data link contradicts.
type doubt struct {
	ev       event
	seq      uint64    // the ping waiting for its acknowledgement
	sent     time.Time // when it was sent
	answered bool      // a ping was acknowledged since the death
}

type earlyState struct {
	st stateMsg
	at time.Time
}

func newManager(b *Bus) *manager {
	return &manager{
		b:      b,
		alive:  make(map[bus.MemberID]member),
		coord:  b.self,
		wants:  make(map[bus.MemberID]map[string]bool),
		floor:  make(map[string]uint64),
		orders: make(map[bus.MemberID]map[string]orderState),
		reset:  make(map[string]bool),

		unreach: make(map[bus.MemberID]bool),
		slow:    make(map[bus.MemberID]bool),
		repSlow: make(map[bus.MemberID][]bus.MemberID),
		repUnr:  make(map[bus.MemberID][]bus.MemberID),
		stale:   make(map[bus.MemberID]bool),
		early:   make(map[bus.MemberID]earlyState),

		reported:  make(map[bus.MemberID]map[string]viewMsg),
		doubt:     make(map[bus.MemberID]*doubt),
		mergeWait: make(map[bus.ViewID]time.Time),
	}
}

func (b *Bus) manage() {
	m := newManager(b)
	b.seq.mu.Lock()
	b.seq.active = true // alone so far
	b.seq.mu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-b.evWake:
		case <-tick.C:
			m.tick()
		case <-b.done:
			return
		}
		b.evMu.Lock()
		evs := b.evs
		b.evs = nil
		b.evMu.Unlock()
		b.mu.RLock()
		closing := b.closed
		b.mu.RUnlock()
		if closing {
			continue // Close is under way: install nothing more
		}
		for _, e := range evs {
			m.handle(e)
		}
		m.checkDoubts(time.Now())
		m.electCoordinator()
		m.flush()
		m.checkTrackers()
	}
}

func (m *manager) isCoord() bool { return m.coord == m.b.self }

func (m *manager) handle(e event) {
	b := m.b
	switch e.kind {
	case evJoin:
		if e.id == b.self {
			return
		}
		b.mu.Lock()
		delete(b.tomb, e.id) // alive again after a false suspicion
		b.mu.Unlock()
		if _, doubted := m.doubt[e.id]; doubted {
			delete(m.doubt, e.id)
			b.log.Info("member alive again after memberlist declared it dead", "peer", e.id.String())
		}
		m.alive[e.id] = member{id: e.id, meta: e.meta, addr: e.addr}
		b.recentMu.Lock()
		delete(b.recent, e.id)
		b.liveAddrs[e.addr] = true
		b.recentMu.Unlock()
		if l := b.linkFor(e.id, e.meta.DataAddr); l != nil {
			l.setDown(false)
		}
		b.log.Info("member up", "peer", e.id.String())
	case evLeave, evBye:
		if e.id == b.self {
			return
		}
		if e.kind == evLeave && m.doubtDeath(e, time.Now()) {
			return
		}
		m.leave(e)
	case evState:
		b.mu.RLock()
		_, dead := b.tomb[e.id]
		b.mu.RUnlock()
		if dead {
			return
		}
		if !m.isCoord() {
			// Sent to this member as the next coordinator before it
			// saw the old one go: kept for the take-over.
			m.early[e.id] = earlyState{st: e.state, at: time.Now()}
			return
		}
		m.reconcile(e.id, e.state)
	case evLocal:
		st := b.localState()
		if m.isCoord() {
			m.reconcile(b.self, st)
		} else {
			m.sendState(st)
		}
	case evAck:
		b.ackPending.Store(false)
	}
}

// leave forgets member e.id: memberlist declared it dead (and its link
// did not answer) or it said goodbye.
func (m *manager) leave(e event) {
	b := m.b
	delete(m.doubt, e.id)
	mem, ok := m.alive[e.id]
	delete(m.alive, e.id)
	delete(m.wants, e.id)
	delete(m.syncWait, e.id)
	delete(m.orders, e.id)
	delete(m.repSlow, e.id)
	delete(m.repUnr, e.id)
	if m.unreach[e.id] || m.slow[e.id] {
		// What this member reports to the coordinator must drop it too,
		// or the coordinator keeps it out after it comes back.
		delete(m.unreach, e.id)
		delete(m.slow, e.id)
		m.publishLinkFaults()
	}
	delete(m.early, e.id)
	delete(m.reported, e.id)
	if ok && mem.addr != "" {
		b.recentMu.Lock()
		b.recent[e.id] = recentNode{addr: mem.addr, at: time.Now()}
		delete(b.liveAddrs, mem.addr)
		b.recentMu.Unlock()
	}
	if e.kind == evBye {
		b.removeLink(e.id)
	} else {
		b.mu.RLock()
		l := b.links[e.id]
		b.mu.RUnlock()
		if l != nil {
			l.setDown(true)
		}
	}
	if ok {
		b.stats.down.Add(1)
		b.log.Info("member down", "peer", e.id.String(), "bye", e.kind == evBye)
	}
}

// doubtDeath checks a death memberlist reports against the data link:
// when the link to the member is connected, the member stays alive until
// a ping on the link goes unanswered (and nothing else comes from the
// member) for confirmTimeout or the connection drops. A death gossiped across a healing partition (the other side
// declared the member dead while it was cut off) then does not make the
// members that always reached it install views without it. It reports
// whether the death is put off.
func (m *manager) doubtDeath(e event, now time.Time) bool {
	b := m.b
	if _, ok := m.alive[e.id]; !ok {
		return false
	}
	b.mu.RLock()
	l := b.links[e.id]
	b.mu.RUnlock()
	if l == nil || !l.connected() {
		return false
	}
	seq := l.ping()
	if seq == 0 {
		return false
	}
	m.doubt[e.id] = &doubt{ev: e, seq: seq, sent: now}
	b.stats.doubted.Add(1)
	b.log.Debug("memberlist reports a member dead; checking its link", "peer", e.id.String())
	return true
}

// confirmTimeout is how long a ping may wait for its acknowledgement
// (or anything else from the peer) before a death memberlist reported is
// accepted.
func (m *manager) confirmTimeout() time.Duration {
	return max(2*m.b.cfg.ProbeTimeout, m.b.cfg.ProbeInterval, 250*time.Millisecond)
}

// checkDoubts accepts the deaths whose links stopped answering or lost
// their connection, and pings again the links that answered, every
// ProbeInterval, while memberlist still reports the member dead.
func (m *manager) checkDoubts(now time.Time) {
	b := m.b
	for _, id := range slices.SortedFunc(maps.Keys(m.doubt), bus.MemberID.Compare) {
		d := m.doubt[id]
		b.mu.RLock()
		l := b.links[id]
		b.mu.RUnlock()
		switch {
		case l == nil || !l.connected():
		case l.ackedSeq() >= d.seq || l.heardSince(d.sent):
			if !d.answered {
				d.answered = true
				b.log.Info("memberlist reports a member dead that its link reaches; kept", "peer", id.String())
			}
			if now.Sub(d.sent) >= b.cfg.ProbeInterval {
				if d.seq = l.ping(); d.seq == 0 {
					break
				}
				d.sent = now
			}
			continue
		case now.Sub(d.sent) < m.confirmTimeout():
			continue
		}
		m.leave(d.ev)
	}
}

func older(a, b member) int {
	if c := cmp.Compare(a.meta.Boot, b.meta.Boot); c != 0 {
		return c
	}
	return a.id.Compare(b.id)
}

// electCoordinator makes the oldest live member the coordinator.
func (m *manager) electCoordinator() {
	b := m.b
	best := member{id: b.self, meta: b.meta}
	for _, mem := range m.alive {
		if m.unreach[mem.id] {
			continue // its links fail: it coordinates its own side
		}
		if older(mem, best) < 0 {
			best = mem
		}
	}
	b.mu.Lock()
	b.nalive = len(m.alive) + 1
	b.coord = best.id
	b.mu.Unlock()
	if best.id == m.coord {
		return
	}
	m.coord = best.id
	b.log.Info("coordinator", "coord", best.id.String())
	m.trackers = nil
	b.tracking.Store(0)
	b.seq.deactivate(best.id == b.self)
	m.flushing = false
	clear(m.orders)
	st := b.localState()
	if best.id != b.self {
		m.sendState(st)
		b.wg.Go(b.resubmitAll) // waits for Sends under way
		return
	}
	b.markSynced()
	b.wg.Go(b.resubmitAll) // held until the sequencer is active
	// Take over: collect every member's state before installing views.
	m.wants = map[bus.MemberID]map[string]bool{}
	m.syncWait = make(map[bus.MemberID]bool)
	for id := range m.alive {
		m.syncWait[id] = true
	}
	m.syncing = len(m.syncWait) > 0
	m.syncEnd = time.Now().Add(b.cfg.SyncTimeout)
	m.reconcile(b.self, st)
	m.useEarly(time.Now())
}

// useEarly reconciles the states that came before this member took over,
// when they are recent enough to have been sent for this take-over. A
// member whose wants changed since sends a newer state.
func (m *manager) useEarly(now time.Time) {
	for _, id := range slices.SortedFunc(maps.Keys(m.early), bus.MemberID.Compare) {
		es := m.early[id]
		if now.Sub(es.at) <= m.b.cfg.SyncTimeout {
			m.b.log.Debug("state received before the take-over", "peer", id.String())
			m.reconcile(id, es.st)
		}
	}
	clear(m.early)
}

func (m *manager) sendState(st stateMsg) {
	if l := m.b.linkFor(m.coord, ""); l != nil {
		l.send(nil, fState, st.encode())
	}
}

func (b *Bus) localState() stateMsg {
	b.mu.RLock()
	defer b.mu.RUnlock()
	st := stateMsg{Joined: slices.Sorted(maps.Keys(b.joined))}
	for _, g := range slices.Sorted(maps.Keys(b.known)) {
		st.Views = append(st.Views, *b.known[g])
	}
	for _, g := range st.Joined {
		if o, ok := b.joined[g].orderState(); ok {
			st.Orders = append(st.Orders, o)
		}
	}
	st.Unreachable = slices.Clone(b.unreachable)
	st.Slow = slices.Clone(b.slow)
	return st
}

// pending reports whether this member waits for the coordinator: a join
// without its first view, a member excluded from a group it belongs to,
// or a leave not yet installed.
func (b *Bus) pending() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return false
	}
	for g, h := range b.joined {
		if h.firstView() == 0 {
			return true
		}
		if v := b.known[g]; v != nil && !slices.Contains(v.Members, b.self) {
			return true // excluded (links or reading): ask to come back
		}
	}
	for g, v := range b.known {
		if _, ok := b.joined[g]; !ok && slices.Contains(v.Members, b.self) {
			return true
		}
	}
	return false
}

// reconcile records what member id wants and brings it up to date.
func (m *manager) reconcile(id bus.MemberID, st stateMsg) {
	b := m.b
	if b.log.Enabled(context.Background(), slog.LevelDebug) {
		var vs, ds []string
		for _, v := range st.Views {
			vs = append(vs, v.ID.String())
		}
		for _, o := range st.Orders {
			ds = append(ds, o.View.String())
		}
		b.log.Debug("state", "peer", id.String(), "known", vs, "delivered", ds, "stale", m.stale[id])
	}
	w := make(map[string]bool, len(st.Joined))
	for _, g := range st.Joined {
		w[g] = true
	}
	m.wants[id] = w
	delete(m.syncWait, id)
	os := make(map[string]orderState, len(st.Orders))
	for _, o := range st.Orders {
		os[o.Group] = o
	}
	m.orders[id] = os
	delete(m.stale, id)
	m.repSlow[id] = st.Slow
	m.repUnr[id] = st.Unreachable
	reported := make(map[string]uint64, len(st.Views))
	views := make(map[string]viewMsg, len(st.Views))
	for _, v := range st.Views {
		reported[v.Group] = v.ID.Seq
		views[v.Group] = v
		m.floor[v.Group] = max(m.floor[v.Group], v.ID.Seq)
		if m.missed(v) {
			b.applyView(v) // a view of a former coordinator this one missed
		}
	}
	m.reported[id] = views
	if id == b.self {
		return
	}
	l := b.linkFor(id, "")
	if l == nil {
		return
	}
	b.mu.RLock()
	var stale []viewMsg
	for g, v := range b.known {
		if reported[g] < v.ID.Seq {
			stale = append(stale, *v)
		}
	}
	b.mu.RUnlock()
	for _, v := range stale {
		l.send(nil, fView, v.append(nil))
	}
	l.send(nil, fSynced, nil)
}

func (m *manager) tick() {
	b := m.b
	now := time.Now()
	if m.syncing && now.After(m.syncEnd) {
		b.log.Debug("state sync timed out", "missing", len(m.syncWait))
		m.syncWait = nil
	}
	b.reportProgress()
	b.seq.expireGaps()
	m.checkLinks(now)
	if now.Sub(m.lastTick) >= 500*time.Millisecond {
		m.lastTick = now
		// Forget the members dead for good.
		b.mu.RLock()
		var gone []bus.MemberID
		for id, l := range b.links {
			if l.downFor(now) > linkLinger {
				gone = append(gone, id)
			} else if _, ok := m.alive[id]; !ok && l.idleFor(now) > linkLinger {
				gone = append(gone, id) // never reported by memberlist
			}
		}
		b.mu.RUnlock()
		for _, id := range gone {
			b.removeLink(id)
		}
		if b.pending() {
			b.post(event{kind: evLocal})
		}
		m.syncUnknown(now)
	}
}

// syncUnknown makes memberlist exchange its state with the coordinator
// (or another live member) when this member has to dial a peer it knows
// only from a view or a message, not from memberlist: gossip of the peer's
// join can be lost on a loaded machine, and the next periodic push-pull
// may be many seconds away, while Sends to the peer wait for the link.
func (m *manager) syncUnknown(now time.Time) {
	b := m.b
	need := false
	var addrs []string
	b.mu.RLock()
	for id, l := range b.links {
		mem, alive := m.alive[id]
		switch {
		case !alive && l.dialer:
			// Known only from a view or a message: no address to dial.
			l.mu.Lock()
			noAddr := l.addr == "" && !l.down && !l.closed
			l.mu.Unlock()
			need = need || (noAddr && l.idleFor(now) > 250*time.Millisecond)
		case alive && !l.dialer && mem.addr != "":
			// A live peer that should dial this member and has not may be
			// the one that missed this member's join: an exchange with
			// that peer itself tells it (the coordinator may be out of
			// reach, on the other side of a partition).
			if l.idleFor(now) > 250*time.Millisecond {
				addrs = append(addrs, mem.addr)
			}
		}
	}
	b.mu.RUnlock()
	need = need || len(addrs) > 0
	if !need || now.Sub(m.lastSync) < time.Second || b.mlSync.Swap(true) {
		return
	}
	m.lastSync = now
	if c, ok := m.alive[m.coord]; ok && c.addr != "" {
		addrs = append(addrs, c.addr)
	} else {
		for _, id := range slices.SortedFunc(maps.Keys(m.alive), bus.MemberID.Compare) {
			if a := m.alive[id].addr; a != "" {
				addrs = append(addrs, a)
				break
			}
		}
	}
	for _, a := range b.cfg.Seeds {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		b.mlSync.Store(false)
		return
	}
	b.log.Debug("peer unknown to memberlist; syncing its state", "with", addrs)
	b.wg.Go(func() {
		defer b.mlSync.Store(false)
		if b.isClosed() {
			return
		}
		if _, err := b.ml.Join(addrs); err != nil {
			b.log.Debug("memberlist state sync", "err", err)
		}
	})
}

// target computes the members group g should have: the current order,
// without the members that left or do not want it, then the newcomers
// oldest first.
func (m *manager) target(g string, cur []bus.MemberID) []bus.MemberID {
	self := member{id: m.b.self, meta: m.b.meta}
	lookup := func(id bus.MemberID) (member, bool) {
		if id == self.id {
			return self, true
		}
		mem, ok := m.alive[id]
		return mem, ok
	}
	excluded := m.excluded()
	var out []bus.MemberID
	for _, id := range cur {
		// A member of the view stays until it is known to be gone:
		// memberlist may not have told this member about it yet.
		if _, ok := lookup(id); !ok && m.gone(id) {
			continue
		}
		if excluded[id] || m.stale[id] {
			continue
		}
		if w, ok := m.wants[id]; ok && !w[g] {
			continue
		}
		out = append(out, id)
	}
	var fresh []member
	for id, w := range m.wants {
		if !w[g] || slices.Contains(out, id) || excluded[id] || m.stale[id] {
			continue
		}
		if m.outdated(id, g) {
			continue
		}
		if mem, ok := lookup(id); ok {
			fresh = append(fresh, mem)
		} else if !m.gone(id) {
			// Its state came on a link before memberlist told of it.
			fresh = append(fresh, member{id: id, meta: meta{Boot: math.MaxInt64}})
		}
	}
	return append(out, m.mergeOrder(g, out, fresh)...)
}

// mergeOrder orders the members joining group g: those coming back from
// a view of their own (the other side of a partition, or one excluded for
// its links) join together with the other members of that view, in that
// view's order, so that members that stay together keep their order; the
// others, and the sides, oldest first. A side's members wait (at most
// SyncTimeout from the first one ready) for the others of their view that
// did not leave and are not ready yet (no state, or a link still found
// unreachable).
func (m *manager) mergeOrder(g string, out []bus.MemberID, fresh []member) []bus.MemberID {
	now := time.Now()
	type cand struct {
		mem  member
		side bus.ViewID // zero: joins on its own
		idx  int
	}
	ready := make(map[bus.MemberID]bool, len(fresh))
	for _, mem := range fresh {
		ready[mem.id] = true
	}
	var cands []cand
	waiting := make(map[bus.ViewID]bool)
	for _, mem := range fresh {
		c := cand{mem: mem}
		if rv, ok := m.orders[mem.id][g]; ok && rv.View.Coord != m.b.self && len(rv.Members) > 1 {
			if i := slices.Index(rv.Members, mem.id); i >= 0 {
				c.side, c.idx = rv.View, i
				for _, x := range rv.Members {
					if x == mem.id || ready[x] || slices.Contains(out, x) || m.left(x) {
						continue
					}
					if w, ok := m.wants[x]; ok && !w[g] {
						continue // it left the group
					}
					if xv, ok := m.orders[x][g]; ok && xv.View != rv.View && xv.View.Coord != m.b.self {
						continue // it moved on to another side's view
					}
					waiting[rv.View] = true
				}
			}
		}
		cands = append(cands, c)
	}
	for id, since := range m.mergeWait {
		if now.Sub(since) > time.Minute {
			delete(m.mergeWait, id)
		}
	}
	lead := make(map[bus.ViewID]member)
	kept := cands[:0]
	for _, c := range cands {
		if !c.side.IsZero() && waiting[c.side] {
			since, ok := m.mergeWait[c.side]
			if !ok {
				since = now
				m.mergeWait[c.side] = now
				m.b.log.Debug("merge waits for the rest of a side", "group", g, "side", c.side.String(), "member", c.mem.id.String())
			}
			if now.Sub(since) <= m.b.cfg.SyncTimeout {
				continue // the rest of its side is on its way
			}
		}
		kept = append(kept, c)
		if !c.side.IsZero() {
			if l, ok := lead[c.side]; !ok || older(c.mem, l) < 0 {
				lead[c.side] = c.mem
			}
		}
	}
	leadOf := func(c cand) member {
		if c.side.IsZero() {
			return c.mem
		}
		return lead[c.side]
	}
	slices.SortFunc(kept, func(a, b cand) int {
		if c := older(leadOf(a), leadOf(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	ids := make([]bus.MemberID, len(kept))
	for i, c := range kept {
		ids[i] = c.mem.id
	}
	return ids
}

// missed reports whether a view a member reported is one this member
// should have received: a view that lists it, or of a group it is not in.
// A view of a group this member is in that leaves it out comes from the
// other side of a partition (or of a link failure): its members come back
// in a merged view that lists it as previous, not by installing it here.
func (m *manager) missed(v viewMsg) bool {
	b := m.b
	b.mu.RLock()
	_, joined := b.joined[v.Group]
	b.mu.RUnlock()
	return !joined || slices.Contains(v.Members, b.self)
}

// outdated reports whether the last state of id, a member outside group
// g's current view, reported an older view of this coordinator: it was
// sent before the member went its own way (a state that waited on a link
// through a partition) or before the member received the current view.
// Either way a newer state follows (the member elects this coordinator
// again, or finds itself outside the view it receives); a view built on
// the old one would not list the views the member delivered since.
func (m *manager) outdated(id bus.MemberID, g string) bool {
	r, ok := m.reported[id][g]
	if !ok || r.ID.Coord != m.b.self {
		return false
	}
	m.b.mu.RLock()
	cur := m.b.known[g]
	m.b.mu.RUnlock()
	return cur != nil && r.ID.Seq < cur.ID.Seq
}

// left reports whether id said goodbye (or was forgotten). Unlike gone,
// a member memberlist declared dead is not left: the other side of a
// partition was declared dead by this one, and comes back when it heals.
func (m *manager) left(id bus.MemberID) bool {
	m.b.mu.RLock()
	defer m.b.mu.RUnlock()
	_, dead := m.b.tomb[id]
	return dead
}

// gone reports whether id left: it said goodbye or memberlist declared it
// dead. A member not heard of yet is not gone.
func (m *manager) gone(id bus.MemberID) bool {
	if m.left(id) {
		return true
	}
	m.b.mu.RLock()
	l := m.b.links[id]
	m.b.mu.RUnlock()
	return l != nil && l.downFor(time.Now()) > 0
}

// flush installs a new view for every group whose membership changed.
func (m *manager) flush() {
	b := m.b
	if !m.isCoord() {
		return
	}
	if m.syncing {
		if len(m.syncWait) > 0 {
			return
		}
		m.syncing = false
		m.startOrderFlush()
	}
	if m.flushing && !m.orderFlushed() {
		return
	}
	b.mu.RLock()
	groups := make(map[string]*viewMsg, len(b.known))
	maps.Copy(groups, b.known)
	b.mu.RUnlock()
	for _, w := range m.wants {
		for g := range w {
			if _, ok := groups[g]; !ok {
				groups[g] = nil
			}
		}
	}
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		cur := groups[g]
		var members []bus.MemberID
		if cur != nil {
			members = cur.Members
		}
		t := m.target(g, members)
		if cur != nil && slices.Equal(t, cur.Members) && !m.reset[g] {
			continue
		}
		if cur == nil && len(t) == 0 {
			continue
		}
		m.install(g, cur, t)
	}
	m.releaseHeld()
}

func (m *manager) install(g string, cur *viewMsg, members []bus.MemberID) {
	b := m.b
	v := viewMsg{Group: g, ID: bus.ViewID{Seq: m.floor[g] + 1, Coord: b.self}, Members: members}
	if cur != nil {
		v.ID.Seq = max(v.ID.Seq, cur.ID.Seq+1)
		v.Previous = []bus.ViewID{cur.ID}
	}
	// Members coming back from a view of their own (excluded for their
	// links, or the other side of a partition): the view merges theirs.
	for _, id := range members {
		if cur != nil && slices.Contains(cur.Members, id) {
			continue
		}
		if o, ok := m.orders[id][g]; ok && !o.View.IsZero() && !slices.Contains(v.Previous, o.View) {
			v.Previous = append(v.Previous, o.View)
			v.ID.Seq = max(v.ID.Seq, o.View.Seq+1)
			m.reset[g] = true // their order positions are their side's
		}
	}
	m.floor[g] = v.ID.Seq
	// The view takes the next position of the group's order: after every
	// token sent so far, and after every position a member reported.
	b.seq.mu.Lock()
	defer b.seq.mu.Unlock()
	sg := b.seq.group(g)
	var high uint64
	if cur != nil {
		high = cur.Ord
	}
	for _, os := range m.orders {
		if o, ok := os[g]; ok {
			high = max(high, o.Recv)
		}
	}
	if high > sg.ord {
		sg.ord = high
		m.reset[g] = true
	}
	v.Reset = m.reset[g]
	delete(m.reset, g)
	b.seq.flushLocked(g)
	b.seq.passOnLocked(cur, &v)
	b.seq.nextViewLocked(&v)
	body := v.append(nil)
	tr := &tracker{group: g, seq: v.ID.Seq, waits: make(map[*link]uint64), until: time.Now().Add(b.cfg.SyncTimeout)}
	b.mu.RLock()
	links := slices.Collect(maps.Values(b.links))
	b.mu.RUnlock()
	for _, l := range links {
		if seq, _ := l.send(nil, fView, body); seq != 0 {
			tr.waits[l] = seq
		}
	}
	b.applyView(v)
	b.stats.installed.Add(1)
	b.log.Debug("view installed", "group", g, "view", v.ID.String(), "members", fmt.Sprint(members))
	m.trackers = append(m.trackers, tr)
	b.tracking.Store(int32(len(m.trackers)))
}

// checkTrackers announces the views every live member acknowledged.
func (m *manager) checkTrackers() {
	if len(m.trackers) == 0 {
		return
	}
	b := m.b
	now := time.Now()
	kept := m.trackers[:0]
	for _, tr := range m.trackers {
		for l, seq := range tr.waits {
			if l.isClosed() || l.downFor(now) > 0 || l.ackedSeq() >= seq {
				delete(tr.waits, l)
			}
		}
		if len(tr.waits) > 0 && now.Before(tr.until) {
			kept = append(kept, tr)
			continue
		}
		body := encodeStable(tr.group, tr.seq)
		b.mu.RLock()
		links := slices.Collect(maps.Values(b.links))
		b.mu.RUnlock()
		for _, l := range links {
			l.send(nil, fStable, body)
		}
		b.applyStable(tr.group, tr.seq)
	}
	clear(m.trackers[len(kept):])
	m.trackers = kept
	b.tracking.Store(int32(len(kept)))
}

// rejoinLoop joins the seeds and the recently seen members again, so
// that the cluster re-merges after a partition longer than memberlist
// remembers dead members.
func (b *Bus) rejoinLoop() {
	t := time.NewTicker(b.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.done:
			return
		}
		var addrs []string
		b.recentMu.Lock()
		live := b.liveAddrs
		for id, r := range b.recent {
			if time.Since(r.at) > 10*time.Minute {
				delete(b.recent, id)
			} else if !live[r.addr] && !slices.Contains(addrs, r.addr) {
				addrs = append(addrs, r.addr)
			}
		}
		for _, s := range b.cfg.Seeds {
			if !live[s] && !slices.Contains(addrs, s) {
				addrs = append(addrs, s)
			}
		}
		b.recentMu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		if n, err := b.ml.Join(addrs); err != nil {
			b.log.Debug("rejoin", "addrs", addrs, "joined", n, "err", err)
		}
	}
}

// startOrderFlush begins the flush of a new coordinator: for every group,
// the member that received the longest prefix of the old sequencer's
// order passes the entries the others miss on to them, so that every
// survivor delivers the same prefix before the new view.
func (m *manager) startOrderFlush() {
	b := m.b
	m.flushTarget = make(map[string]uint64)
	self, _ := func() (stateMsg, bool) { return b.localState(), true }()
	mine := make(map[string]orderState)
	for _, o := range self.Orders {
		mine[o.Group] = o
	}
	m.orders[b.self] = mine
	type span struct {
		lo, hi uint64
		leader bus.MemberID
	}
	spans := make(map[string]*span)
	for id, os := range m.orders {
		for g, o := range os {
			sp := spans[g]
			if sp == nil {
				sp = &span{lo: o.Recv, hi: o.Recv, leader: id}
				spans[g] = sp
			}
			sp.lo = min(sp.lo, o.Recv)
			if o.Recv > sp.hi {
				sp.hi, sp.leader = o.Recv, id
			}
		}
	}
	for g, sp := range spans {
		m.reset[g] = true
		if sp.hi <= sp.lo {
			continue
		}
		m.flushTarget[g] = sp.hi
		b.log.Debug("order flush", "group", g, "from", sp.lo, "to", sp.hi, "leader", sp.leader.String())
		if sp.leader == b.self {
			b.passFlush(g, sp.lo, sp.hi)
		} else if l := b.linkFor(sp.leader, ""); l != nil {
			l.send(nil, fFlushReq, encodeProgress(g, sp.lo, sp.hi))
		}
	}
	b.mu.RLock()
	for g := range b.known {
		m.reset[g] = true
	}
	b.mu.RUnlock()
	m.flushing = true
	m.flushEnd = time.Now().Add(b.cfg.SyncTimeout)
}

// orderFlushed reports whether every live member reached the flush
// targets (or the flush timed out), and then activates the sequencer.
func (m *manager) orderFlushed() bool {
	b := m.b
	if time.Now().Before(m.flushEnd) {
		self := b.localState()
		for _, o := range self.Orders {
			m.orders[b.self][o.Group] = o
		}
		for g, target := range m.flushTarget {
			for id, os := range m.orders {
				if _, alive := m.alive[id]; !alive && id != b.self {
					continue
				}
				if o, ok := os[g]; ok && o.Recv < target {
					return false
				}
			}
		}
	} else {
		b.log.Warn("order flush timed out")
	}
	m.flushing = false
	starts := make(map[string]orderStart)
	for _, os := range m.orders {
		for g, o := range os {
			st := starts[g]
			if st.high == nil {
				st.high = make(map[bus.MemberID]uint64)
			}
			st.ord = max(st.ord, o.Recv)
			for _, h := range o.High {
				st.high[h.Sender] = max(st.high[h.Sender], h.Seq)
			}
			starts[g] = st
		}
	}
	b.seq.mu.Lock()
	b.seq.activateLocked(starts)
	b.seq.mu.Unlock()
	return true
}

// releaseHeld orders the requests that came while taking over, after the
// views that start the new sequencer's order.
func (m *manager) releaseHeld() {
	b := m.b
	b.seq.mu.Lock()
	b.seq.releaseLocked()
	b.seq.mu.Unlock()
}

// checkLinks finds the live members this member's links fail to reach
// for LinkTimeout, or that hold back credit for SlowTimeout, and tells the
// coordinator when either set changes.
func (m *manager) checkLinks(now time.Time) {
	b := m.b
	cfg := b.cfg
	unreach := make(map[bus.MemberID]bool)
	slow := make(map[bus.MemberID]bool)
	b.mu.RLock()
	for id := range m.alive {
		l := b.links[id]
		if l == nil {
			continue
		}
		if cfg.LinkTimeout > 0 && l.unreachableFor(now) > cfg.LinkTimeout {
			unreach[id] = true
		} else if cfg.SlowTimeout > 0 && l.slowFor(now) > cfg.SlowTimeout {
			slow[id] = true
		}
	}
	b.mu.RUnlock()
	if maps.Equal(unreach, m.unreach) && maps.Equal(slow, m.slow) {
		return
	}
	for id := range unreach {
		if !m.unreach[id] {
			b.stats.exclusions.Add(1)
			b.log.Warn("member unreachable on its data link", "peer", id.String())
		}
	}
	for id := range slow {
		if !m.slow[id] {
			b.stats.exclusions.Add(1)
			b.log.Warn("member stopped reading", "peer", id.String())
		}
	}
	for id := range m.unreach {
		if !unreach[id] && !slow[id] {
			b.log.Info("member reachable again", "peer", id.String())
		}
	}
	m.unreach, m.slow = unreach, slow
	m.publishLinkFaults()
}

// publishLinkFaults makes the next state this member sends report
// m.unreach and m.slow, and sends it.
func (m *manager) publishLinkFaults() {
	b := m.b
	b.mu.Lock()
	b.unreachable = slices.SortedFunc(maps.Keys(m.unreach), bus.MemberID.Compare)
	b.slow = slices.SortedFunc(maps.Keys(m.slow), bus.MemberID.Compare)
	b.mu.Unlock()
	b.post(event{kind: evLocal})
}

// inView reports whether id is a member of the current view of any group.
func (m *manager) inView(id bus.MemberID) bool {
	b := m.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, v := range b.known {
		if slices.Contains(v.Members, id) {
			return true
		}
	}
	return false
}

// excluded returns the members the coordinator keeps out of the views:
// those its own links fail to reach for LinkTimeout (a member that finds
// the coordinator unreachable elects another one and goes its own way),
// those any live member reports as not reading for SlowTimeout, and the
// younger of two members that report their link to each other failing.
func (m *manager) excluded() map[bus.MemberID]bool {
	b := m.b
	out := maps.Clone(m.unreach)
	if out == nil {
		out = make(map[bus.MemberID]bool)
	}
	for id := range m.slow {
		out[id] = true
	}
	for r, xs := range m.repSlow {
		if _, live := m.alive[r]; !live || m.stale[r] {
			continue
		}
		for _, x := range xs {
			if x != b.self {
				out[x] = true
			}
		}
	}
	// A link that fails between two other members: the younger of the
	// two is kept out until the link works again, so that Sends between
	// them stop waiting. (A member that cannot reach this one elects
	// another coordinator and goes its own way.)
	self := member{id: b.self, meta: b.meta}
	for _, r := range slices.SortedFunc(maps.Keys(m.repUnr), bus.MemberID.Compare) {
		mr, live := m.alive[r]
		if !live || m.stale[r] || out[r] {
			continue
		}
		for _, x := range m.repUnr[r] {
			mx, ok := m.alive[x]
			if x == b.self || !ok || out[x] {
				continue
			}
			if older(mr, mx) < 0 && older(self, mx) < 0 {
				out[x] = true
			} else if older(self, mr) < 0 {
				out[r] = true
			}
		}
	}
	// A member newly excluded from a view it is in comes back only after
	// a state sent since (it receives the view without itself and goes
	// its own way): one that arrives while it is still excluded counts. A
	// member outside every current view (coming back from the other side
	// of a partition) sees nothing of its exclusion, so the state it sent
	// stays good.
	for id := range out {
		if !m.wasExcl[id] && m.inView(id) {
			m.stale[id] = true
		}
	}
	m.wasExcl = out
	return out
}
