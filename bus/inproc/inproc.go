package inproc

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/peerscale/peerscale/bus"
)

// Config configures a Hub. The zero value is valid; each field documents its
// default.
type Config struct {
	// MaxMessageSize is the largest payload Send accepts. Zero means 1 MiB.
	MaxMessageSize int
	// QueueLen bounds the events buffered per member per group; a Send at
	// Reliable or above waits while a receiver's queue is full. Views are
	// queued even when it is full. Zero means 1024.
	QueueLen int
	// DropRate is the probability, from 0 to 1, that an Unreliable message
	// is lost on its way to each receiver. Zero means no loss.
	DropRate float64
	// Seed seeds the generator behind DropRate and member incarnations, so a
	// run is repeatable. Zero means 1.
	Seed uint64
	// Logger receives membership changes at Debug level. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Stats is a snapshot of a Hub's counters.
type Stats struct {
	Members   int    // live members (buses)
	Groups    int    // groups with at least one member
	Views     uint64 // views installed
	Sent      uint64 // messages accepted by Send
	Delivered uint64 // message copies queued for receivers
	Dropped   uint64 // Unreliable copies lost (DropRate or a full queue)
	Waits     uint64 // times a Send waited for a full queue
}

// Hub connects the members of one in-process system. Members are created
// with NewMember. A Hub starts no goroutines: every delivery happens in the
// sender's call, which makes it fit for testing/synctest.
//
// All methods are safe for concurrent use.
type Hub struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	rng     *rand.Rand
	buses   map[*Bus]struct{}
	groups  map[string]*group
	viewSeq uint64
	stamp   uint64
	closed  bool
	stats   Stats
}

// New returns an empty Hub.
func New(cfg Config) *Hub {
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 1 << 20
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.DropRate < 0 {
		cfg.DropRate = 0
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Hub{
		cfg:    cfg,
		log:    log.With("component", "bus/inproc"),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		buses:  make(map[*Bus]struct{}),
		groups: make(map[string]*group),
	}
}

// NewMember starts a member named name. Names may repeat: each member is a
// new incarnation with its own MemberID.
func (h *Hub) NewMember(name string) (*Bus, error) {
	if name == "" {
		return nil, fmt.Errorf("inproc: empty member name")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, bus.ErrClosed
	}
	inc := h.rng.Uint64()
	for inc == 0 || h.incarnationUsed(name, inc) {
		inc = h.rng.Uint64()
	}
	b := &Bus{hub: h, id: bus.MemberID{Name: name, Incarnation: inc}, groups: make(map[string]*member)}
	h.buses[b] = struct{}{}
	return b, nil
}

func (h *Hub) incarnationUsed(name string, inc uint64) bool {
	for b := range h.buses {
		if b.id.Name == name && b.id.Incarnation == inc {
			return true
		}
	}
	return false
}

// Crash stops b abruptly, as a process crash would: the other members see it
// leave every group it belonged to, and b's calls return bus.ErrClosed.
func (h *Hub) Crash(b *Bus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closeLocked(b)
}

// Partition splits the members into sides that cannot reach each other:
// members of different sides receive none of each other's messages and
// each side installs its own views. Members not listed form one more side
// together. A new Partition replaces the previous one.
func (h *Hub) Partition(sides ...[]*Bus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for b := range h.buses {
		b.side = 0
	}
	for i, side := range sides {
		for _, b := range side {
			if _, ok := h.buses[b]; ok {
				b.side = i + 1
			}
		}
	}
	h.reviewAllLocked()
}

// Heal reconnects every side: each group installs one merged view whose
// Previous lists the last view of every side.
func (h *Hub) Heal() {
	h.Partition()
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats
	s.Members = len(h.buses)
	s.Groups = len(h.groups)
	return s
}

// Close closes every member. It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for b := range h.buses {
		h.closeLocked(b)
	}
	h.closed = true
	return nil
}

// closeLocked removes b from every group and the hub.
func (h *Hub) closeLocked(b *Bus) {
	if b.closed {
		return
	}
	b.closed = true
	delete(h.buses, b)
	for _, m := range b.groups {
		h.leaveLocked(m)
	}
}

// group is the hub's record of one group.
type group struct {
	name    string
	members []*member // in join order (stamp)
}

