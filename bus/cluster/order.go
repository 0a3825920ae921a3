package cluster

import (
	"maps"
	"slices"

	"github.com/peerscale/peerscale/bus"
)

// This file holds a member's side of a group's Agreed order: payloads
// wait in apend for their token, tokens and views wait in aq for their
// turn, delivered messages are retained until the sequencer says every
// member delivered them (for a failover flush).

// maxAhead bounds the order positions a member keeps ahead of a gap.
const maxAhead = 1 << 16

// aentry is one position of the order: a token or a view. Retained
// entries keep the delivered message.
type aentry struct {
	ord  uint64
	tok  token
	view *viewMsg
	msg  *bus.Message
}

// pendMsg is a payload waiting for its token.
type pendMsg struct {
	msg     *bus.Message
	viewSeq uint64
	fwd     bool // passed on by another member: keep it whatever its view
}

// orderAfter is what a drain leaves to do once the group's lock is
// released.
type orderAfter struct {
	own      uint64   // highest own sequence number delivered
	fwd      []fwdMsg // own unordered messages for the members a view added
	excluded bool     // a view excluded this member although it did not leave
	credit   []*bus.Message
}

type fwdMsg struct {
	to   []bus.MemberID
	body []byte
}

func (g *group) orderInit() {
	if g.apend == nil {
		g.apend = make(map[token]*pendMsg)
		g.afut = make(map[uint64]aentry)
		g.ahigh = make(map[bus.MemberID]uint64)
		g.adone = make(map[bus.MemberID]uint64)
	}
}

// alast returns the last position received without a gap.
func (g *group) alastLocked() uint64 {
	if n := len(g.aq); n > 0 {
		return g.aq[n-1].ord
	}
	return g.adel
}

// addPayload keeps a message of a total level until its token comes. It
// reports false when the message is dropped (a duplicate, or sent to an
// earlier membership): the caller returns its credit.
func (g *group) addPayload(m *bus.Message, viewSeq, seq uint64, fwd bool) (bool, orderAfter) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false, orderAfter{}
	}
	g.orderInit()
	tk := token{m.Sender, seq}
	_, dup := g.apend[tk]
	switch {
	case dup || g.adone[m.Sender] >= seq:
		g.mu.Unlock()
		return false, orderAfter{}
	case !fwd && g.view != nil && viewSeq < g.firstSeq:
		g.mu.Unlock()
		return false, orderAfter{} // sent to an earlier membership of this member
	case !fwd && g.view != nil && viewSeq <= g.view.ID.Seq && !slices.Contains(g.view.Members, m.Sender):
		g.mu.Unlock()
		return false, orderAfter{} // its sender left before it was ordered
	}
	g.apend[tk] = &pendMsg{msg: m, viewSeq: viewSeq, fwd: fwd}
	g.ndata++
	var late []fwdMsg
	if m.Sender == g.b.self && g.view != nil && viewSeq < g.view.ID.Seq {
		// Sent in a view this member has since left behind: the
		// members that joined since need it too.
		before, known := g.vhist[viewSeq]
		var to []bus.MemberID
		for _, id := range g.view.Members {
			if id != g.b.self && (!known || !slices.Contains(before, id)) {
				to = append(to, id)
			}
		}
		if len(to) > 0 {
			late = append(late, fwdMsg{to: to, body: encodeTotal(m.Level, viewSeq, seq, 0, g.name, m.Data)})
		}
	}
	after := g.drainLocked()
	after.fwd = append(late, after.fwd...)
	g.mu.Unlock()
	return true, after
}

