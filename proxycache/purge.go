package proxycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// purgeKind says what a purge removes.
type purgeKind uint8

const (
	purgeURL    purgeKind = 1 // one key
	purgePrefix purgeKind = 2 // every key with a prefix
	purgeEvery  purgeKind = 3 // everything
)

// purgeTarget is a purge in the form the store and the wire use.
type purgeTarget struct {
	kind purgeKind
	host string // configured host; empty for purgeEvery
	path string // request URI (purgeURL) or its prefix (purgePrefix)
}

// PurgeURL removes the entry for rawURL (every variant), whose host must be
// a configured host. With a bus it is applied by every member.
func (c *Cache) PurgeURL(ctx context.Context, rawURL string) error {
	t, err := c.target(rawURL, purgeURL)
	if err != nil {
		return err
	}
	return c.purge(ctx, t)
}

// PurgePrefix removes every entry whose URL starts with rawPrefix (host and
// path, query included when given). A prefix ending in '/' renames its
// directory out of the tree at once; the files are deleted in the
// background. With a bus it is applied by every member.
func (c *Cache) PurgePrefix(ctx context.Context, rawPrefix string) error {
	t, err := c.target(rawPrefix, purgePrefix)
	if err != nil {
		return err
	}
	return c.purge(ctx, t)
}

// PurgeAll empties the cache. With a bus it is applied by every member.
func (c *Cache) PurgeAll(ctx context.Context) error {
	return c.purge(ctx, purgeTarget{kind: purgeEvery})
}

func (c *Cache) target(raw string, kind purgeKind) (purgeTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return purgeTarget{}, fmt.Errorf("%w: %q", ErrBadPurge, raw)
	}
	o := c.originForHost(u.Host)
	if o == nil {
		return purgeTarget{}, fmt.Errorf("%w: %q: %w", ErrBadPurge, raw, ErrUnknownHost)
	}
	p := requestURI(u)
	if kind == purgePrefix && u.RawQuery == "" && !u.ForceQuery {
		p = u.EscapedPath()
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
	}
	return purgeTarget{kind: kind, host: o.host, path: p}, nil
}

func (c *Cache) purge(ctx context.Context, t purgeTarget) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.cl != nil {
		return c.cl.purge(ctx, t)
	}
	c.applyPurge(t)
	return nil
}

// applyPurge removes what t names from the local store.
func (c *Cache) applyPurge(t purgeTarget) {
	if t.kind != purgeEvery {
		o := c.originForHost(t.host)
		if o == nil {
			return
		}
		t.host = o.host
	}
	var n int
	switch t.kind {
	case purgeURL:
		n = c.store.purgeKey(t.host + t.path)
	case purgePrefix:
		n = c.store.purgePrefix(t.host, t.path)
	case purgeEvery:
		n = c.store.purgeAll()
	}
	c.st.purges.Add(1)
	c.st.purgedObjects.Add(uint64(n))
	c.kickTrash()
	c.log.Info("purge applied", "kind", t.kind, "host", t.host, "path", t.path, "removed", n)
}

func (k purgeKind) String() string {
	switch k {
	case purgeURL:
		return "url"
	case purgePrefix:
		return "prefix"
	case purgeEvery:
		return "all"
	}
	return "unknown"
}

// Wire format of the purge group, one message per bus message:
//
//	purge: 'P' flags:u8 kind:u8 id:uvarint host:uvarint-len+bytes path:uvarint-len+bytes
//	ack:   'A' id:uvarint origin-incarnation:uvarint origin-name:rest
//
// flags bit 0 asks every member to acknowledge. An ack names the purge by
// its sender and id.
const (
	msgPurge = 'P'
	msgAck   = 'A'
	flagAck  = 1
)

var errBadMessage = errors.New("proxycache: malformed purge message")

type wireMsg struct {
	typ     byte
	wantAck bool
	id      uint64
	t       purgeTarget
	origin  bus.MemberID // ack only
}

func (m *wireMsg) encode() []byte {
	b := []byte{m.typ}
	switch m.typ {
	case msgPurge:
		var flags byte
		if m.wantAck {
			flags |= flagAck
		}
		b = append(b, flags, byte(m.t.kind))
		b = binary.AppendUvarint(b, m.id)
		b = binary.AppendUvarint(b, uint64(len(m.t.host)))
		b = append(b, m.t.host...)
		b = binary.AppendUvarint(b, uint64(len(m.t.path)))
		b = append(b, m.t.path...)
	case msgAck:
		b = binary.AppendUvarint(b, m.id)
		b = binary.AppendUvarint(b, m.origin.Incarnation)
		b = append(b, m.origin.Name...)
	}
	return b
}

