package cluster

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/wire"
)

// maxRecord bounds a record a writer builds from a batch of frames.
const maxRecord = 64 << 10

// ioBuffer is the bufio size of each direction of a connection.
const ioBuffer = 64 << 10

// ackEvery bounds how many sequenced frames a receiver takes before it
// acknowledges, even while more input is buffered.
const ackEvery = 512

// ackDelay is how long a receiver waits for outgoing frames to carry its
// ack before it sends one alone.
const ackDelay = 2 * time.Millisecond

type outFrame struct {
	seq  uint64
	typ  byte
	body []byte
}

// link is the reliable FIFO channel to one peer incarnation: a window of
// sequenced frames not yet acknowledged, carried by at most one TCP
// connection at a time, resumed on reconnect from the peer's last received
// sequence number. The member with the smaller id dials.
//
// mu guards the send side and the connection; recvMu serialises the
// processing of received records across connections.
type link struct {
	b      *Bus
	peer   bus.MemberID
	dialer bool
	done   chan struct{} // closed by close
	wake   chan struct{} // writer notification, capacity 1
	redial chan struct{} // dialer notification, capacity 1

	mu        sync.Mutex
	addr      string
	closed    bool
	down      bool          // memberlist says the peer is dead; kept in case it comes back
	downSince time.Time     // when down was set
	downCh    chan struct{} // closed when down is set
	idleSince time.Time     // first seen without a connection by idleFor
	ackAt     time.Time     // last ack progress, or when the window filled from empty
	creditAt  time.Time     // last credit back, or when a group ran out of it
	nextSeq   uint64        // last sequence number assigned
	acked     uint64        // every frame <= acked is acknowledged
	win       []outFrame
	winBytes  int
	sent      uint64 // last sequence number written on the current connection
	unrel     []outFrame
	unrelLen  int
	ackDirty  bool
	bye       bool
	byeSent   chan struct{}
	space     chan struct{}  // closed when the window frees space
	inflight  map[string]int // per group: messages sent the peer has not consumed
	credit    int            // the peer's per-group limit
	owed      map[string]int // per group: messages consumed here, not yet credited
	conn      net.Conn
	connStop  chan struct{}
	gen       uint64

	epoch uint64 // identifies this link state to the peer

	recvAt   atomic.Int64  // unix ns of the last record read
	ackSent  atomic.Uint64 // last ack written
	ackArmed atomic.Bool   // a delayed ack is scheduled
	ackTimer *time.Timer

	recvMu    sync.Mutex
	recvSeq   atomic.Uint64 // last in-order sequence number received
	peerEpoch uint64        // the peer's link state we receive from (recvMu)
	fresh     bool          // the peer's stream is new to us: take its next frame as the start (recvMu)

	reconnects    atomic.Uint64
	retransmitted atomic.Uint64
	framesOut     atomic.Uint64
	framesIn      atomic.Uint64
}

func newLink(b *Bus, peer bus.MemberID) *link {
	l := &link{
		b:       b,
		peer:    peer,
		dialer:  b.self.Compare(peer) < 0,
		done:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
		redial:  make(chan struct{}, 1),
		space:   make(chan struct{}),
		downCh:  make(chan struct{}),
		byeSent: make(chan struct{}),
		epoch:   randUint64(),
		credit:  b.cfg.QueueLen,
	}
	l.ackTimer = time.AfterFunc(time.Hour, func() {
		l.ackArmed.Store(false)
		l.mu.Lock()
		l.ackDirty = true
		l.mu.Unlock()
		notify(l.wake)
	})
	l.ackTimer.Stop()
	return l
}

func randUint64() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// myHello returns the hello this side sends.
func (l *link) myHello(b *Bus) hello {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	return hello{Label: b.cfg.Label, From: b.self, To: l.peer, Nonce: newNonce(), Sealed: b.cfg.Key != nil,
		FromEpoch: l.epoch, ToEpoch: l.peerEpoch, LastRecv: l.recvSeq.Load(), Credit: uint64(b.cfg.QueueLen)}
}