// addEntry places a token or view at its position.
func (g *group) addEntryLocked(e aentry) {
	last := g.alastLocked()
	switch {
	case e.ord <= last:
		return // had it
	case e.ord == last+1:
		g.appendEntryLocked(e)
		for {
			n, ok := g.afut[g.alastLocked()+1]
			if !ok {
				break
			}
			delete(g.afut, n.ord)
			g.appendEntryLocked(n)
		}
	case e.view != nil && e.view.Reset:
		// A new sequencer: what is still missing before it never comes.
		for _, o := range slices.Sorted(maps.Keys(g.afut)) {
			if o < e.ord {
				g.appendEntryLocked(g.afut[o])
				delete(g.afut, o)
			}
		}
		g.appendEntryLocked(e)
	case len(g.afut) < maxAhead:
		if _, ok := g.afut[e.ord]; !ok || e.view != nil {
			g.afut[e.ord] = e
		}
	}
}

func (g *group) appendEntryLocked(e aentry) {
	if e.view == nil && e.tok.Seq > g.ahigh[e.tok.Sender] {
		g.ahigh[e.tok.Sender] = e.tok.Seq
	}
	g.aq = append(g.aq, e)
}

// onOrder takes a batch of tokens from the sequencer.
func (g *group) onOrder(o *orderMsg) orderAfter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.view == nil {
		return orderAfter{}
	}
	g.orderInit()
	for i, t := range o.Tokens {
		g.addEntryLocked(aentry{ord: o.First + uint64(i), tok: t})
	}
	g.trimLocked(o.Stable)
	return g.drainLocked()
}

// onFlush takes the order entries another member passed on after a
// failover. The entries alias the record: what is kept is copied.
func (g *group) onFlush(es []flushEntry) orderAfter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.view == nil {
		return orderAfter{}
	}
	g.orderInit()
	for _, e := range es {
		if e.View != nil {
			if e.View.ID.Seq > g.view.ID.Seq {
				g.addEntryLocked(aentry{ord: e.Ord, view: e.View})
			}
			continue
		}
		if e.Payload != nil && g.adone[e.Token.Sender] < e.Token.Seq {
			if _, ok := g.apend[e.Token]; !ok {
				m := &bus.Message{Group: g.name, Sender: e.Token.Sender, Level: e.Level, Data: slicesClone(e.Payload)}
				g.apend[e.Token] = &pendMsg{msg: m, fwd: true}
				g.ndata++
			}
		}
		g.addEntryLocked(aentry{ord: e.Ord, tok: e.Token})
	}
	return g.drainLocked()
}

// onOrderedView places a view at its position of the order. It is
// delivered once every entry before it is.
func (g *group) onOrderedView(v *viewMsg, self bus.MemberID) orderAfter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return orderAfter{}
	}
	g.orderInit()
	if g.view == nil && len(g.aq) == 0 {
		if !slices.Contains(v.Members, self) || v.ID.Seq <= g.minSeq {
			return orderAfter{}
		}
		// The first view: the order starts here for this member.
		g.adel = v.Ord - 1
		clear(g.afut)
	}
	g.addEntryLocked(aentry{ord: v.Ord, view: v})
	return g.drainLocked()
}

// trimLocked drops the retained entries every member delivered.
func (g *group) trimLocked(stable uint64) {
	if stable <= g.astable {
		return
	}
	g.astable = stable
	i := 0
	for i < len(g.aret) && g.aret[i].ord <= stable {
		i++
	}
	if i > 0 {
		n := copy(g.aret, g.aret[i:])
		clear(g.aret[n:])
		g.aret = g.aret[:n]
	}
}

