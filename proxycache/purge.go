package proxycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	c.removePurgedFiles()
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
		if err := validTarget(m.t); err != nil {
			return nil, err
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

// validTarget checks a purge target read from the wire.
func validTarget(t purgeTarget) error {
	switch t.kind {
	case purgeURL, purgePrefix:
		if t.host == "" || !strings.HasPrefix(t.path, "/") || strings.Contains(t.host, "/") {
			return fmt.Errorf("%w: purge target", errBadMessage)
		}
	case purgeEvery:
		if t.host != "" || t.path != "" {
			return fmt.Errorf("%w: purge-all with a target", errBadMessage)
		}
	default:
		return fmt.Errorf("%w: purge kind %d", errBadMessage, t.kind)
	}
	return nil
}

// clusterHooks connect the purge protocol to what it purges.
type clusterHooks struct {
	// apply applies a purge delivered by the bus.
	apply func(purgeTarget)
	// applyMissed applies a purge that another member applied at the
	// given time (on this member's clock) while this one may not have
	// received it: only what was fetched before then goes.
	applyMissed func(purgeTarget, time.Time)
	// setFloor makes whatever was fetched before the time suspect, to be
	// revalidated before use; the zero time clears it.
	setFloor func(time.Time)
	// restored reports, for a store that came back from disk holding
	// entries, since when it may have missed purges (the zero time: it
	// cannot tell).
	restored func() (time.Time, bool)
	// serves reports whether a purge concerns this member.
	serves func(purgeTarget) bool
}

// cluster runs the purge protocol over a bus group. Purges are sent at
// FIFO level (purges are idempotent: any order of them leaves the same
// store); acknowledgements go at Reliable level, catch-up messages at FIFO
// (see catchup.go).
type cluster struct {
	b       bus.Bus
	g       bus.Group
	self    bus.MemberID
	log     *slog.Logger
	waitAll bool
	hooks   clusterHooks
	maxMsg  int
	start   time.Time
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	out     chan outMsg      // acknowledgements and catch-up messages
	notes   chan purgeTarget // purges announced without waiting

	mu       sync.Mutex
	view     *bus.View
	viewAt   time.Time // when view was installed here
	next     uint64
	waits    map[uint64]*purgeWait
	plog     *purgeLog
	gone     map[bus.MemberID]time.Time // members that left: since when their purges may be missing here
	restored time.Time                  // a store from disk misses purges since then, until asked
	askRest  bool
	catchUps map[uint64]*catchUp
	sticky   time.Time // floor left by catch-ups that could not complete
	floor    time.Time // last floor handed to hooks.setFloor

	askedN, missedN, failedN atomic.Uint64

	closeOnce sync.Once
}

type outMsg struct {
	level bus.Level
	data  []byte
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

func startCluster(b bus.Bus, group string, waitAll bool, logSize int, log *slog.Logger, hooks clusterHooks) (*cluster, error) {
	ctx, stop := context.WithCancel(context.Background())
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	cl := &cluster{b: b, self: b.Self(), log: log, waitAll: waitAll, hooks: hooks, maxMsg: b.MaxMessageSize(),
		start: time.Now(), ctx: ctx, stop: stop,
		out: make(chan outMsg, 4096), notes: make(chan purgeTarget, 1024), waits: make(map[uint64]*purgeWait),
		plog: newPurgeLog(logSize), gone: make(map[bus.MemberID]time.Time), catchUps: make(map[uint64]*catchUp)}
	if t, ok := hooks.restored(); ok {
		cl.restored, cl.askRest = t, true
	}
	g, err := b.Join(jctx, group)
	if err != nil {
		stop()
		return nil, fmt.Errorf("proxycache: join %s: %w", group, err)
	}
	cl.g = g
	cl.wg.Go(cl.recvLoop)
	cl.wg.Go(cl.sendLoop)
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

// catchUpStats returns the catch-up counters and the current floor.
func (cl *cluster) catchUpStats() (asked, missed, failed uint64, floor time.Time) {
	cl.mu.Lock()
	floor = cl.floor
	cl.mu.Unlock()
	return cl.askedN.Load(), cl.missedN.Load(), cl.failedN.Load(), floor
}

// unsyncedSince returns the earliest time since when this member may have
// missed purges that it has not caught up on (zero: none known): members
// that left within the last day, catch-ups under way or failed. A store
// restarted later catches up from there.
func (cl *cluster) unsyncedSince(now time.Time) time.Time {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var t time.Time
	early := func(c time.Time) {
		if !c.IsZero() && (t.IsZero() || c.Before(t)) {
			t = c
		}
	}
	for _, g := range cl.gone {
		if now.Sub(g) < 24*time.Hour {
			early(g)
		}
	}
	for _, cu := range cl.catchUps {
		early(cu.since)
	}
	early(cl.sticky)
	if cl.askRest {
		early(cl.restored)
		if cl.restored.IsZero() {
			return time.Unix(0, 1)
		}
	}
	return t
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

// onView tracks departures and, when members come back (or this member's
// store came back from disk), asks them for the purges it may have missed.
func (cl *cluster) onView(v *bus.View) {
	now := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	prev, prevAt := cl.view, cl.viewAt
	cl.view, cl.viewAt = v.Clone(), now
	for _, w := range cl.waits {
		for m := range w.need {
			if !v.Contains(m) {
				delete(w.need, m)
			}
		}
		w.check()
	}
	if prev != nil {
		// A member that left may have been cut off since the start of the
		// last view it was in, though the bus noticed only now.
		since := later(prevAt, now.Add(-detectAllowance))
		for _, m := range prev.Members {
			if m != cl.self && !v.Contains(m) {
				cl.rememberGoneLocked(m, since)
			}
		}
	}
	for _, cu := range cl.catchUps {
		for m := range cu.need {
			if !v.Contains(m) {
				delete(cu.need, m)
				cu.failed = true
			}
		}
		cl.finishLocked(cu, now)
	}
	cu := &catchUp{detected: now, need: make(map[bus.MemberID]bool), deadline: now.Add(catchUpTimeout)}
	for _, m := range v.Joined {
		if m == cl.self {
			continue
		}
		cu.need[m] = true
		if t, ok := cl.gone[m]; ok {
			// Back from the other side of a partition.
			delete(cl.gone, m)
			if !cu.hold || t.Before(cu.since) {
				cu.since = t
			}
			cu.hold = true
		}
	}
	if len(cu.need) == 0 {
		cl.updateFloorLocked()
		return
	}
	if cl.askRest {
		if !cu.hold || cl.restored.Before(cu.since) {
			cu.since = cl.restored
		}
		cu.hold, cl.askRest = true, false
	} else if prev == nil {
		return // a new member with an empty store has nothing to catch up on
	}
	cl.next++
	cu.id = cl.next
	req := &syncReq{id: cu.id, sinceAge: sinceAll}
	if cu.hold && !cu.since.IsZero() {
		req.sinceAge = ms(now.Sub(cu.since) + purgeSlack)
	}
	for m := range cu.need {
		req.asked = append(req.asked, m)
	}
	if len(req.asked) > maxAsked {
		req.asked = req.asked[:maxAsked]
	}
	cl.catchUps[cu.id] = cu
	cl.askedN.Add(1)
	if !cl.enqueueLocked(outMsg{bus.FIFO, req.encode()}) {
		cu.failed = true
		clear(cu.need)
		cl.finishLocked(cu, now)
	}
	lvl := slog.LevelDebug
	if cu.hold {
		lvl = slog.LevelInfo
	}
	cl.log.Log(cl.ctx, lvl, "asking for missed purges", "view", v.ID.String(), "members", len(cu.need), "since", cu.since)
	cl.updateFloorLocked()
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (cl *cluster) rememberGoneLocked(m bus.MemberID, since time.Time) {
	if len(cl.gone) >= maxGone {
		var oldest bus.MemberID
		var ot time.Time
		for id, t := range cl.gone {
			if ot.IsZero() || t.Before(ot) {
				oldest, ot = id, t
			}
		}
		delete(cl.gone, oldest)
	}
	cl.gone[m] = since
}

// finishLocked closes a catch-up whose answers are all in (or whose time
// ran out): what no answer could vouch for stays suspect.
func (cl *cluster) finishLocked(cu *catchUp, now time.Time) {
	if len(cu.need) > 0 && now.Before(cu.deadline) {
		return
	}
	if len(cu.need) > 0 {
		cu.failed = true
	}
	delete(cl.catchUps, cu.id)
	if !cu.hold {
		return
	}
	complete := !cu.failed && !cu.vouch.IsZero() && !cu.vouch.After(cu.since)
	if complete {
		cl.log.Info("caught up on missed purges", "since", cu.since)
		cl.updateFloorLocked()
		return
	}
	floor := cu.detected
	if !cu.failed && !cu.vouch.IsZero() && cu.vouch.Before(floor) {
		floor = cu.vouch // the answers covered the purges since then
	}
	if floor.After(cl.sticky) {
		cl.sticky = floor
	}
	cl.failedN.Add(1)
	cl.log.Warn("missed purges not all known: older entries will be revalidated", "since", cu.since,
		"revalidate-before", floor, "timed-out", cu.failed)
	cl.updateFloorLocked()
}

func (cl *cluster) updateFloorLocked() {
	f := cl.sticky
	for _, cu := range cl.catchUps {
		if cu.hold && cu.detected.After(f) {
			f = cu.detected
		}
	}
	if !f.Equal(cl.floor) {
		cl.floor = f
		cl.hooks.setFloor(f)
	}
}

func (cl *cluster) enqueueLocked(m outMsg) bool {
	select {
	case cl.out <- m:
		return true
	default:
		return false
	}
}

func (cl *cluster) onMessage(ev *bus.Message) {
	if len(ev.Data) > 0 && (ev.Data[0] == msgSyncReq || ev.Data[0] == msgSyncReply) {
		m, err := decodeSync(ev.Data)
		if err != nil {
			cl.log.Warn("ignoring purge message", "sender", ev.Sender.String(), "err", err)
			return
		}
		switch m := m.(type) {
		case *syncReq:
			cl.answer(ev.Sender, m)
		case *syncReply:
			cl.onAnswer(ev.Sender, m)
		}
		return
	}
	m, err := decodeMsg(ev.Data)
	if err != nil {
		cl.log.Warn("ignoring purge message", "sender", ev.Sender.String(), "err", err)
		return
	}
	switch m.typ {
	case msgPurge:
		if cl.hooks.serves(m.t) {
			cl.hooks.apply(m.t)
		} else {
			cl.log.Debug("purge for a host not served here", "host", m.t.host)
		}
		cl.mu.Lock()
		cl.plog.add(m.t, time.Now())
		cl.mu.Unlock()
		if ev.Sender == cl.self {
			cl.done(m.id, cl.self)
		} else if m.wantAck {
			cl.mu.Lock()
			ok := cl.enqueueLocked(outMsg{bus.Reliable, (&wireMsg{typ: msgAck, id: m.id, origin: ev.Sender}).encode()})
			cl.mu.Unlock()
			if !ok {
				cl.log.Warn("purge acknowledgement dropped", "origin", ev.Sender.String())
			}
		}
	case msgAck:
		if m.origin == cl.self {
			cl.done(m.id, ev.Sender)
		}
	}
}

// answer sends an asker the purges applied here since the time it asked
// for, and how far back this member's log is complete.
func (cl *cluster) answer(asker bus.MemberID, req *syncReq) {
	if asker == cl.self || !slices.Contains(req.asked, cl.self) {
		return
	}
	now := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var from time.Time
	if req.sinceAge != sinceAll {
		from = ago(now, req.sinceAge)
	}
	recs := cl.plog.since(from)
	out := make([]syncRec, len(recs))
	for i, r := range recs {
		out[i] = syncRec{t: r.t, age: ms(now.Sub(r.at))}
	}
	vouch := later(cl.start, cl.plog.dropped)
	msgs := splitReply(req.id, asker, ms(now.Sub(vouch)), out, cl.maxMsg)
	if len(msgs) > cap(cl.out)-len(cl.out) {
		cl.log.Warn("catch-up answer not sent: queue full", "asker", asker.String(), "records", len(out))
		return
	}
	for _, b := range msgs {
		cl.enqueueLocked(outMsg{bus.FIFO, b})
	}
	cl.log.Debug("answered catch-up", "asker", asker.String(), "records", len(out))
}

// onAnswer applies the purges of an answer to this member's catch-up.
func (cl *cluster) onAnswer(from bus.MemberID, r *syncReply) {
	if r.asker != cl.self {
		return
	}
	now := time.Now()
	cl.mu.Lock()
	cu := cl.catchUps[r.id]
	if cu == nil || !cu.need[from] {
		cl.mu.Unlock()
		return
	}
	cl.mu.Unlock()
	for _, rec := range r.recs {
		if cl.hooks.serves(rec.t) {
			cl.hooks.applyMissed(rec.t, ago(now, rec.age))
		}
	}
	cl.missedN.Add(uint64(len(r.recs)))
	if !r.last {
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.catchUps[r.id] != cu || !cu.need[from] {
		return
	}
	v := ago(now, r.vouchAge)
	if cu.vouch.IsZero() || v.Before(cu.vouch) {
		cu.vouch = v
	}
	delete(cu.need, from)
	cl.finishLocked(cu, now)
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

// sendLoop sends acknowledgements and catch-up messages outside the
// receive loop, so that a full peer queue never stalls the applying of
// purges, and closes catch-ups whose time ran out.
func (cl *cluster) sendLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-cl.ctx.Done():
			return
		case m := <-cl.out:
			if err := cl.g.Send(cl.ctx, m.level, m.data); err != nil && cl.ctx.Err() == nil {
				cl.log.Warn("purge protocol message not sent", "err", err)
			}
		case now := <-tick.C:
			cl.mu.Lock()
			for _, cu := range cl.catchUps {
				cl.finishLocked(cu, now)
			}
			cl.mu.Unlock()
		}
	}
}
