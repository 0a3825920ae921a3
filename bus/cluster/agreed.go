package cluster

import (
	"context"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// This file holds the sequencer of the Agreed order and a sender's side
// of it. The coordinator is the sequencer of every group: senders
// multicast their payloads to the group's members (and to the
// coordinator), the coordinator multicasts small batches of tokens
// (sender, sender's sequence number) that fix one order, and installs
// views as positions of the same order.

// outKeep bounds the messages a sender that is not a member of the
// group keeps for re-submission to a new sequencer.
const outKeep = 1024

// sequencer orders the messages of every group while this member is the
// coordinator. mu is taken before Bus.mu and before a group's or a link's
// mutex.
type sequencer struct {
	b    *Bus
	wake chan struct{}

	mu     sync.Mutex
	active bool // coordinator, and the flush after taking over is done
	groups map[string]*seqGroup
}

// seqGroup is the sequencer's state of one group.
type seqGroup struct {
	ord       uint64                  // last position assigned
	high      map[bus.MemberID]uint64 // per sender: last sequence number ordered
	batch     []token                 // tokens not sent yet, from position first
	first     uint64
	held      []request // received before the sequencer was active
	heldBytes int
	progress  map[bus.MemberID]uint64
	joinedAt  map[bus.MemberID]uint64 // view seq at which each member joined
	stable    uint64                  // last position every member delivered
	sent      uint64                  // last stable position announced
	// gaps holds, per sender, requests that came ahead of an earlier
	// one (after a failover, before its sender re-submitted), by seq.
	gaps map[bus.MemberID]*gapQueue
	// ret keeps the payloads ordered and not yet stable, so that the
	// members still missing one from a member that crashed get it.
	ret []seqRet
}

type gapQueue struct {
	since time.Time
	reqs  map[uint64]request
}

// maxGap bounds the requests a sequencer keeps ahead of a gap per sender;
// gapWait is how long it waits for the missing ones.
const (
	maxGap  = 4096
	gapWait = 2 * time.Second
)

type seqRet struct {
	ord     uint64
	tok     token
	level   bus.Level
	payload []byte
}

// request asks the sequencer to order a message.
type request struct {
	group   string
	from    bus.MemberID
	msg     dataMsg
	body    []byte // the data body, passed on for a relayed message
	viewSeq uint64
}

func newSequencer(b *Bus) *sequencer {
	return &sequencer{b: b, wake: make(chan struct{}, 1), groups: make(map[string]*seqGroup)}
}

func (s *sequencer) group(name string) *seqGroup {
	sg := s.groups[name]
	if sg == nil {
		sg = &seqGroup{high: make(map[bus.MemberID]uint64), progress: make(map[bus.MemberID]uint64), joinedAt: make(map[bus.MemberID]uint64)}
		s.groups[name] = sg
	}
	return sg
}

// order takes a message to order, if this member is the coordinator.
func (s *sequencer) order(r request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active {
		// Keep the latest requests, in case this member takes over
		// before their senders hear of it (and re-submit). A member of
		// the group holds the payloads of members' messages anyway.
		if r.msg.Flags&flagOpen == 0 {
			r.msg.Payload = nil
		}
		sg := s.group(r.group)
		size := len(r.body) + len(r.msg.Payload)
		limit := maxHeld
		if s.b.coordinator() == s.b.self {
			limit = maxHeldTakeover // taking over: keep what comes until active
		}
		for len(sg.held) > 0 && (len(sg.held) >= limit || sg.heldBytes+size > s.b.cfg.WindowBytes) {
			// Drop the oldest request, a re-submitted one last: its
			// sender sends it only once.
			i := slices.IndexFunc(sg.held, func(h request) bool { return h.msg.Flags&flagResubmit == 0 })
			if i < 0 || len(sg.held) >= maxHeldTakeover {
				i = 0
			}
			sg.heldBytes -= len(sg.held[i].body) + len(sg.held[i].msg.Payload)
			if i == 0 {
				sg.held[0] = request{}
				sg.held = sg.held[1:]
			} else {
				sg.held = slices.Delete(sg.held, i, i+1)
			}
		}
		sg.held = append(sg.held, r)
		sg.heldBytes += size
		return
	}
	s.orderLocked(r)
}

// orderLocked orders r after the sender's earlier messages.
func (s *sequencer) orderLocked(r request) {
	sg := s.group(r.group)
	if r.msg.Seq <= sg.high[r.from] {
		return // ordered already (a re-submission)
	}
	if r.msg.Seq > sg.high[r.from]+1 {
		// An earlier message of the sender has not come yet: it will,
		// re-submitted to this new sequencer.
		q := sg.gaps[r.from]
		if q == nil {
			q = &gapQueue{since: time.Now(), reqs: make(map[uint64]request)}
			if sg.gaps == nil {
				sg.gaps = make(map[bus.MemberID]*gapQueue)
			}
			sg.gaps[r.from] = q
		}
		q.reqs[r.msg.Seq] = r
		if len(q.reqs) > maxGap {
			s.skipGapLocked(sg, r.from)
		}
		return
	}
	s.placeLocked(sg, r)
	for q := sg.gaps[r.from]; q != nil; {
		next, ok := q.reqs[sg.high[r.from]+1]
		if !ok {
			break
		}
		delete(q.reqs, next.msg.Seq)
		if len(q.reqs) == 0 {
			delete(sg.gaps, r.from)
		}
		s.placeLocked(sg, next)
	}
}

// skipGapLocked gives up waiting for the messages missing before the
// requests held for sender from, and orders those.
func (s *sequencer) skipGapLocked(sg *seqGroup, from bus.MemberID) {
	q := sg.gaps[from]
	if q == nil {
		return
	}
	delete(sg.gaps, from)
	seqs := slices.Sorted(maps.Keys(q.reqs))
	s.b.log.Warn("sequencer skips missing messages", "sender", from.String(), "after", sg.high[from], "next", seqs[0])
	for _, seq := range seqs {
		r := q.reqs[seq]
		sg.high[from] = seq - 1
		s.placeLocked(sg, r)
	}
}

// expireGaps orders what waited too long behind a gap.
func (s *sequencer) expireGaps() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sg := range s.groups {
		for from, q := range sg.gaps {
			if time.Since(q.since) > gapWait {
				s.skipGapLocked(sg, from)
			}
		}
	}
}

