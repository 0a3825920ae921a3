package logpub

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/logwire"
)

// Errors returned by a Publisher.
var (
	// ErrClosed is returned by Shutdown after Close.
	ErrClosed = errors.New("logpub: closed")
	// ErrUnacknowledged is returned by Shutdown when its ctx ended before
	// every record was acknowledged; the rest stays in the journal.
	ErrUnacknowledged = errors.New("logpub: records not acknowledged")
)

// Config configures a Publisher. The zero value is valid; each field
// documents its default.
type Config struct {
	// ID is the publisher's stable id in records, acks and the journal.
	// Empty means the host name.
	ID string
	// Format formats the line each record carries. Nil means
	// CombinedFormat.
	Format *Format
	// AckGroup is the group loggers acknowledge to (see internal/logwire).
	// Empty means the log group's name followed by ".ack".
	AckGroup string
	// FlushInterval bounds how long a record waits in the current batch.
	// Zero means 20 ms.
	FlushInterval time.Duration
	// MaxBatchBytes bounds a batch message. Zero means 256 KiB or the bus's
	// MaxMessageSize if smaller.
	MaxBatchBytes int
	// MaxMemory bounds the bytes of batches held in memory. Zero means
	// 64 MiB.
	MaxMemory int64
	// Dir is the journal directory, one per Publisher. Empty means no
	// journal: records wait for acknowledgement in memory only and are
	// lost with the process.
	Dir string
	// MaxJournal bounds the journal's size. Zero means 1 GiB.
	MaxJournal int64
	// SegmentBytes is the size at which a journal segment is closed and a
	// new one started. Zero means 32 MiB.
	SegmentBytes int64
	// AckQuorum is the number of durable loggers (distinct names) that
	// must acknowledge a record before it is forgotten. Zero means 1;
	// negative means none: a batch is forgotten once sent.
	AckQuorum int
	// Block is how long Log may wait for room when memory and journal are
	// both full before it drops the record. Zero means Log drops at once
	// (and counts it in Stats.Dropped).
	Block time.Duration
	// SendTimeout bounds one Send on the bus. Zero means 5 s.
	SendTimeout time.Duration
	// ResendAfter paces the repair of a lost tail (a logger missed the
	// last batches of a stream, and nothing later reveals the gap to it):
	// a logger that repeats an acknowledgement short of what was sent,
	// without progress on that stream for ResendAfter, gets again the
	// batches past it that were sent longer than ResendAfter ago. A logger
	// that is merely behind makes progress and gets nothing again (a
	// resend would feed its backlog). Zero means 2 s.
	ResendAfter time.Duration
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

type streamKey struct {
	pub   string
	epoch uint64
}

// ackState is how far one logger acknowledged one stream.
type ackState struct {
	next     uint64    // records below are durable at the logger
	advanced time.Time // when next last grew
}

// batch is one sealed batch, retained until acknowledged.
type batch struct {
	key   streamKey
	first uint64
	count uint32
	size  int      // bytes of the batch message
	buf   []byte   // frame header + message; nil when only in the journal
	seg   *segment // nil until journaled
	off   int64
	sent  time.Time // when its last Send started; zero before
	redo  bool      // to be sent again (a logger lacks it)
}

// Publisher publishes access-log records to a bus group in batches, keeps
// them (in memory and in a bounded local journal) until durable loggers
// acknowledge them, and retransmits what loggers miss.
//
// Log is safe for concurrent use and never blocks on the network; Stats,
// Shutdown and Close are safe for concurrent use.
type Publisher struct {
	b      bus.Bus
	group  string
	cfg    Config
	format *Format
	log    *slog.Logger
	epoch  uint64
	ack    bus.Group

	scratch sync.Pool
	kick    chan struct{} // wakes the flusher (sender)
	jkick   chan struct{} // wakes the journaler
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	cerr    error

	jmu sync.Mutex // guards j's files; never taken with mu held
	j   *journal

	mu         sync.Mutex
	closed     bool
	cur        []byte // frame header + batch being filled; nil when none
	curFirst   uint64
	curCount   uint32
	nextSeq    uint64
	dropEpoch  uint64
	retained   []*batch
	base       uint64                     // absolute position of retained[0]
	sendPos    uint64                     // next position to send
	redoPos    uint64                     // lowest position that may be marked redo (<= sendPos)
	joined     map[bus.MemberID]time.Time // ack group member -> when this Publisher saw it join
	jPos       uint64                     // next position to journal
	sentHigh   uint64                     // highest position sent + 1
	memBytes   int64
	free       [][]byte
	acks       map[string]map[streamKey]ackState // by logger name
	streams    map[streamKey]bool                // the streams this Publisher holds records of
	changed    chan struct{}
	inUse      *batch // the batch whose buffer the flusher sends outside mu
	jInUse     *batch // the batch whose buffer the journaler writes outside mu
	journalOff bool   // journal full: stop writing until it shrinks
	stats      Stats
}

// Stats is a snapshot of a Publisher's counters.
type Stats struct {
	Records      uint64 // records accepted (given a sequence number)
	Bytes        uint64 // encoded bytes of the accepted records
	Batches      uint64 // batch messages sent, retransmissions included
	Replayed     uint64 // records sent again: retransmissions and journal replay
	Dropped      uint64 // records dropped: memory and journal full, too large, or Log after Close
	Acked        uint64 // records released after acknowledgement (or after Send with no quorum)
	Retained     uint64 // records held for acknowledgement now
	MemoryBytes  int64  // bytes of batch buffers in memory now
	JournalBytes int64  // bytes of journal segments on disk now
	SendErrors   uint64 // failed Sends (each retried)
	BadMessages  uint64 // undecodable messages received on the ack group
	Stalled      uint64 // resends started by a logger repeating an ack short of what was sent
}

// New starts a Publisher that sends to group on b. It joins the ack group,
// opens (and replays) the journal in cfg.Dir, and starts its flusher.
func New(b bus.Bus, group string, cfg Config) (*Publisher, error) {
	if err := bus.ValidateGroup(group); err != nil {
		return nil, fmt.Errorf("logpub: %w", err)
	}
	if cfg.ID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.ID = h
	}
	if cfg.Format == nil {
		cfg.Format = MustCompile(CombinedFormat)
	}
	if cfg.AckGroup == "" {
		cfg.AckGroup = group + ".ack"
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 20 * time.Millisecond
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 256 << 10
	}
	cfg.MaxBatchBytes = min(cfg.MaxBatchBytes, b.MaxMessageSize())
	if cfg.MaxBatchBytes < 1024 {
		return nil, fmt.Errorf("logpub: batch size %d too small", cfg.MaxBatchBytes)
	}
	if cfg.MaxMemory <= 0 {
		cfg.MaxMemory = 64 << 20
	}
	cfg.MaxMemory = max(cfg.MaxMemory, 2*int64(cfg.MaxBatchBytes+frameHeader))
	if cfg.MaxJournal <= 0 {
		cfg.MaxJournal = 1 << 30
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = 32 << 20
	}
	if cfg.AckQuorum == 0 {
		cfg.AckQuorum = 1
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 5 * time.Second
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Publisher{
		b:       b,
		group:   group,
		cfg:     cfg,
		format:  cfg.Format,
		log:     cfg.Logger.With("component", "logpub", "group", group),
		kick:    make(chan struct{}, 1),
		jkick:   make(chan struct{}, 1),
		nextSeq: 1,
		acks:    make(map[string]map[streamKey]ackState),
		streams: make(map[streamKey]bool),
		joined:  make(map[bus.MemberID]time.Time),
	}
	p.scratch.New = func() any { b := make([]byte, 0, 1024); return &b }
	p.epoch = uint64(time.Now().UnixMicro())
	if cfg.Dir != "" {
		j, recs, err := openJournal(cfg.Dir, cfg.SegmentBytes)
		if err != nil {
			return nil, err
		}
		p.j = j
		var n uint64
		for _, r := range recs {
			key := streamKey{r.hdr.Publisher, r.hdr.Epoch}
			if key.pub == cfg.ID && key.epoch >= p.epoch {
				p.epoch = key.epoch + 1
			}
			p.retained = append(p.retained, &batch{key: key, first: r.hdr.FirstSeq, count: r.hdr.Count, size: r.size, seg: r.seg, off: r.off})
			p.streams[key] = true
			n += uint64(r.hdr.Count)
		}
		p.jPos = uint64(len(p.retained))
		p.sentHigh = p.jPos
		p.stats.Retained = n
		if len(recs) > 0 {
			p.log.Info("journal replay", "batches", len(recs), "records", n, "bytes", j.bytes.Load())
		}
	}
	p.streams[streamKey{cfg.ID, p.epoch}] = true
	ctx, cancel := context.WithCancel(context.Background())
	ack, err := b.Join(ctx, cfg.AckGroup)
	if err != nil {
		cancel()
		if p.j != nil {
			_ = p.j.close()
		}
		return nil, fmt.Errorf("logpub: join %s: %w", cfg.AckGroup, err)
	}
	p.ack = ack
	p.cancel = cancel
	p.wg.Go(func() { p.flusher(ctx) })
	if p.j != nil {
		p.wg.Go(func() { p.journaler(ctx) })
	}
	p.wg.Go(func() { p.receiveAcks(ctx) })
	return p, nil
}

func (p *Publisher) logNeeds() needs {
	n := p.format.needs
	n.end = true // records carry the duration
	return n
}

// Epoch returns the epoch of the records this Publisher numbers.
func (p *Publisher) Epoch() uint64 { return p.epoch }

// Log formats e, appends the record to the current batch and returns; it
// is the request path (a Sink). When memory and journal are full it drops
// the record or waits up to Config.Block.
func (p *Publisher) Log(e *Entry) {
	sp := p.scratch.Get().(*[]byte)
	line := p.format.AppendLine((*sp)[:0], e)
	rec := logwire.Record{Time: e.Start, Duration: e.Duration(), Status: e.Status, Bytes: e.BodyBytes, Line: line}
	if e.HasUser {
		rec.User = e.User
	}
	if r := e.Request; r != nil {
		rec.Method, rec.URL, rec.Proto = r.Method, r.RequestURI, r.Proto
		rec.Remote, _ = splitHostPort(r.RemoteAddr)
		rec.VHost = strings.ToLower(hostOnly(r.Host))
		if vs := r.Header["Referer"]; len(vs) > 0 {
			rec.Referer = vs[0]
		}
		if vs := r.Header["User-Agent"]; len(vs) > 0 {
			rec.UserAgent = vs[0]
		}
	}
	if rec.VHost == "" {
		rec.VHost = e.ServerName
	}
	p.append(&rec)
	if cap(line) <= 64<<10 {
		*sp = line[:0]
		p.scratch.Put(sp)
	}
}

func hostOnly(h string) string {
	if len(h) > 0 && h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[:i], ':') < 0 {
		return h[:i]
	}
	return h
}