func (h *Hub) joinLocked(b *Bus, name string) *member {
	g := h.groups[name]
	if g == nil {
		g = &group{name: name}
		h.groups[name] = g
	}
	h.stamp++
	m := &member{bus: b, g: g, stamp: h.stamp, cap: h.cfg.QueueLen}
	g.members = append(g.members, m)
	b.groups[name] = m
	h.reviewLocked(g)
	return m
}

func (h *Hub) leaveLocked(m *member) {
	g := m.g
	i := slices.Index(g.members, m)
	if i < 0 {
		return
	}
	g.members = slices.Delete(g.members, i, i+1)
	delete(m.bus.groups, g.name)
	m.close()
	if len(g.members) == 0 {
		delete(h.groups, g.name)
		return
	}
	h.reviewLocked(g)
}

func (h *Hub) reviewAllLocked() {
	names := make([]string, 0, len(h.groups))
	for n := range h.groups {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		h.reviewLocked(h.groups[n])
	}
}

// reviewLocked installs a new view on every side of g whose members' views
// no longer match the side's membership.
func (h *Hub) reviewLocked(g *group) {
	sides := make(map[int][]*member)
	var order []int
	for _, m := range g.members {
		s := m.bus.side
		if _, ok := sides[s]; !ok {
			order = append(order, s)
		}
		sides[s] = append(sides[s], m)
	}
	slices.Sort(order)
	for _, s := range order {
		ms := sides[s]
		ids := make([]bus.MemberID, len(ms))
		for i, m := range ms {
			ids[i] = m.bus.id
		}
		current := true
		for _, m := range ms {
			if m.view == nil || !slices.Equal(m.view.Members, ids) {
				current = false
				break
			}
		}
		if current {
			continue
		}
		h.installLocked(g, ms, ids)
	}
}

func (h *Hub) installLocked(g *group, ms []*member, ids []bus.MemberID) {
	h.viewSeq++
	h.stats.Views++
	id := bus.ViewID{Seq: h.viewSeq, Coord: ids[0]}
	var prev []bus.ViewID
	for _, m := range ms {
		if m.view != nil && !slices.Contains(prev, m.view.ID) {
			prev = append(prev, m.view.ID)
		}
	}
	slices.SortFunc(prev, bus.ViewID.Compare)
	for i, m := range ms {
		v := &bus.View{
			Group:    g.name,
			ID:       id,
			Members:  ids,
			Self:     i,
			Previous: prev,
		}
		if m.view == nil {
			v.Joined = slices.Clone(ids)
		} else {
			for _, x := range ids {
				if !m.view.Contains(x) {
					v.Joined = append(v.Joined, x)
				}
			}
			for _, x := range m.view.Members {
				if !slices.Contains(ids, x) {
					v.Left = append(v.Left, x)
				}
			}
		}
		m.view = v
		m.push(v, true)
	}
	h.log.Debug("view installed", "group", g.name, "view", id.String(), "members", len(ids), "merge", len(prev) > 1)
}

// send delivers one message from b. It returns the channel to wait on when
// a receiver's queue is full (nil when the message was delivered).
func (h *Hub) sendLocked(b *Bus, name string, level bus.Level, data []byte) (wait chan struct{}) {
	g := h.groups[name]
	if g == nil {
		h.stats.Sent++
		return nil
	}
	if level != bus.Unreliable {
		for _, m := range g.members {
			if m.bus.side == b.side {
				if ch := m.waitSpace(); ch != nil {
					h.stats.Waits++
					return ch
				}
			}
		}
	}
	h.stats.Sent++
	for _, m := range g.members {
		if m.bus.side != b.side {
			continue
		}
		if level == bus.Unreliable && h.cfg.DropRate > 0 && h.rng.Float64() < h.cfg.DropRate {
			h.stats.Dropped++
			continue
		}
		msg := &bus.Message{Group: name, Sender: b.id, Level: level, View: m.view.ID, Data: data}
		if m.push(msg, level != bus.Unreliable) {
			h.stats.Delivered++
		} else {
			h.stats.Dropped++
		}
	}
	return nil
}

// Bus is one member of a Hub. It implements bus.Bus.
type Bus struct {
	hub *Hub
	id  bus.MemberID

	// guarded by hub.mu
	groups map[string]*member
	side   int
	closed bool
}

var _ bus.Bus = (*Bus)(nil)

// Self returns the member's identity.
func (b *Bus) Self() bus.MemberID { return b.id }

// MaxMessageSize returns the hub's message size limit.
func (b *Bus) MaxMessageSize() int { return b.hub.cfg.MaxMessageSize }