// placeLocked gives r the next position of its group's order.
func (s *sequencer) placeLocked(sg *seqGroup, r request) {
	b := s.b
	b.mu.RLock()
	v := b.known[r.group]
	b.mu.RUnlock()
	if v == nil {
		return
	}
	open := r.msg.Flags&flagOpen != 0
	if !open && !slices.Contains(v.Members, r.from) {
		return // its sender left: the members dropped its payload
	}
	if open && r.viewSeq < v.ID.Seq {
		// Members that joined after it was sent have not got it: pass
		// it on, ahead of its token on the same links.
		var fwd []byte
		for _, m := range v.Members {
			if m == r.from || sg.joinedAt[m] <= r.viewSeq {
				continue
			}
			if m == b.self {
				if h := b.joinedGroup(r.group); h != nil {
					msg := &bus.Message{Group: r.group, Sender: r.from, Level: r.msg.Level, Data: slicesClone(r.msg.Payload)}
					_, after := h.addPayload(msg, r.viewSeq, r.msg.Seq, true)
					b.afterOrder(h, after)
				}
				continue
			}
			if fwd == nil {
				fwd = encodeFwd(r.from, r.body)
			}
			if l := b.linkFor(m, ""); l != nil {
				l.send(nil, fFwd, fwd)
			}
		}
	}
	sg.high[r.from] = r.msg.Seq
	sg.ord++
	if r.msg.Payload != nil {
		sg.ret = append(sg.ret, seqRet{ord: sg.ord, tok: token{r.from, r.msg.Seq}, level: r.msg.Level, payload: r.msg.Payload})
	}
	if len(sg.batch) == 0 {
		sg.first = sg.ord
	}
	sg.batch = append(sg.batch, token{r.from, r.msg.Seq})
	notify(s.wake)
}

func slicesClone(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return slices.Clone(p)
}