func (p *Publisher) append(rec *logwire.Record) {
	size := logwire.RecordSize(rec)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || size > p.cfg.MaxBatchBytes-logwire.BatchHeaderSize-binary.MaxVarintLen64-len(p.cfg.ID) {
		p.stats.Dropped++ // after Close, or too large for any batch
		p.dropEpoch++
		return
	}
	var deadline time.Time
	for p.cur == nil || len(p.cur)-frameHeader+size > p.cfg.MaxBatchBytes {
		if p.cur != nil {
			p.sealLocked()
		}
		// startBatchLocked may wait (Config.Block) with mu released, and
		// another Log may start a batch meanwhile: check again.
		if !p.startBatchLocked(&deadline) {
			p.stats.Dropped++
			p.dropEpoch++
			return
		}
	}
	at := len(p.cur)
	p.cur = logwire.AppendRecord(p.cur, rec)
	p.stats.Records++
	p.stats.Bytes += uint64(len(p.cur) - at)
	p.nextSeq++
	p.curCount++
}

// startBatchLocked starts a batch, waiting for memory as Config.Block
// allows. It reports false when the record must be dropped; true when
// p.cur is set (by this call, or by another Log while this one waited).
// It allocates a buffer with mu released, so other Logs never wait for
// the allocator.
func (p *Publisher) startBatchLocked(deadline *time.Time) bool {
	need := int64(p.cfg.MaxBatchBytes + frameHeader)
	for {
		if p.cur != nil {
			return true
		}
		if p.closed {
			return false
		}
		if p.memBytes+need > p.cfg.MaxMemory {
			if p.cfg.Block <= 0 {
				return false
			}
			now := time.Now()
			if deadline.IsZero() {
				*deadline = now.Add(p.cfg.Block)
			}
			if !now.Before(*deadline) {
				return false
			}
			ch := p.changedLocked()
			p.mu.Unlock()
			t := time.NewTimer(deadline.Sub(now))
			select {
			case <-ch:
			case <-t.C:
			}
			t.Stop()
			p.mu.Lock()
			continue
		}
		if len(p.free) == 0 {
			p.mu.Unlock()
			buf := make([]byte, 0, need)
			p.mu.Lock()
			p.free = append(p.free, buf)
			continue
		}
		n := len(p.free)
		buf := p.free[n-1][:0]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.memBytes += need
		buf = append(buf, make([]byte, frameHeader)...)
		p.cur = logwire.AppendBatchHeader(buf, &logwire.BatchHeader{
			Publisher: p.cfg.ID, Epoch: p.epoch, FirstSeq: p.nextSeq, Dropped: p.dropEpoch,
		})
		p.curFirst = p.nextSeq
		p.curCount = 0
		return true
	}
}