// replyHello returns the hello answering theirs, as it will be once
// learn(theirs) ran; learn runs only after the peer proved it holds the
// key.
func (l *link) replyHello(b *Bus, theirs hello) hello {
	h := l.myHello(b)
	if theirs.FromEpoch != h.ToEpoch {
		h.ToEpoch, h.LastRecv = theirs.FromEpoch, 0
	}
	return h
}

// learn takes in the peer's hello: a new peer link state restarts the
// receive side. It returns the peer's last received sequence number of
// this link state's stream (zero when the peer does not know it).
func (l *link) learn(h hello) uint64 {
	l.recvMu.Lock()
	if h.FromEpoch != l.peerEpoch {
		l.peerEpoch = h.FromEpoch
		l.recvSeq.Store(0)
		l.ackSent.Store(0)
		l.fresh = true
	}
	l.recvMu.Unlock()
	if h.ToEpoch != l.epoch {
		return 0
	}
	return h.LastRecv
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (l *link) setAddr(addr string) {
	l.mu.Lock()
	changed := l.addr != addr
	l.addr = addr
	l.mu.Unlock()
	if changed {
		notify(l.redial)
	}
}

// full reports whether the window has no room for n more bytes.
func (l *link) full(n int) bool {
	if len(l.win) == 0 {
		return false
	}
	return len(l.win) >= l.b.cfg.Window || l.winBytes+n > l.b.cfg.WindowBytes
}

// waitRoom waits until the window has room for n bytes and the peer has
// credit for one more message of group, ctx ends, the
// peer goes down or leaves (nil: nothing is sent to it) or the Bus closes.
func (l *link) waitRoom(ctx context.Context, n int, group string) error {
	l.mu.Lock()
	for !l.closed && !l.down && (l.full(n) || l.inflight[group] >= l.credit) {
		ch, down := l.space, l.downCh
		l.mu.Unlock()
		views, in := l.b.inView(group, l.peer)
		if !in {
			return errNotMember
		}
		select {
		case <-ch:
		case <-down:
		case <-views:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
		case <-l.b.done:
			return bus.ErrClosed
		}
		l.mu.Lock()
	}
	l.mu.Unlock()
	return nil
}

// errNotMember tells a waiting Send that the peer left the group's view
// (excluded as unreachable or slow): nothing is sent to it.
var errNotMember = errors.New("cluster: peer left the view")

// setDown marks the peer dead (memberlist) or alive again. While down the
// link drops what is sent to it and does not dial, but keeps its sequence
// state and window, so that a peer wrongly declared dead resumes without
// loss or duplicates.
func (l *link) setDown(down bool) {
	l.mu.Lock()
	if l.closed || l.down == down {
		l.mu.Unlock()
		return
	}
	l.down = down
	if down {
		l.downSince = time.Now()
		close(l.downCh)
		if l.conn != nil {
			l.conn.Close()
			close(l.connStop)
			l.conn = nil
		}
	} else {
		l.downCh = make(chan struct{})
		// Memberlist reports the peer alive again: LinkTimeout counts
		// from now, not from when the link went down or last acked.
		l.idleSince = time.Time{}
		if len(l.win) > 0 {
			l.ackAt = time.Now()
		}
	}
	l.mu.Unlock()
	notify(l.redial)
}

// idleFor reports how long the link has been without a connection since
// it was created or last connected (zero while connected).
func (l *link) idleFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.idleSince = time.Time{}
		return 0
	}
	if l.idleSince.IsZero() {
		l.idleSince = now
	}
	return now.Sub(l.idleSince)
}

// unreachableFor reports how long the link has failed to carry frames to
// a peer memberlist reports alive: without a connection, or with frames
// waiting for an acknowledgement that does not progress while nothing
// comes from the peer.
func (l *link) unreachableFor(now time.Time) time.Duration {
	idle := l.idleFor(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.win) > 0 && !l.ackAt.IsZero() {
		// Frames wait for an acknowledgement: the peer is unreachable
		// if nothing came from it either (a lossy path still carries
		// its traffic while TCP backs off).
		last := l.ackAt
		if r := time.Unix(0, l.recvAt.Load()); r.After(last) {
			last = r
		}
		return max(idle, now.Sub(last))
	}
	return idle
}