// loop sends the batched tokens.
func (s *sequencer) loop() {
	for {
		select {
		case <-s.wake:
		case <-s.b.done:
			return
		}
		// Let more requests join the batch.
		runtime.Gosched()
		s.mu.Lock()
		for _, g := range slices.Sorted(maps.Keys(s.groups)) {
			s.flushLocked(g)
		}
		s.mu.Unlock()
	}
}

// flushLocked sends group g's pending tokens (and a new stable position)
// to its members.
func (s *sequencer) flushLocked(g string) {
	b := s.b
	sg := s.groups[g]
	if sg == nil || (len(sg.batch) == 0 && sg.stable <= sg.sent) {
		return
	}
	o := orderMsg{Group: g, First: sg.first, Stable: sg.stable, Tokens: sg.batch}
	if len(o.Tokens) == 0 {
		o.First = 0
	}
	sg.batch, sg.sent = nil, sg.stable
	b.mu.RLock()
	v := b.known[g]
	b.mu.RUnlock()
	if v == nil {
		return
	}
	body := o.encode()
	for _, m := range v.Members {
		if m == b.self {
			continue
		}
		if l := b.linkFor(m, ""); l != nil {
			l.send(nil, fOrder, body)
		}
	}
	if h := b.joinedGroup(g); h != nil {
		b.afterOrder(h, h.onOrder(&o))
	}
}

// progress records that member id delivered group g up to pos.
func (s *sequencer) progress(id bus.MemberID, g string, pos uint64) {
	b := s.b
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active {
		return
	}
	sg := s.group(g)
	sg.progress[id] = pos
	b.mu.RLock()
	v := b.known[g]
	b.mu.RUnlock()
	if v == nil {
		return
	}
	stable := sg.ord
	for _, m := range v.Members {
		stable = min(stable, sg.progress[m])
	}
	if stable > sg.stable {
		sg.stable = stable
		i := 0
		for i < len(sg.ret) && sg.ret[i].ord <= stable {
			i++
		}
		n := copy(sg.ret, sg.ret[i:])
		clear(sg.ret[n:])
		sg.ret = sg.ret[:n]
		notify(s.wake)
	}
}

// passOnLocked sends the members of view v the payloads, still not
// stable, of the members that v removes: a sender that crashed may have
// reached only some members before its messages were ordered.
func (s *sequencer) passOnLocked(cur *viewMsg, v *viewMsg) {
	b := s.b
	sg := s.groups[v.Group]
	if sg == nil || cur == nil || len(sg.ret) == 0 {
		return
	}
	var gone []bus.MemberID
	for _, m := range cur.Members {
		if !slices.Contains(v.Members, m) {
			gone = append(gone, m)
		}
	}
	if len(gone) == 0 {
		return
	}
	var bodies [][]byte
	var local []seqRet
	for _, r := range sg.ret {
		if slices.Contains(gone, r.tok.Sender) {
			bodies = append(bodies, encodeFwd(r.tok.Sender, encodeTotal(r.level, 0, r.tok.Seq, 0, v.Group, r.payload)))
			local = append(local, r)
		}
	}
	if len(bodies) == 0 {
		return
	}
	for _, m := range v.Members {
		if m == b.self {
			continue
		}
		if l := b.linkFor(m, ""); l != nil {
			for _, body := range bodies {
				l.send(nil, fFwd, body)
			}
		}
	}
	if h := b.joinedGroup(v.Group); h != nil {
		for _, r := range local {
			msg := &bus.Message{Group: v.Group, Sender: r.tok.Sender, Level: r.level, Data: r.payload}
			_, after := h.addPayload(msg, 0, r.tok.Seq, true)
			b.afterOrder(h, after)
		}
	}
}

// installLocked gives view v the next position of its group's order,
// after the tokens assigned so far.
func (s *sequencer) nextViewLocked(v *viewMsg) {
	s.flushLocked(v.Group)
	sg := s.group(v.Group)
	sg.ord++
	v.Ord = sg.ord
	// Progress of members that left no longer holds stability back.
	for id := range sg.progress {
		if !slices.Contains(v.Members, id) {
			delete(sg.progress, id)
		}
	}
	for _, m := range v.Members {
		if _, ok := sg.progress[m]; !ok {
			sg.progress[m] = v.Ord - 1
		}
	}
	for id := range sg.joinedAt {
		if !slices.Contains(v.Members, id) {
			delete(sg.joinedAt, id)
		}
	}
	b := s.b
	b.mu.RLock()
	cur := b.known[v.Group]
	b.mu.RUnlock()
	for _, m := range v.Members {
		if cur == nil || !slices.Contains(cur.Members, m) {
			sg.joinedAt[m] = v.ID.Seq
		}
	}
}