// sealLocked moves the current batch to the retained list and wakes the
// flusher.
func (p *Publisher) sealLocked() {
	if p.cur == nil {
		return
	}
	if p.curCount == 0 {
		p.recycleLocked(nil, p.cur)
		p.cur = nil
		return
	}
	logwire.SetCount(p.cur[frameHeader:], p.curCount)
	p.retained = append(p.retained, &batch{
		key: streamKey{p.cfg.ID, p.epoch}, first: p.curFirst, count: p.curCount,
		size: len(p.cur) - frameHeader, buf: p.cur,
	})
	p.stats.Retained += uint64(p.curCount)
	p.cur = nil
	wake(p.kick)
	wake(p.jkick)
}

// wake signals ch (capacity 1) without blocking.
func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// recycleLocked frees the buffer of b (or buf, when b is nil). A buffer
// the flusher is reading is left to the garbage collector.
func (p *Publisher) recycleLocked(b *batch, buf []byte) {
	if b != nil {
		buf, b.buf = b.buf, nil
	}
	p.memBytes -= int64(p.cfg.MaxBatchBytes + frameHeader)
	if (b == nil || (b != p.inUse && b != p.jInUse)) && len(p.free) < 4 && cap(buf) == p.cfg.MaxBatchBytes+frameHeader {
		p.free = append(p.free, buf[:0])
	}
	p.notifyLocked()
}

