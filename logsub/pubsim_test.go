package logsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/logwire"
)

// simPub is a publisher that follows the logwire protocol: it numbers its
// records, retains every one until a durable ack covers it (its "journal"
// survives its restarts), and retransmits on Resend, AckSync and when a
// member joins the ack group.
type simPub struct {
	t     testing.TB
	id    string
	group string

	mu       sync.Mutex
	b        bus.Bus
	ackG     bus.Group
	epoch    uint64
	seq      uint64
	retained map[uint64][]simRec // by epoch, in seq order
	created  []simRec
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

type simRec struct {
	epoch, seq uint64
	line       string
}

func (r simRec) key(pub string) string { return fmt.Sprintf("%s/%d/%d", pub, r.epoch, r.seq) }

func simLine(pub string, epoch, seq uint64) string {
	return fmt.Sprintf(`127.0.0.1 - - [02/Jan/2000:12:00:00 +0000] "GET /%s/e%d/s%d HTTP/1.1" 200 %d "-" "sim"`, pub, epoch, seq, seq%5000)
}

func newSimPub(t testing.TB, id, group string) *simPub {
	return &simPub{t: t, id: id, group: group, retained: make(map[uint64][]simRec)}
}

// start connects the publisher (again) on b with a new epoch.
func (p *simPub) start(b bus.Bus) {
	ctx, cancel := context.WithCancel(context.Background())
	g, err := b.Join(ctx, p.group+".ack")
	if err != nil {
		p.t.Fatalf("publisher join: %v", err)
	}
	p.mu.Lock()
	p.b, p.ackG, p.cancel = b, g, cancel
	p.epoch++
	p.seq = 0
	p.mu.Unlock()
	p.wg.Go(func() { p.ackLoop(ctx, g) })
}

// crash stops the publisher; its retained records stay (a journal).
func (p *simPub) crash() {
	p.cancel()
	p.wg.Wait()
}

// publish creates n records and sends them as one batch.
func (p *simPub) publish(ctx context.Context, n int) {
	p.mu.Lock()
	var recs []simRec
	for range n {
		p.seq++
		r := simRec{epoch: p.epoch, seq: p.seq, line: simLine(p.id, p.epoch, p.seq)}
		recs = append(recs, r)
	}
	p.retained[p.epoch] = append(p.retained[p.epoch], recs...)
	p.created = append(p.created, recs...)
	b := p.b
	p.mu.Unlock()
	p.send(ctx, b, recs)
}

func (p *simPub) send(ctx context.Context, b bus.Bus, recs []simRec) {
	if len(recs) == 0 {
		return
	}
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: p.id, Epoch: recs[0].epoch, FirstSeq: recs[0].seq, Count: uint32(len(recs))})
	for _, r := range recs {
		msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, Bytes: int64(r.seq % 5000), VHost: "v", Method: "GET", URL: "/", Line: []byte(r.line)})
	}
	// A failed send (bus down, partition) is repaired by retransmission.
	_ = b.Send(ctx, p.group, bus.FIFO, msg)
}

func (p *simPub) ackLoop(ctx context.Context, g bus.Group) {
	for {
		ev, err := g.Recv(ctx)
		if err != nil {
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			if len(ev.Joined) > 0 {
				p.resend(ctx, nil, true)
			}
		case *bus.Message:
			a, err := logwire.DecodeAck(ev.Data)
			if err != nil {
				p.t.Errorf("bad ack: %v", err)
				return
			}
			if a.Flags&logwire.AckDurable == 0 {
				continue
			}
			from := make(map[uint64]uint64)
			resend := false
			p.mu.Lock()
			for _, e := range a.Entries {
				if e.Publisher != p.id {
					continue
				}
				rs := p.retained[e.Epoch]
				i := 0
				for i < len(rs) && rs[i].seq < e.Next {
					i++
				}
				p.retained[e.Epoch] = rs[i:]
				from[e.Epoch] = e.Next
				resend = resend || e.Resend
			}
			p.mu.Unlock()
			if a.Flags&logwire.AckSync != 0 {
				p.resend(ctx, nil, true)
			} else if resend {
				p.resend(ctx, from, false)
			}
		}
	}
}

// resend retransmits retained records: all of them, or those of the epochs
// in from starting at the given sequence numbers.
func (p *simPub) resend(ctx context.Context, from map[uint64]uint64, all bool) {
	p.mu.Lock()
	var batches [][]simRec
	for ep, rs := range p.retained {
		start, ok := from[ep]
		if !all && !ok {
			continue
		}
		var out []simRec
		for _, r := range rs {
			if r.seq >= start {
				out = append(out, r)
			}
		}
		for len(out) > 0 {
			n := min(len(out), 100)
			batches = append(batches, out[:n])
			out = out[n:]
		}
	}
	b := p.b
	p.mu.Unlock()
	for _, bt := range batches {
		p.send(ctx, b, bt)
	}
}

func (p *simPub) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, rs := range p.retained {
		n += len(rs)
	}
	return n
}

// errUnacked is returned by audit helpers.
var errUnacked = errors.New("records still unacknowledged")