// activate lets the sequencer order, starting group g's order after the
// positions and sequence numbers the members reported.
func (s *sequencer) activateLocked(starts map[string]orderStart) {
	for g, st := range starts {
		sg := s.group(g)
		sg.ord = max(sg.ord, st.ord)
		for id, seq := range st.high {
			sg.high[id] = max(sg.high[id], seq)
		}
		sg.stable, sg.sent = 0, 0
		clear(sg.progress)
	}
	s.active = true
}

// releaseLocked orders the requests received while taking over.
func (s *sequencer) releaseLocked() {
	for _, g := range slices.Sorted(maps.Keys(s.groups)) {
		sg := s.groups[g]
		held := sg.held
		sg.held, sg.heldBytes = nil, 0
		for _, r := range held {
			s.orderLocked(r)
		}
	}
}

// maxHeld bounds the requests a sequencer keeps per group while it is
// not active.
const (
	maxHeld         = 4096
	maxHeldTakeover = 1 << 20
)

// deactivate stops ordering: the coordinator changed. A member taking
// over keeps the requests it holds; the others drop them.
func (s *sequencer) deactivate(keepHeld bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active = false
	for g, sg := range s.groups {
		if !keepHeld || len(sg.held) == 0 {
			delete(s.groups, g)
			continue
		}
		delete(s.groups, g)
		s.group(g).held = sg.held
	}
}

type orderStart struct {
	ord  uint64
	high map[bus.MemberID]uint64
}

// outbox is a sender's messages of one group at a total level not known
// ordered yet, for re-submission to a new sequencer. mu serialises the
// sender's Sends to the group, so that sequence numbers follow the order
// of the links.
type outbox struct {
	done atomic.Uint64 // highest own sequence number delivered in the order

	mu    sync.Mutex
	seq   uint64       // last sequence number assigned
	coord bus.MemberID // the sequencer the entries were submitted to
	ents  []outEnt
}

type outEnt struct {
	seq  uint64
	body []byte
}

func (b *Bus) outbox(group string) *outbox {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	o := b.out[group]
	if o == nil {
		o = &outbox{}
		b.out[group] = o
	}
	return o
}

// resubmitLocked sends the entries not known ordered to coord, the new
// sequencer. o.mu is held.
func (b *Bus) resubmitLocked(group string, o *outbox, coord bus.MemberID) {
	if o.coord == coord {
		return
	}
	o.coord = coord
	o.trimLocked()
	if len(o.ents) == 0 {
		return
	}
	b.log.Debug("re-submitting unordered messages", "group", group, "n", len(o.ents), "sequencer", coord.String())
	if coord == b.self {
		for _, e := range o.ents {
			m, err := decodeData(e.body)
			if err == nil {
				b.seq.order(request{group: group, from: b.self, msg: m, body: e.body, viewSeq: m.ViewSeq})
			}
		}
		return
	}
	l := b.linkFor(coord, "")
	if l == nil {
		return
	}
	for _, e := range o.ents {
		m, err := decodeData(e.body)
		if err != nil {
			continue
		}
		l.send(nil, fData, encodeTotal(m.Level, m.ViewSeq, m.Seq, m.Flags|flagResubmit, group, m.Payload))
	}
}

// resubmitAll re-submits every group's unordered messages after the
// coordinator changed. It waits for the Sends under way (which may wait
// for room), so the manager runs it in a goroutine of its own.
func (b *Bus) resubmitAll() {
	b.outMu.Lock()
	groups := slices.Sorted(maps.Keys(b.out))
	b.outMu.Unlock()
	b.mu.RLock()
	coord := b.coord
	b.mu.RUnlock()
	for _, g := range groups {
		o := b.outbox(g)
		o.mu.Lock()
		b.resubmitLocked(g, o, coord)
		o.mu.Unlock()
	}
}