func decodeMsg(b []byte) (*wireMsg, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errBadMessage)
	}
	m := &wireMsg{typ: b[0]}
	b = b[1:]
	uvar := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // minimal encoding only
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := uvar()
		if !ok || n > uint64(len(b)) || n > maxKeyLen {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	switch m.typ {
	case msgPurge:
		if len(b) < 2 || b[0]&^flagAck != 0 {
			return nil, fmt.Errorf("%w: purge header", errBadMessage)
		}
		m.wantAck = b[0]&flagAck != 0
		m.t.kind = purgeKind(b[1])
		b = b[2:]
		var ok1, ok2, ok3 bool
		m.id, ok1 = uvar()
		m.t.host, ok2 = str()
		m.t.path, ok3 = str()
		if !ok1 || !ok2 || !ok3 || len(b) != 0 {
			return nil, fmt.Errorf("%w: purge fields", errBadMessage)
		}
		switch m.t.kind {
		case purgeURL, purgePrefix:
			if m.t.host == "" || !strings.HasPrefix(m.t.path, "/") || strings.Contains(m.t.host, "/") {
				return nil, fmt.Errorf("%w: purge target", errBadMessage)
			}
		case purgeEvery:
			if m.t.host != "" || m.t.path != "" {
				return nil, fmt.Errorf("%w: purge-all with a target", errBadMessage)
			}
		default:
			return nil, fmt.Errorf("%w: purge kind %d", errBadMessage, m.t.kind)
		}
	case msgAck:
		var ok1, ok2 bool
		m.id, ok1 = uvar()
		m.origin.Incarnation, ok2 = uvar()
		m.origin.Name = string(b)
		if !ok1 || !ok2 || m.origin.Name == "" {
			return nil, fmt.Errorf("%w: ack fields", errBadMessage)
		}
	default:
		return nil, fmt.Errorf("%w: type %#x", errBadMessage, m.typ)
	}
	return m, nil
}

// cluster runs the purge protocol over a bus group. Purges are sent at
// FIFO level (purges are idempotent: any order of them leaves the same
// store); acknowledgements
// go at Reliable level.
type cluster struct {
	b       bus.Bus
	g       bus.Group
	self    bus.MemberID
	log     *slog.Logger
	waitAll bool
	apply   func(purgeTarget)      // applies a purge locally
	held    func() int             // entries held locally
	serves  func(purgeTarget) bool // whether the purge concerns this member
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	acks    chan *wireMsg
	notes   chan purgeTarget // purges announced without waiting
	mu      sync.Mutex
	view    *bus.View
	next    uint64
	waits   map[uint64]*purgeWait

	closeOnce sync.Once
}

type purgeWait struct {
	need map[bus.MemberID]bool
	done chan struct{}
}

func (w *purgeWait) check() {
	if len(w.need) == 0 {
		select {
		case <-w.done:
		default:
			close(w.done)
		}
	}
}

// joinTimeout bounds joining the purge group in New.
const joinTimeout = 30 * time.Second

func startCluster(b bus.Bus, group string, waitAll bool, log *slog.Logger,
	apply func(purgeTarget), held func() int, serves func(purgeTarget) bool) (*cluster, error) {
	ctx, stop := context.WithCancel(context.Background())
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	g, err := b.Join(jctx, group)
	if err != nil {
		stop()
		return nil, fmt.Errorf("proxycache: join %s: %w", group, err)
	}
	cl := &cluster{b: b, g: g, self: b.Self(), log: log, waitAll: waitAll, apply: apply, held: held, serves: serves, ctx: ctx, stop: stop,
		acks: make(chan *wireMsg, 1024), notes: make(chan purgeTarget, 1024), waits: make(map[uint64]*purgeWait)}
	cl.wg.Go(cl.recvLoop)
	cl.wg.Go(cl.ackLoop)
	cl.wg.Go(cl.announceLoop)
	return cl, nil
}

func (cl *cluster) close() {
	cl.stop()
	lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = cl.g.Leave(lctx)
	cancel()
	cl.wg.Wait()
}

func (cl *cluster) pending() (waits, members int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.view != nil {
		members = len(cl.view.Members)
	}
	return len(cl.waits), members
}