// Join joins group; see bus.Bus.
func (b *Bus) Join(ctx context.Context, name string) (bus.Group, error) {
	if err := bus.ValidateGroup(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := b.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if b.closed {
		return nil, bus.ErrClosed
	}
	if _, ok := b.groups[name]; ok {
		return nil, fmt.Errorf("%w: %s", bus.ErrAlreadyJoined, name)
	}
	return h.joinLocked(b, name), nil
}

// Send multicasts data to group; see bus.Bus.
func (b *Bus) Send(ctx context.Context, name string, level bus.Level, data []byte) error {
	if !level.Valid() {
		return fmt.Errorf("%w: %d", bus.ErrBadLevel, level)
	}
	if err := bus.ValidateGroup(name); err != nil {
		return err
	}
	if len(data) > b.hub.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes > %d", bus.ErrTooLarge, len(data), b.hub.cfg.MaxMessageSize)
	}
	payload := slices.Clone(data)
	if payload == nil {
		payload = []byte{}
	}
	h := b.hub
	for {
		h.mu.Lock()
		if b.closed {
			h.mu.Unlock()
			return bus.ErrClosed
		}
		wait := h.sendLocked(b, name, level, payload)
		h.mu.Unlock()
		if wait == nil {
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close leaves every group and closes the member. It is idempotent.
func (b *Bus) Close() error {
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	b.hub.closeLocked(b)
	return nil
}

// member is a Bus's membership of one group; it implements bus.Group.
type member struct {
	bus   *Bus
	g     *group
	stamp uint64
	cap   int

	view *bus.View // guarded by hub.mu

	mu     sync.Mutex
	q      []bus.Event // ring buffer
	head   int
	n      int
	msgs   int           // messages (not views) in q
	notify chan struct{} // signalled when an event is queued; cap 1
	space  chan struct{} // closed when the queue drains below cap
	closed bool
}

var _ bus.Group = (*member)(nil)

func (m *member) Name() string { return m.g.name }

// push queues ev. A message that finds the queue full is refused unless
// force is set; views are always queued.
func (m *member) push(ev bus.Event, force bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	_, isMsg := ev.(*bus.Message)
	if isMsg && m.msgs >= m.cap && !force {
		return false
	}
	if m.n == len(m.q) {
		size := max(16, 2*len(m.q))
		q := make([]bus.Event, size)
		for i := 0; i < m.n; i++ {
			q[i] = m.q[(m.head+i)%len(m.q)]
		}
		m.q, m.head = q, 0
	}
	m.q[(m.head+m.n)%len(m.q)] = ev
	m.n++
	if isMsg {
		m.msgs++
	}
	if m.notify != nil {
		select {
		case m.notify <- struct{}{}:
		default:
		}
	}
	return true
}

// waitSpace returns nil when the queue has room for a message, or a channel
// closed when it has.
func (m *member) waitSpace() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.msgs < m.cap {
		return nil
	}
	if m.space == nil {
		m.space = make(chan struct{})
	}
	return m.space
}

func (m *member) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	m.q, m.n, m.head, m.msgs = nil, 0, 0, 0
	if m.space != nil {
		close(m.space)
		m.space = nil
	}
	if m.notify != nil {
		select {
		case m.notify <- struct{}{}:
		default:
		}
	}
}

// Recv returns the next event; see bus.Group.
func (m *member) Recv(ctx context.Context) (bus.Event, error) {
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return nil, bus.ErrClosed
		}
		if m.n > 0 {
			ev := m.q[m.head]
			m.q[m.head] = nil
			m.head = (m.head + 1) % len(m.q)
			m.n--
			if _, ok := ev.(*bus.Message); ok {
				m.msgs--
				if m.space != nil && m.msgs < m.cap {
					close(m.space)
					m.space = nil
				}
			}
			m.mu.Unlock()
			return ev, nil
		}
		if m.notify == nil {
			m.notify = make(chan struct{}, 1)
		}
		ch := m.notify
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Send is Bus.Send to this group; after Leave it returns bus.ErrClosed.
func (m *member) Send(ctx context.Context, level bus.Level, data []byte) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return bus.ErrClosed
	}
	return m.bus.Send(ctx, m.g.name, level, data)
}

// Leave leaves the group; see bus.Group.
func (m *member) Leave(ctx context.Context) error {
	h := m.bus.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if m.bus.groups[m.g.name] == m {
		h.leaveLocked(m)
	}
	return nil
}