// ordered records that the sender's entries up to seq were delivered in
// the order. It never blocks (link readers call it).
func (o *outbox) ordered(seq uint64) {
	for {
		d := o.done.Load()
		if seq <= d || o.done.CompareAndSwap(d, seq) {
			return
		}
	}
}

// trimLocked drops the entries known ordered. o.mu is held.
func (o *outbox) trimLocked() {
	seq := o.done.Load()
	i := 0
	for i < len(o.ents) && o.ents[i].seq <= seq {
		i++
	}
	if i > 0 {
		n := copy(o.ents, o.ents[i:])
		clear(o.ents[n:])
		o.ents = o.ents[:n]
	}
}

// sendTotal sends a message at a total level (Causal, Agreed): to the
// members of the group and the sequencer, or, from a non-member, to the
// sequencer alone, which passes it on.
func (b *Bus) sendTotal(ctx context.Context, name string, level bus.Level, data []byte) error {
	o := b.outbox(name)
	o.mu.Lock()
	defer o.mu.Unlock()
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return bus.ErrClosed
	}
	v := b.known[name]
	coord := b.coord
	h := b.joined[name]
	b.mu.RUnlock()
	if v == nil {
		b.stats.level(level).sent.Add(1)
		return nil
	}
	b.resubmitLocked(name, o, coord)
	member := slices.Contains(v.Members, b.self) && h != nil
	var targets []bus.MemberID
	var flags byte
	if !member {
		flags = flagOpen
		h = nil
	}
	for _, m := range v.Members {
		if m != b.self {
			targets = append(targets, m)
		}
	}
	if coord != b.self && !slices.Contains(targets, coord) {
		targets = append(targets, coord)
	}
	var buf [8]*link
	links := buf[:0]
	b.mu.RLock()
	for i, m := range targets {
		if l := b.links[m]; l != nil {
			links = append(links, l)
			targets[i] = bus.MemberID{}
		}
	}
	b.mu.RUnlock()
	for _, m := range targets {
		if !m.IsZero() {
			if l := b.linkFor(m, ""); l != nil {
				links = append(links, l)
			}
		}
	}
	seq := o.seq + 1
	body := encodeTotal(level, v.ID.Seq, seq, flags, name, data)
	links, err := waitRoomAll(ctx, links, h, len(body), name)
	if err != nil {
		return err
	}
	o.seq = seq
	for _, l := range links {
		l.sendGroup(nil, fData, body, name)
	}
	o.trimLocked()
	o.ents = append(o.ents, outEnt{seq: seq, body: body})
	if !member && len(o.ents) > outKeep {
		n := copy(o.ents, o.ents[len(o.ents)-outKeep:])
		clear(o.ents[n:])
		o.ents = o.ents[:n]
	}
	payload := body[len(body)-len(data):]
	if h != nil {
		m := &bus.Message{Group: name, Sender: b.self, Level: level, Data: payload}
		if ok, after := h.addPayload(m, v.ID.Seq, seq, false); ok {
			b.stats.level(level).delivered.Add(1)
			b.afterOrder(h, after)
		}
	}
	if coord == b.self {
		dm := dataMsg{Level: level, ViewSeq: v.ID.Seq, Seq: seq, Flags: flags, Group: name, Payload: payload}
		b.seq.order(request{group: name, from: b.self, msg: dm, body: body, viewSeq: v.ID.Seq})
	}
	b.stats.level(level).sent.Add(1)
	return nil
}