// changedLocked returns a channel closed at the next progress (memory
// freed, batch sent, records acknowledged).
func (p *Publisher) changedLocked() chan struct{} {
	if p.changed == nil {
		p.changed = make(chan struct{})
	}
	return p.changed
}

func (p *Publisher) notifyLocked() {
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// flusher seals the current batch every FlushInterval and sends what is
// not sent yet. Sending waits on the bus (backpressure); journaling goes on
// meanwhile in the journaler, so that batches move to disk and memory
// frees while the bus is slow.
func (p *Publisher) flusher(ctx context.Context) {
	t := time.NewTicker(p.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
			p.mu.Lock()
			p.sealLocked()
			p.mu.Unlock()
			wake(p.jkick) // also retries a journal that was full
		}
		p.send(ctx)
	}
}

// journaler writes sealed batches to the journal.
func (p *Publisher) journaler(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.jkick:
		}
		p.writeJournal()
	}
}

// writeJournal appends the batches not yet journaled to the journal.
func (p *Publisher) writeJournal() {
	if p.j == nil {
		return
	}
	for {
		p.mu.Lock()
		if p.jPos < p.base {
			p.jPos = p.base
		}
		if p.jPos >= p.base+uint64(len(p.retained)) {
			p.mu.Unlock()
			return
		}
		b := p.retained[p.jPos-p.base]
		pos := p.jPos
		buf := b.buf
		if buf == nil { // only on disk already
			p.jPos++
			p.mu.Unlock()
			continue
		}
		p.jInUse = b
		p.mu.Unlock()

		frameBatch(buf) // sealed batches are immutable: no lock needed
		p.jmu.Lock()
		full := p.j.bytes.Load()+int64(len(buf)) > p.cfg.MaxJournal
		var seg *segment
		var off int64
		var err error
		if !full {
			seg, off, err = p.j.append(buf, b.key.epoch, b.first)
		}
		jbytes := p.j.bytes.Load()
		p.jmu.Unlock()

		p.mu.Lock()
		p.jInUse = nil
		if full || err != nil {
			if !p.journalOff {
				p.journalOff = true
				if err != nil {
					p.log.Error("journal write failed; records wait in memory", "err", err)
				} else {
					p.log.Warn("journal full; records wait in memory", "bytes", jbytes)
				}
			}
			p.mu.Unlock()
			return
		}
		if p.journalOff {
			p.journalOff = false
			p.log.Info("journal writable again", "bytes", jbytes)
		}
		if pos >= p.base && p.jPos == pos && pos-p.base < uint64(len(p.retained)) && p.retained[pos-p.base] == b {
			b.seg, b.off = seg, off
			p.jPos++
			// Once journaled, a sent batch (or any, under memory pressure)
			// lives on disk only.
			if p.sendPos > pos || p.memBytes > p.cfg.MaxMemory/2 {
				p.recycleLocked(b, nil)
			}
			p.mu.Unlock()
			continue
		}
		// Released while being written: nothing else refers to the frame.
		p.mu.Unlock()
		p.jmu.Lock()
		p.j.release(seg)
		p.jmu.Unlock()
	}
}