// drainLocked delivers the entries at the head of the order whose
// payloads are here.
func (g *group) drainLocked() orderAfter {
	var after orderAfter
	self := g.b.self
	delivered := false
	for len(g.aq) > 0 {
		e := g.aq[0]
		if e.view != nil {
			v := e.view
			if !slices.Contains(v.Members, self) {
				if g.view != nil {
					after.excluded = true
				}
			} else {
				var prev []bus.MemberID
				if g.view != nil {
					prev = g.view.Members
				}
				g.installLocked(v, self)
				g.aret = append(g.aret, e)
				if prev != nil {
					g.forwardLocked(v, prev, &after)
				}
				g.dropDepartedLocked(v, &after)
			}
		} else if g.adone[e.tok.Sender] < e.tok.Seq {
			pm := g.apend[e.tok]
			if pm == nil {
				break
			}
			delete(g.apend, e.tok)
			g.adone[e.tok.Sender] = e.tok.Seq
			m := pm.msg
			m.View = g.view.ID
			g.items = append(g.items, m)
			delivered = true
			e.msg = m
			g.aret = append(g.aret, e)
			if e.tok.Sender == self {
				after.own = e.tok.Seq
			}
		}
		g.adel = e.ord
		g.aq[0] = aentry{}
		g.aq = g.aq[1:]
	}
	if len(g.aq) == 0 {
		g.aq = g.aq[:0:0]
	}
	if len(g.dropped) > 0 {
		after.credit = append(after.credit, g.dropped...)
		g.dropped = nil
	}
	if delivered {
		notify(g.avail)
	}
	return after
}

// forwardLocked collects this member's own messages not ordered yet, sent
// before view v: the members v added have not got them.
func (g *group) forwardLocked(v *viewMsg, prev []bus.MemberID, after *orderAfter) {
	var to []bus.MemberID
	for _, m := range v.Members {
		if m != g.b.self && !slices.Contains(prev, m) {
			to = append(to, m)
		}
	}
	if len(to) == 0 {
		return
	}
	var own []token
	for tk, pm := range g.apend {
		if tk.Sender == g.b.self && pm.viewSeq < v.ID.Seq {
			own = append(own, tk)
		}
	}
	slices.SortFunc(own, func(a, b token) int { return int(a.Seq - b.Seq) })
	for _, tk := range own {
		pm := g.apend[tk]
		body := encodeTotal(pm.msg.Level, pm.viewSeq, tk.Seq, 0, g.name, pm.msg.Data)
		after.fwd = append(after.fwd, fwdMsg{to: to, body: body})
	}
}

// dropDepartedLocked drops the payloads of members view v excludes that
// were sent in an earlier view: the sequencer orders nothing more of
// theirs.
func (g *group) dropDepartedLocked(v *viewMsg, after *orderAfter) {
	for tk, pm := range g.apend {
		if !pm.fwd && pm.viewSeq <= v.ID.Seq && !slices.Contains(v.Members, tk.Sender) {
			delete(g.apend, tk)
			g.ndata--
			after.credit = append(after.credit, pm.msg)
		}
	}
}

// orderState reports this member's progress in the order.
func (g *group) orderState() (orderState, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.view == nil {
		return orderState{}, false
	}
	o := orderState{Group: g.name, Recv: g.alastLocked(), Stable: g.astable, View: g.view.ID, Members: slices.Clone(g.view.Members)}
	for _, s := range slices.SortedFunc(maps.Keys(g.ahigh), bus.MemberID.Compare) {
		o.High = append(o.High, senderSeq{s, g.ahigh[s]})
	}
	return o, true
}

// delivered returns the last position delivered, or false before the
// first view.
func (g *group) delivered() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.adel, !g.closed && g.view != nil
}

// flushEntries returns the entries after position from up to to that
// this member has, with the payloads it holds.
func (g *group) flushEntries(from, to uint64) []flushEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []flushEntry
	add := func(e aentry) {
		if e.ord <= from || e.ord > to {
			return
		}
		fe := flushEntry{Ord: e.ord, Token: e.tok, View: e.view}
		if e.view == nil {
			m := e.msg
			if m == nil {
				if pm := g.apend[e.tok]; pm != nil {
					m = pm.msg
				}
			}
			if m != nil {
				fe.Level, fe.Payload = m.Level, m.Data
				if fe.Payload == nil {
					fe.Payload = []byte{}
				}
			}
		}
		out = append(out, fe)
	}
	for _, e := range g.aret {
		add(e)
	}
	for _, e := range g.aq {
		add(e)
	}
	return out
}