// slowFor reports how long a group has been out of the peer's credit
// without any credit coming back: the peer's application stopped reading.
func (l *link) slowFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.inflight {
		if n >= l.credit {
			return now.Sub(l.creditAt)
		}
	}
	return 0
}

// connected reports whether the link has a connection to a peer that is
// not marked down.
func (l *link) connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil && !l.down && !l.closed
}

// heardSince reports whether a record came from the peer after t.
func (l *link) heardSince(t time.Time) bool {
	return l.recvAt.Load() > t.UnixNano()
}

// ping sends an empty sequenced frame and returns its sequence number
// (zero when the link is closed): once ackedSeq reaches it, the peer read
// everything before it.
func (l *link) ping() uint64 {
	seq, _ := l.send(nil, fPing, nil)
	return seq
}

// downFor reports how long the peer has been down (zero when it is up).
func (l *link) downFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		return 0
	}
	return now.Sub(l.downSince)
}

// send appends a sequenced frame to the window. With ctx it waits while
// the window is full; without (control frames) it never waits. A link
// closed meanwhile drops the frame: its peer has left.
func (l *link) send(ctx context.Context, typ byte, body []byte) (uint64, error) {
	return l.sendGroup(ctx, typ, body, "")
}

// sendGroup is send for a data message of group, counted against the
// peer's credit.
func (l *link) sendGroup(ctx context.Context, typ byte, body []byte, group string) (uint64, error) {
	l.mu.Lock()
	if l.down && typ == fData && (l.full(len(body)) || l.inflight[group] >= l.credit) {
		// A member declared dead gets no more data than its window and
		// credit hold; what is kept is delivered if it was a wrong
		// suspicion and it comes back.
		l.mu.Unlock()
		return 0, nil
	}
	for ctx != nil && !l.closed && !l.down && l.full(len(body)) {
		ch := l.space
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-l.done:
		case <-l.b.done:
			return 0, bus.ErrClosed
		}
		l.mu.Lock()
	}
	if l.closed {
		l.mu.Unlock()
		return 0, nil
	}
	l.nextSeq++
	seq := l.nextSeq
	if len(l.win) == 0 {
		l.ackAt = time.Now()
	}
	if group != "" {
		if l.inflight == nil {
			l.inflight = make(map[string]int)
		}
		l.inflight[group]++
		if l.inflight[group] == l.credit {
			l.creditAt = time.Now()
		}
	}
	l.win = append(l.win, outFrame{seq: seq, typ: typ, body: body})
	l.winBytes += len(body)
	l.mu.Unlock()
	notify(l.wake)
	return seq, nil
}

// sendUnreliable queues an unsequenced frame, or drops it when the queue is
// full.
func (l *link) sendUnreliable(body []byte) bool {
	l.mu.Lock()
	if l.closed || l.down || l.conn == nil || len(l.unrel) >= l.b.cfg.Window || l.unrelLen+len(body) > l.b.cfg.WindowBytes/4 {
		l.mu.Unlock()
		return false
	}
	l.unrel = append(l.unrel, outFrame{typ: fUnrel, body: body})
	l.unrelLen += len(body)
	l.mu.Unlock()
	notify(l.wake)
	return true
}

func (l *link) sendBye() {
	l.mu.Lock()
	l.bye = true
	hasConn := l.conn != nil
	l.mu.Unlock()
	if !hasConn {
		l.markByeSent()
	}
	notify(l.wake)
}

func (l *link) markByeSent() {
	select {
	case <-l.byeSent:
	default:
		close(l.byeSent)
	}
}

// onCredit takes back n messages of group the peer consumed.
func (l *link) onCredit(group string, n int) {
	l.mu.Lock()
	l.creditAt = time.Now()
	if c := l.inflight[group] - n; c > 0 {
		l.inflight[group] = c
	} else {
		delete(l.inflight, group)
	}
	close(l.space)
	l.space = make(chan struct{})
	l.mu.Unlock()
}

// consumed records that n messages of group from the peer left this
// member (read, or dropped) and returns credit in batches.
func (l *link) consumed(group string, n int) {
	l.mu.Lock()
	if l.owed == nil {
		l.owed = make(map[string]int)
	}
	c := l.owed[group] + n
	if c < max(1, l.b.cfg.QueueLen/4) {
		l.owed[group] = c
		l.mu.Unlock()
		return
	}
	delete(l.owed, group)
	l.mu.Unlock()
	l.send(nil, fCredit, encodeCredit(group, c))
}