// purge sends t to the group and waits until this member (or, with
// PurgeWaitAll, every member of the view) applied it.
func (cl *cluster) purge(ctx context.Context, t purgeTarget) error {
	cl.mu.Lock()
	cl.next++
	id := cl.next
	w := &purgeWait{need: map[bus.MemberID]bool{cl.self: true}, done: make(chan struct{})}
	if cl.waitAll && cl.view != nil {
		for _, m := range cl.view.Members {
			w.need[m] = true
		}
	}
	cl.waits[id] = w
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.waits, id)
		cl.mu.Unlock()
	}()
	msg := &wireMsg{typ: msgPurge, wantAck: cl.waitAll, id: id, t: t}
	if err := cl.g.Send(ctx, bus.FIFO, msg.encode()); err != nil {
		if errors.Is(err, bus.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("proxycache: purge: %w", err)
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("proxycache: purge: %w", ctx.Err())
	case <-cl.ctx.Done():
		return ErrClosed
	}
}

func (cl *cluster) recvLoop() {
	for {
		ev, err := cl.g.Recv(cl.ctx)
		if err != nil {
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			cl.onView(ev)
		case *bus.Message:
			cl.onMessage(ev)
		}
	}
}

func (cl *cluster) onView(v *bus.View) {
	cl.mu.Lock()
	first := cl.view == nil
	cl.view = v.Clone()
	for _, w := range cl.waits {
		for m := range w.need {
			if !v.Contains(m) {
				delete(w.need, m)
			}
		}
		w.check()
	}
	cl.mu.Unlock()
	// A member that was away (restarted into a running group, or on the
	// other side of a partition) may have missed purges: it forgets
	// everything it holds rather than serve purged content.
	if (first && len(v.Members) > 1) || v.IsMerge() {
		if cl.held() > 0 || v.IsMerge() {
			cl.log.Warn("purges may have been missed; emptying cache", "view", v.String())
			cl.apply(purgeTarget{kind: purgeEvery})
		}
	}
}

func (cl *cluster) onMessage(ev *bus.Message) {
	m, err := decodeMsg(ev.Data)
	if err != nil {
		cl.log.Warn("ignoring purge message", "sender", ev.Sender.String(), "err", err)
		return
	}
	switch m.typ {
	case msgPurge:
		if cl.serves(m.t) {
			cl.apply(m.t)
		} else {
			cl.log.Debug("purge for a host not served here", "host", m.t.host)
		}
		if ev.Sender == cl.self {
			cl.done(m.id, cl.self)
		} else if m.wantAck {
			select {
			case cl.acks <- &wireMsg{typ: msgAck, id: m.id, origin: ev.Sender}:
			default:
				cl.log.Warn("purge acknowledgement dropped", "origin", ev.Sender.String())
			}
		}
	case msgAck:
		if m.origin == cl.self {
			cl.done(m.id, ev.Sender)
		}
	}
}

func (cl *cluster) done(id uint64, from bus.MemberID) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if w := cl.waits[id]; w != nil {
		delete(w.need, from)
		w.check()
	}
}

// announce sends t to the group in the background; when the queue is full
// the announcement is dropped (and logged): the local entry is gone
// already, and the others' copies expire by their own freshness.
func (cl *cluster) announce(t purgeTarget) {
	select {
	case cl.notes <- t:
	default:
		cl.log.Warn("invalidation not announced: queue full", "host", t.host, "path", t.path)
	}
}

func (cl *cluster) announceLoop() {
	for {
		select {
		case <-cl.ctx.Done():
			return
		case t := <-cl.notes:
			cl.mu.Lock()
			cl.next++
			id := cl.next
			cl.mu.Unlock()
			msg := &wireMsg{typ: msgPurge, id: id, t: t}
			if err := cl.g.Send(cl.ctx, bus.FIFO, msg.encode()); err != nil && cl.ctx.Err() == nil {
				cl.log.Warn("invalidation not announced", "err", err)
			}
		}
	}
}

// ackLoop sends acknowledgements outside the receive loop, so that a full
// peer queue never stalls the applying of purges.
func (cl *cluster) ackLoop() {
	for {
		select {
		case <-cl.ctx.Done():
			return
		case a := <-cl.acks:
			if err := cl.g.Send(cl.ctx, bus.Reliable, a.encode()); err != nil && cl.ctx.Err() == nil {
				cl.log.Warn("purge acknowledgement not sent", "err", err)
			}
		}
	}
}