// send publishes the batches marked to be sent again (in order), then the
// batches from sendPos on, in order, until one fails.
func (p *Publisher) send(ctx context.Context) {
	for {
		p.mu.Lock()
		if p.sendPos < p.base {
			p.sendPos = p.base
		}
		pos, ok := p.nextRedoLocked()
		if !ok {
			if p.sendPos >= p.base+uint64(len(p.retained)) {
				p.mu.Unlock()
				return
			}
			pos = p.sendPos
		}
		b := p.retained[pos-p.base]
		data := b.buf
		seg, off := b.seg, b.off
		p.inUse = b
		p.mu.Unlock()

		var msg []byte
		if data != nil {
			msg = data[frameHeader:]
		} else {
			p.jmu.Lock()
			var err error
			msg, err = p.j.read(seg, off, b.size)
			p.jmu.Unlock()
			if err != nil {
				p.mu.Lock()
				p.inUse = nil
				gone := pos < p.base // released meanwhile: its segment may be gone
				p.mu.Unlock()
				if gone {
					continue
				}
				p.log.Error("journal read failed", "err", err)
				return
			}
		}
		started := time.Now()
		sctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
		err := p.b.Send(sctx, p.group, bus.FIFO, msg)
		cancel()
		p.mu.Lock()
		p.inUse = nil
		if err != nil {
			p.stats.SendErrors++
			if p.stats.SendErrors == 1 || p.stats.SendErrors%1000 == 0 {
				p.log.Warn("send failed; will retry", "err", err, "failures", p.stats.SendErrors)
			}
			p.mu.Unlock()
			if ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(p.cfg.FlushInterval):
				}
			}
			return
		}
		p.stats.Batches++
		b.sent = started
		b.redo = false
		if pos < p.sentHigh {
			p.stats.Replayed += uint64(b.count)
		} else {
			p.sentHigh = pos + 1
		}
		if p.sendPos == pos {
			p.sendPos++
		}
		var segs []*segment
		if p.cfg.AckQuorum < 0 {
			segs = p.releaseLocked()
		} else if b.buf != nil && b.seg != nil {
			p.recycleLocked(b, nil)
		}
		p.notifyLocked()
		p.mu.Unlock()
		p.releaseSegments(segs)
	}
}

// nextRedoLocked returns the lowest position below sendPos marked to be
// sent again.
func (p *Publisher) nextRedoLocked() (uint64, bool) {
	p.redoPos = max(p.redoPos, p.base)
	for p.redoPos < p.sendPos {
		if p.retained[p.redoPos-p.base].redo {
			return p.redoPos, true
		}
		p.redoPos++
	}
	return 0, false
}