// onAck drops acknowledged frames from the window.
func (l *link) onAck(n uint64) error {
	l.mu.Lock()
	if n > l.nextSeq {
		l.mu.Unlock()
		return fmt.Errorf("%w: ack %d beyond %d sent", errMalformed, n, l.nextSeq)
	}
	l.ackLocked(n)
	l.mu.Unlock()
	l.b.linkAcked()
	return nil
}

func (l *link) ackLocked(n uint64) {
	if l.closed || n <= l.acked {
		return
	}
	k := int(n - l.acked)
	for i := range k {
		l.winBytes -= len(l.win[i].body)
		l.win[i] = outFrame{}
	}
	l.win = l.win[k:]
	if len(l.win) == 0 {
		l.win = l.win[:0:0]
	}
	l.acked = n
	l.ackAt = time.Now()
	if l.sent < n {
		l.sent = n
	}
	close(l.space)
	l.space = make(chan struct{})
}

// ackedSeq returns the highest acknowledged sequence number.
func (l *link) ackedSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

func (l *link) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// close drops the link for good: its peer left.
func (l *link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.ackTimer.Stop()
	close(l.done)
	if l.conn != nil {
		l.conn.Close()
		close(l.connStop)
		l.conn = nil
	}
	l.win, l.winBytes, l.unrel, l.unrelLen = nil, 0, nil, 0
	close(l.space)
	l.space = make(chan struct{})
	l.mu.Unlock()
	l.markByeSent()
}

// attach makes c the link's connection, replacing any other, and resumes
// from the peer's last received sequence number.
func (l *link) attach(c net.Conn, r *wire.Reader, w *wire.Writer, peerLast uint64, theirs hello) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return errLinkClosed
	}
	if peerLast > l.nextSeq {
		l.mu.Unlock()
		c.Close()
		return fmt.Errorf("%w: peer resumes at %d beyond %d sent", errMalformed, peerLast, l.nextSeq)
	}
	if l.conn != nil {
		l.conn.Close()
		close(l.connStop)
	}
	l.gen++
	gen, stop := l.gen, make(chan struct{})
	l.conn, l.connStop = c, stop
	l.credit = int(theirs.Credit)
	if theirs.ToEpoch != l.epoch {
		l.inflight = nil // the peer starts our stream afresh
	}
	l.ackLocked(peerLast)
	if n := len(l.win); n > 0 && l.gen > 1 {
		l.retransmitted.Add(uint64(n))
		l.b.stats.retransmitted.Add(uint64(n))
	}
	l.sent = l.acked
	l.ackDirty = true
	l.mu.Unlock()
	if gen > 1 {
		l.reconnects.Add(1)
	}
	l.b.log.Debug("link up", "peer", l.peer, "resume", peerLast)
	l.b.wg.Go(func() { l.readLoop(c, gen, r) })
	l.b.wg.Go(func() { l.writeLoop(c, gen, stop, w) })
	notify(l.wake)
	l.b.linkAcked()
	return nil
}

var errLinkClosed = errors.New("cluster: link closed")

// drop closes connection gen after err; the dialer reconnects.
func (l *link) drop(gen uint64, err error) {
	l.mu.Lock()
	if l.gen != gen || l.conn == nil {
		l.mu.Unlock()
		return
	}
	l.conn.Close()
	close(l.connStop)
	l.conn = nil
	l.mu.Unlock()
	notify(l.redial)
	if l.isClosed() || l.b.isClosed() {
		return
	}
	if errors.Is(err, errMalformed) || errors.Is(err, wire.ErrAuth) || errors.Is(err, wire.ErrTooLarge) {
		l.b.stats.badFrames.Add(1)
		l.b.log.Warn("link closed: bad input", "peer", l.peer, "err", err)
	} else {
		l.b.log.Debug("link down", "peer", l.peer, "err", err)
	}
}