// deliverTotal takes a message of a total level from a link: the payload
// for the joined group, the request for the sequencer. fwd marks a
// payload passed on by another member (the sequencer, or the sender
// through another member's link): it is not counted against credit.
func (b *Bus) deliverTotal(l *link, from bus.MemberID, m dataMsg, fwd bool) {
	h := b.joinedGroup(m.Group)
	open := m.Flags&flagOpen != 0
	payload := slicesClone(m.Payload)
	if h != nil {
		msg := &bus.Message{Group: m.Group, Sender: from, Level: m.Level, Data: payload}
		ok, after := h.addPayload(msg, m.ViewSeq, m.Seq, fwd || open)
		if ok {
			b.stats.level(m.Level).delivered.Add(1)
		} else if !fwd {
			l.consumed(m.Group, 1)
		}
		b.afterOrder(h, after)
	} else if !fwd {
		l.consumed(m.Group, 1) // not queued here
	}
	if fwd {
		return
	}
	var body []byte
	if open {
		body = encodeTotal(m.Level, m.ViewSeq, m.Seq, m.Flags, m.Group, m.Payload)
	}
	m.Payload = payload // not the record's bytes: the sequencer keeps it
	b.seq.order(request{group: m.Group, from: from, msg: m, body: body, viewSeq: m.ViewSeq})
}

func (b *Bus) joinedGroup(name string) *group {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.joined[name]
}

// afterOrder finishes what a drain of h's order left to do. It never
// blocks.
func (b *Bus) afterOrder(h *group, after orderAfter) {
	name := h.name
	for _, m := range after.credit {
		if m.Level != bus.Unreliable {
			b.consumed(m.Sender, name, 1)
		}
	}
	for _, f := range after.fwd {
		body := encodeFwd(b.self, f.body)
		for _, id := range f.to {
			if l := b.linkFor(id, ""); l != nil {
				l.send(nil, fFwd, body)
			}
		}
	}
	if after.own > 0 {
		b.outbox(name).ordered(after.own)
	}
	if after.excluded {
		b.log.Warn("view excludes this member; asking again", "group", name)
		b.post(event{kind: evLocal})
	}
}

// onOrder takes a batch of tokens from the link to the sequencer.
func (b *Bus) onOrder(l *link, o *orderMsg) {
	b.mu.RLock()
	h := b.joined[o.Group]
	v := b.known[o.Group]
	ok := l.peer == b.coord || (v != nil && l.peer == v.ID.Coord)
	b.mu.RUnlock()
	if h == nil || !ok {
		return
	}
	b.afterOrder(h, h.onOrder(o))
}

// flushChunk bounds the bytes of one fFlush frame's payloads.
const flushChunk = 32 << 10

// passFlush sends the members of group the order entries after from up
// to to that this member has, for a new sequencer.
func (b *Bus) passFlush(g string, from, to uint64) {
	h := b.joinedGroup(g)
	if h == nil {
		return
	}
	es := h.flushEntries(from, to)
	b.mu.RLock()
	v := b.known[g]
	b.mu.RUnlock()
	if v == nil || len(es) == 0 {
		return
	}
	var links []*link
	for _, m := range v.Members {
		if m != b.self {
			if l := b.linkFor(m, ""); l != nil {
				links = append(links, l)
			}
		}
	}
	for len(es) > 0 {
		n, size := 0, 0
		for n < len(es) && (n == 0 || size+len(es[n].Payload) < flushChunk) {
			size += len(es[n].Payload) + 32
			n++
		}
		body := encodeFlush(g, es[:n])
		es = es[n:]
		for _, l := range links {
			l.send(nil, fFlush, body)
		}
	}
}

// onFlush takes order entries passed on after a failover, then tells the
// coordinator how far this member is.
func (b *Bus) onFlush(g string, es []flushEntry) {
	if h := b.joinedGroup(g); h != nil {
		b.afterOrder(h, h.onFlush(es))
	}
	b.post(event{kind: evLocal})
}

// reportProgress tells the sequencer how far this member delivered each
// group, so that it can announce stability.
func (b *Bus) reportProgress() {
	b.mu.RLock()
	coord := b.coord
	hs := slices.Collect(maps.Values(b.joined))
	b.mu.RUnlock()
	var l *link
	if coord != b.self {
		if l = b.linkFor(coord, ""); l == nil {
			return
		}
	}
	for _, h := range hs {
		pos, ok := h.delivered()
		if !ok || pos == h.reported.Load() && coord == h.reportedTo() {
			continue
		}
		h.setReported(pos, coord)
		if l == nil {
			b.seq.progress(b.self, h.name, pos)
		} else {
			l.send(nil, fProgress, encodeProgress(h.name, pos))
		}
	}
}