// redoLocked marks the batches of stream k already sent (below sendPos)
// that hold records in [from, to) and that keep accepts to be sent again;
// to zero means no upper bound. It reports whether it marked any.
func (p *Publisher) redoLocked(k streamKey, from, to uint64, keep func(*batch) bool) bool {
	marked := false
	for pos := p.base; pos < p.sendPos; pos++ {
		b := p.retained[pos-p.base]
		if b.key != k || b.first+uint64(b.count) <= from || (to != 0 && b.first >= to) || b.redo {
			continue
		}
		if !keep(b) {
			continue
		}
		b.redo = true
		p.redoPos = min(p.redoPos, pos)
		marked = true
	}
	return marked
}

// releaseLocked forgets the retained batches at the front that are
// acknowledged, and returns the journal segments to release.
func (p *Publisher) releaseLocked() []*segment {
	var segs []*segment
	n := 0
	for _, b := range p.retained {
		if p.cfg.AckQuorum >= 0 && !p.ackedLocked(b) {
			break
		}
		if p.cfg.AckQuorum < 0 && p.sendPos <= p.base+uint64(n) {
			break
		}
		if b.buf != nil {
			p.recycleLocked(b, nil)
		}
		if b.seg != nil {
			segs = append(segs, b.seg)
		}
		p.stats.Acked += uint64(b.count)
		p.stats.Retained -= uint64(b.count)
		n++
	}
	if n > 0 {
		clear(p.retained[:n])
		p.retained = p.retained[n:]
		p.base += uint64(n)
		p.notifyLocked()
	}
	return segs
}

func (p *Publisher) ackedLocked(b *batch) bool {
	end := b.first + uint64(b.count)
	n := 0
	for _, m := range p.acks {
		if m[b.key].next >= end {
			n++
		}
	}
	return n >= p.cfg.AckQuorum
}

func (p *Publisher) releaseSegments(segs []*segment) {
	if len(segs) == 0 || p.j == nil {
		return
	}
	p.jmu.Lock()
	for _, s := range segs {
		p.j.release(s)
	}
	p.jmu.Unlock()
}

// maxLoggers bounds the loggers whose acks a Publisher remembers.
const maxLoggers = 1024

func (p *Publisher) receiveAcks(ctx context.Context) {
	self := p.b.Self()
	for {
		ev, err := p.ack.Recv(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("ack group closed", "err", err)
			}
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			// A member joining the ack group may be a logger back from a
			// crash or a partition. It sends an AckSync; what it lacks is
			// at most what was sent before this view (Sends started from
			// now on reach it), so remember when it joined.
			now := time.Now()
			p.mu.Lock()
			for m := range p.joined {
				if !slices.Contains(ev.Members, m) {
					delete(p.joined, m)
				}
			}
			for _, m := range ev.Joined {
				if m != self {
					p.joined[m] = now
				}
			}
			p.mu.Unlock()
		case *bus.Message:
			a, err := logwire.DecodeAck(ev.Data)
			if err != nil {
				p.mu.Lock()
				p.stats.BadMessages++
				p.mu.Unlock()
				continue
			}
			p.handleAck(a, ev.Sender)
		}
	}
}