func (l *link) writeLoop(c net.Conn, gen uint64, stop chan struct{}, w *wire.Writer) {
	var batch []outFrame
	var seqBuf [binary.MaxVarintLen64]byte
	for {
		select {
		case <-l.wake:
		case <-stop:
			return
		}
		// Let concurrent senders add to the batch before one write.
		runtime.Gosched()
		l.mu.Lock()
		if l.gen != gen || l.conn == nil {
			l.mu.Unlock()
			return
		}
		ack, forceAck := l.recvSeq.Load(), l.ackDirty
		l.ackDirty = false
		batch = batch[:0]
		if l.sent < l.nextSeq {
			batch = append(batch, l.win[l.sent-l.acked:]...)
			l.sent = l.nextSeq
		}
		batch = append(batch, l.unrel...)
		clear(l.unrel)
		l.unrel, l.unrelLen = l.unrel[:0], 0
		bye := l.bye
		l.mu.Unlock()

		body := w.Body()
		// Acks ride on outgoing frames; alone only when asked for.
		if ack > l.ackSent.Load() && (forceAck || len(batch) > 0 || bye) {
			l.ackSent.Store(ack)
			n := binary.PutUvarint(seqBuf[:], ack)
			body = appendFrame(body, fAck, 0, seqBuf[:n])
		}
		var err error
		for i := range batch {
			f := &batch[i]
			if len(body) > 0 && len(body)+len(f.body)+2*binary.MaxVarintLen64 > maxRecord {
				w.SetBody(body)
				if err = w.End(); err != nil {
					break
				}
				body = w.Body()
			}
			body = appendFrame(body, f.typ, f.seq, f.body)
			batch[i] = outFrame{}
		}
		if err == nil && bye {
			body = appendFrame(body, fBye, 0, nil)
		}
		if err == nil {
			w.SetBody(body)
			err = w.End()
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			l.drop(gen, err)
			return
		}
		l.framesOut.Add(uint64(len(batch)))
		if bye {
			l.markByeSent()
		}
	}
}

func (l *link) readLoop(c net.Conn, gen uint64, r *wire.Reader) {
	for {
		rec, err := r.Read()
		if err != nil {
			l.drop(gen, err)
			return
		}
		l.recvAt.Store(time.Now().UnixNano())
		l.recvMu.Lock()
		err = eachFrame(rec, l.handleFrame)
		l.recvMu.Unlock()
		if err != nil {
			l.drop(gen, err)
			return
		}
		if seq, sent := l.recvSeq.Load(), l.ackSent.Load(); seq > sent {
			if seq-sent >= ackEvery {
				l.mu.Lock()
				l.ackDirty = true
				l.mu.Unlock()
				notify(l.wake)
			} else if r.Buffered() == 0 && !l.ackArmed.Swap(true) {
				l.ackTimer.Reset(ackDelay)
			}
		}
	}
}

