package cluster

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fifoChecker records per-sender sequence numbers and reports gaps,
// duplicates and reordering.
type fifoChecker struct {
	next map[bus.MemberID]uint64
	errs []string
}

func (c *fifoChecker) add(m *bus.Message) {
	if c.next == nil {
		c.next = make(map[bus.MemberID]uint64)
	}
	seq := binary.BigEndian.Uint64(m.Data)
	if want := c.next[m.Sender]; seq != want && len(c.errs) < 10 {
		c.errs = append(c.errs, m.Sender.String()+": got "+itoa(seq)+" want "+itoa(want))
	}
	c.next[m.Sender] = seq + 1
}

func itoa(v uint64) string { return string(binary.AppendUvarint(nil, v)) }

func payload(seq uint64, size int) []byte {
	p := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(p, seq)
	return p
}

// checkFIFO receives want messages at every group handle concurrently and
// checks per-sender order without gaps or duplicates.
func checkFIFO(t *testing.T, gs []bus.Group, want int) []*fifoChecker {
	t.Helper()
	out := make([]*fifoChecker, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		c := &fifoChecker{}
		out[i] = c
		wg.Go(func() {
			ctx := ctxT(t, 30*time.Second)
			for got := 0; got < want; {
				ev, err := g.Recv(ctx)
				if err != nil {
					t.Errorf("member %d after %d messages: %v", i, got, err)
					return
				}
				if m, ok := ev.(*bus.Message); ok {
					c.add(m)
					got++
				}
			}
		})
	}
	wg.Wait()
	for i, c := range out {
		assert.Empty(t, c.errs, "member %d", i)
	}
	return out
}

func TestFIFOThreeMembers(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 3, nil)
	gs := joinAll(t, bs, "g")
	const n = 2000
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() {
			for i := range uint64(n) {
				if err := g.Send(t.Context(), bus.FIFO, payload(i, 200)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	checkFIFO(t, gs, 3*n)
	wg.Wait()
	for _, b := range bs {
		st := b.Stats()
		assert.Equal(t, 3, st.Members)
		assert.Equal(t, bs[0].Self(), st.Coordinator)
		assert.Equal(t, 1, st.Joined)
		assert.Equal(t, uint64(n), st.Levels[bus.FIFO].Sent)
		assert.Equal(t, uint64(3*n), st.Levels[bus.FIFO].Delivered)
		assert.Zero(t, st.BadFrames)
		require.Len(t, st.Links, 2)
		for _, l := range st.Links {
			assert.True(t, l.Connected, "link to %s", l.Peer)
		}
	}
	for _, b := range bs {
		require.NoError(t, b.Close())
		require.NoError(t, b.Close(), "second Close")
	}
	_, err := bs[0].Join(t.Context(), "h")
	assert.ErrorIs(t, err, bus.ErrClosed)
}