// handleAck records a logger's acknowledgements, releases what the quorum
// acknowledged and marks what the logger asks for (or evidently lacks) to
// be sent again.
//
// A logger misses batches only while it is out of the views: what it lacks
// was sent before it (re)joined the ack group. A batch whose last Send
// started after that is on its way to it, and sending it again would only
// make duplicates; it is sent again only once the logger made no progress
// on the stream for ResendAfter while the batch was sent longer ago than
// that (it was lost after all).
func (p *Publisher) handleAck(a *logwire.Ack, sender bus.MemberID) {
	p.mu.Lock()
	redo := false
	now := time.Now()
	joinedAt, joinKnown := p.joined[sender]
	lostAtJoin := func(b *batch) bool { return joinKnown && b.sent.Before(joinedAt) }
	old := func(b *batch) bool { return !b.sent.IsZero() && now.Sub(b.sent) >= p.cfg.ResendAfter }
	var m map[streamKey]ackState
	if a.Flags&logwire.AckDurable != 0 && p.cfg.AckQuorum > 0 {
		m = p.acks[a.Logger]
		if m == nil && len(p.acks) < maxLoggers {
			m = make(map[streamKey]ackState)
			p.acks[a.Logger] = m
		}
	}
	bounded := make(map[streamKey]bool)
	for _, e := range a.Entries {
		// Acks name every publisher's streams: keep only ours.
		k := streamKey{e.Publisher, e.Epoch}
		if !p.streams[k] {
			continue
		}
		// stuck: the logger repeats this position without progress for
		// ResendAfter.
		stuck := m == nil
		if m != nil {
			prev, seen := m[k]
			if !seen || e.Next > prev.next {
				m[k] = ackState{next: e.Next, advanced: now}
			}
			stuck = seen && e.Next == prev.next && now.Sub(prev.advanced) >= p.cfg.ResendAfter
		}
		switch {
		case e.Resend:
			// A hole: send the batches holding [Next, End).
			bounded[k] = e.End != 0
			keep := func(b *batch) bool { return lostAtJoin(b) || (stuck && old(b)) }
			if p.redoLocked(k, e.Next, e.End, keep) {
				redo = true
			}
		case stuck && m != nil:
			// The same ack again, without progress for ResendAfter, while
			// batches past it were sent longer ago than that: the logger
			// lost their tail (nothing later reveals the gap to it). A
			// logger that is merely behind makes progress.
			if p.redoLocked(k, e.Next, 0, old) {
				p.stats.Stalled++
				redo = true
			}
		}
	}
	if a.Flags&logwire.AckSync != 0 {
		// The logger lacks, of what was sent before it joined, the records
		// at and past Next of the streams it lists (up to End for those
		// with a hole, handled above) and all of the others.
		keep := func(b *batch) bool { return !joinKnown || lostAtJoin(b) }
		listed := make(map[streamKey]uint64, len(a.Entries))
		for _, e := range a.Entries {
			listed[streamKey{e.Publisher, e.Epoch}] = e.Next
		}
		for k := range p.streams {
			if !bounded[k] && p.redoLocked(k, listed[k], 0, keep) {
				redo = true
			}
		}
	}
	segs := p.releaseLocked()
	p.mu.Unlock()
	p.releaseSegments(segs)
	if redo {
		wake(p.kick)
	}
}

// Flush seals the current batch and wakes the flusher; it does not wait.
func (p *Publisher) Flush() {
	p.mu.Lock()
	p.sealLocked()
	p.mu.Unlock()
	wake(p.kick)
}

// Stats returns a snapshot of the counters.
func (p *Publisher) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.MemoryBytes = p.memBytes
	if p.j != nil {
		s.JournalBytes = p.j.bytes.Load()
	}
	return s
}

// Shutdown seals the current batch and waits until every record is sent
// and (with a quorum) acknowledged, or ctx ends, then closes the
// Publisher. Records not acknowledged stay in the journal for the next
// start; Shutdown then returns an error wrapping ErrUnacknowledged and
// ctx.Err().
func (p *Publisher) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.sealLocked()
	p.mu.Unlock()
	for {
		p.mu.Lock()
		done := len(p.retained) == 0 || (p.cfg.AckQuorum < 0 && p.sendPos >= p.base+uint64(len(p.retained)))
		left := p.stats.Retained
		ch := p.changedLocked()
		p.mu.Unlock()
		if done {
			return p.Close()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			err := p.Close()
			return errors.Join(fmt.Errorf("%w: %d left: %w", ErrUnacknowledged, left, ctx.Err()), err)
		}
	}
}

// Close stops the Publisher at once: it writes the records still only in
// memory to the journal (if any), leaves the ack group and waits for its
// goroutines. It is idempotent. Later Log calls drop their records.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.sealLocked()
		p.closed = true
		p.notifyLocked()
		p.mu.Unlock()
		p.cancel()
		p.wg.Wait()
		p.writeJournal()
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.SendTimeout)
		err := p.ack.Leave(ctx)
		cancel()
		if errors.Is(err, bus.ErrClosed) {
			err = nil
		}
		if p.j != nil {
			p.jmu.Lock()
			err = errors.Join(err, p.j.close())
			p.jmu.Unlock()
		}
		p.cerr = err
	})
	return p.cerr
}