func (l *link) handleFrame(typ byte, body []byte) error {
	l.framesIn.Add(1)
	if sequenced(typ) {
		seq, n := binary.Uvarint(body)
		if n <= 0 {
			return fmt.Errorf("%w: sequence number", errMalformed)
		}
		body = body[n:]
		last := l.recvSeq.Load()
		switch {
		case l.fresh:
			l.fresh = false
		case seq <= last:
			return nil // retransmitted after a reconnect: already processed
		case seq != last+1:
			return fmt.Errorf("%w: sequence gap: %d after %d", errMalformed, seq, last)
		}
		l.recvSeq.Store(seq)
	}
	switch typ {
	case fData, fUnrel:
		m, err := decodeData(body)
		if err != nil {
			return err
		}
		if (typ == fUnrel) != (m.Level == bus.Unreliable) {
			return fmt.Errorf("%w: level %s on frame type %d", errMalformed, m.Level, typ)
		}
		l.b.deliver(l, m)
		return nil
	case fAck:
		d := dec{b: body}
		n := d.uvarint("ack")
		if err := d.done("ack"); err != nil {
			return err
		}
		return l.onAck(n)
	case fView:
		v, err := decodeView(body)
		if err != nil {
			return err
		}
		if l.b.coordinator() == l.peer {
			// Only this member's coordinator installs its views: a member
			// excluded for its links may coordinate views of its own.
			l.b.applyView(v)
		}
		return nil
	case fState:
		s, err := decodeState(body)
		if err != nil {
			return err
		}
		l.b.post(event{kind: evState, id: l.peer, state: s})
		return nil
	case fStable:
		g, seq, err := decodeStable(body)
		if err != nil {
			return err
		}
		l.b.applyStable(g, seq)
		return nil
	case fCredit:
		g, n, err := decodeCredit(body)
		if err != nil {
			return err
		}
		l.onCredit(g, n)
		return nil
	case fOrder:
		o, err := decodeOrder(body)
		if err != nil {
			return err
		}
		l.b.onOrder(l, &o)
		return nil
	case fFwd:
		from, m, err := decodeFwd(body)
		if err != nil {
			return err
		}
		l.b.deliverTotal(l, from, m, true)
		return nil
	case fProgress:
		g, pos, err := decodeProgress(body, 1)
		if err != nil {
			return err
		}
		l.b.seq.progress(l.peer, g, pos[0])
		return nil
	case fFlushReq:
		g, pos, err := decodeProgress(body, 2)
		if err != nil {
			return err
		}
		l.b.passFlush(g, pos[0], pos[1])
		return nil
	case fFlush:
		g, es, err := decodeFlush(body)
		if err != nil {
			return err
		}
		l.b.onFlush(g, es)
		return nil
	case fSynced:
		if len(body) != 0 {
			return fmt.Errorf("%w: synced with a body", errMalformed)
		}
		l.b.markSynced()
		return nil
	case fPing:
		if len(body) != 0 {
			return fmt.Errorf("%w: ping with a body", errMalformed)
		}
		return nil // acknowledged like every sequenced frame
	case fBye:
		if len(body) != 0 {
			return fmt.Errorf("%w: bye with a body", errMalformed)
		}
		l.b.post(event{kind: evBye, id: l.peer})
		return nil
	default:
		return fmt.Errorf("%w: unexpected frame type %d", errMalformed, typ)
	}
}

// dialLoop keeps the link connected while it lives (dialer side only).
func (l *link) dialLoop() {
	backoff := 20 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for {
		l.mu.Lock()
		idle := l.conn == nil && l.addr != "" && !l.closed && !l.down
		addr := l.addr
		l.mu.Unlock()
		if !idle {
			select {
			case <-l.redial:
				continue
			case <-l.done:
				return
			}
		}
		err := l.b.dial(l, addr)
		if err == nil {
			backoff = 20 * time.Millisecond
			continue
		}
		if l.isClosed() || l.b.isClosed() {
			return
		}
		l.b.log.Debug("dial failed", "peer", l.peer, "addr", addr, "err", err)
		t.Reset(backoff)
		select {
		case <-t.C:
		case <-l.done:
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

func newNonce() [nonceLen]byte {
	var n [nonceLen]byte
	rand.Read(n[:])
	return n
}

// dial connects to addr and runs the dialer's side of the handshake.
func (b *Bus) dial(l *link, addr string) error {
	d := net.Dialer{Timeout: b.cfg.DialTimeout}
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.DialTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	mine := l.myHello(b)
	r, w := b.newRW(c)
	myHello := mine.encode()
	if err := w.Write(myHello); err != nil {
		c.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		c.Close()
		return err
	}
	p, err := r.Read()
	if err != nil {
		c.Close()
		return fmt.Errorf("handshake: %w", err)
	}
	theirs, err := decodeHello(p)
	if err == nil {
		err = b.checkHello(theirs)
	}
	if err == nil && (theirs.From != l.peer || theirs.To != b.self) {
		err = fmt.Errorf("%w: hello from %s to %s, want %s to %s", errPeer, theirs.From, theirs.To, l.peer, b.self)
	}
	if err != nil {
		c.Close()
		b.log.Warn("link refused", "peer", l.peer, "addr", addr, "err", err)
		return err
	}
	if err := b.seal(c, r, w, true, append(myHello, p...)); err != nil {
		c.Close()
		b.stats.badFrames.Add(1)
		b.log.Warn("link refused", "peer", l.peer, "addr", addr, "err", err)
		return err
	}
	if !stop() {
		c.Close()
		return ctx.Err()
	}
	c.SetDeadline(time.Time{})
	return l.attach(c, r, w, l.learn(theirs), theirs)
}

var errPeer = errors.New("cluster: wrong peer")
var errUnknown = errors.New("cluster: not a known member")
var errLabel = errors.New("cluster: cluster label mismatch")
var errKey = errors.New("cluster: encryption mismatch")

func (b *Bus) newRW(c net.Conn) (*wire.Reader, *wire.Writer) {
	if b.cfg.wrapConn != nil {
		c = b.cfg.wrapConn(c)
	}
	return wire.NewReader(c, ioBuffer, b.cfg.MaxMessageSize+maxRecord), wire.NewWriter(c, ioBuffer)
}

func (b *Bus) checkHello(h hello) error {
	if h.Label != b.cfg.Label {
		return fmt.Errorf("%w: %q", errLabel, h.Label)
	}
	if h.Sealed != (b.cfg.Key != nil) {
		return fmt.Errorf("%w: peer sealed=%v", errKey, h.Sealed)
	}
	return nil
}

// seal switches the connection to sealed records when the cluster has a
// key and proves both ends hold it with one empty sealed record each way.
func (b *Bus) seal(c net.Conn, r *wire.Reader, w *wire.Writer, dialer bool, transcript []byte) error {
	if b.cfg.Key == nil {
		return nil
	}
	dk, ak, err := wire.Keys(b.cfg.Key, transcript)
	if err != nil {
		return err
	}
	if dialer {
		w.Seal(dk)
		r.Seal(ak)
	} else {
		w.Seal(ak)
		r.Seal(dk)
	}
	if err := w.Write(nil); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	p, err := r.Read()
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: key confirmation", errMalformed)
	}
	return nil
}

// acceptLoop accepts data connections until the listener closes.
func (b *Bus) acceptLoop() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			if !b.isClosed() {
				b.log.Error("data listener failed", "err", err)
			}
			return
		}
		b.wg.Go(func() { b.accept(c) })
	}
}

// accept runs the acceptor's side of the handshake.
func (b *Bus) accept(c net.Conn) {
	c.SetDeadline(time.Now().Add(b.cfg.DialTimeout))
	stop := context.AfterFunc(b.ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r, w := b.newRW(c)
	fail := func(err error) {
		c.Close()
		switch {
		case b.isClosed():
		case errors.Is(err, errUnknown) || errors.Is(err, net.ErrClosed) || errors.Is(err, errLinkClosed):
			// A peer that dials before memberlist told us about it
			// retries; not bad input.
			b.log.Debug("link refused", "remote", c.RemoteAddr().String(), "err", err)
		default:
			b.stats.badFrames.Add(1)
			b.log.Warn("link refused", "remote", c.RemoteAddr().String(), "err", err)
		}
	}
	p, err := r.Read()
	if err != nil {
		fail(fmt.Errorf("handshake: %w", err))
		return
	}
	theirHello := append([]byte(nil), p...)
	theirs, err := decodeHello(theirHello)
	if err == nil {
		err = b.checkHello(theirs)
	}
	if err == nil && theirs.To != b.self {
		err = fmt.Errorf("%w: hello for %s", errPeer, theirs.To)
	}
	if err == nil && b.self.Compare(theirs.From) < 0 {
		err = fmt.Errorf("%w: %s must not dial %s", errPeer, theirs.From, b.self)
	}
	var l *link
	if err == nil {
		// A peer memberlist has not told us about yet (gossip reaches
		// members at different times) is taken; the manager forgets link
		// state of ids memberlist never reports.
		l = b.linkFor(theirs.From, "")
		if l == nil {
			err = fmt.Errorf("%w: %s has left", errUnknown, theirs.From)
		}
	}
	if err != nil {
		fail(err)
		return
	}
	mine := l.replyHello(b, theirs)
	myHello := mine.encode()
	if err := w.Write(myHello); err != nil {
		c.Close()
		return
	}
	if err := w.Flush(); err != nil {
		c.Close()
		return
	}
	if err := b.seal(c, r, w, false, append(theirHello, myHello...)); err != nil {
		fail(err)
		return
	}
	if !stop() {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if err := l.attach(c, r, w, l.learn(theirs), theirs); err != nil && !errors.Is(err, errLinkClosed) {
		fail(err)
	}
}
