package inproc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
)

func member(t testing.TB, h *inproc.Hub, name string) *inproc.Bus {
	t.Helper()
	b, err := h.NewMember(name)
	require.NoError(t, err)
	return b
}

func join(t testing.TB, b bus.Bus, group string) bus.Group {
	t.Helper()
	g, err := b.Join(t.Context(), group)
	require.NoError(t, err)
	return g
}

func recvView(t testing.TB, g bus.Group) *bus.View {
	t.Helper()
	ev, err := g.Recv(t.Context())
	require.NoError(t, err)
	v, ok := ev.(*bus.View)
	require.Truef(t, ok, "want a view, got %v", ev)
	return v
}

func recvMsg(t testing.TB, g bus.Group) *bus.Message {
	t.Helper()
	ev, err := g.Recv(t.Context())
	require.NoError(t, err)
	m, ok := ev.(*bus.Message)
	require.Truef(t, ok, "want a message, got %v", ev)
	return m
}

func recvMsgAfterView(t testing.TB, g bus.Group) *bus.Message {
	t.Helper()
	for {
		ev, err := g.Recv(t.Context())
		require.NoError(t, err)
		if m, ok := ev.(*bus.Message); ok {
			return m
		}
	}
}

func TestViewsAndMessages(t *testing.T) {
	h := inproc.New(inproc.Config{})
	defer h.Close()
	a, b, c := member(t, h, "a"), member(t, h, "b"), member(t, h, "c")
	ga := join(t, a, "g")
	v := recvView(t, ga)
	assert.Equal(t, []bus.MemberID{a.Self()}, v.Members)
	assert.Empty(t, v.Previous)
	assert.True(t, v.IsLeader())

	gb := join(t, b, "g")
	va, vb := recvView(t, ga), recvView(t, gb)
	assert.Equal(t, va.ID, vb.ID)
	assert.Equal(t, []bus.MemberID{a.Self(), b.Self()}, va.Members)
	assert.Equal(t, []bus.ViewID{v.ID}, va.Previous)
	assert.Equal(t, []bus.MemberID{b.Self()}, va.Joined)
	assert.Equal(t, 1, vb.Self)
	assert.Greater(t, va.ID.Seq, v.ID.Seq)

	// c is not a member and sends anyway (open group).
	require.NoError(t, c.Send(t.Context(), "g", bus.Agreed, []byte("hello")))
	ma, mb := recvMsg(t, ga), recvMsg(t, gb)
	assert.Equal(t, "hello", string(ma.Data))
	assert.Equal(t, c.Self(), mb.Sender)
	assert.Equal(t, va.ID, ma.View)

	require.NoError(t, gb.Leave(t.Context()))
	_, err := gb.Recv(t.Context())
	assert.ErrorIs(t, err, bus.ErrClosed)
	v3 := recvView(t, ga)
	assert.Equal(t, []bus.MemberID{b.Self()}, v3.Left)

	require.NoError(t, a.Close())
	require.NoError(t, a.Close())
	assert.ErrorIs(t, a.Send(t.Context(), "g", bus.FIFO, nil), bus.ErrClosed)
	_, err = a.Join(t.Context(), "x")
	assert.ErrorIs(t, err, bus.ErrClosed)
}

func TestBadInput(t *testing.T) {
	h := inproc.New(inproc.Config{MaxMessageSize: 10})
	defer h.Close()
	a := member(t, h, "a")
	join(t, a, "g")
	_, err := a.Join(t.Context(), "g")
	assert.ErrorIs(t, err, bus.ErrAlreadyJoined)
	_, err = a.Join(t.Context(), "bad name")
	assert.ErrorIs(t, err, bus.ErrBadGroup)
	assert.ErrorIs(t, a.Send(t.Context(), "g", bus.FIFO, make([]byte, 11)), bus.ErrTooLarge)
	assert.NoError(t, a.Send(t.Context(), "g", bus.FIFO, make([]byte, 10)))
	assert.ErrorIs(t, a.Send(t.Context(), "g", bus.Level(42), nil), bus.ErrBadLevel)
	_, err = h.NewMember("")
	assert.Error(t, err)
}

func TestPartitionAndHeal(t *testing.T) {
	h := inproc.New(inproc.Config{})
	defer h.Close()
	bs := make([]*inproc.Bus, 4)
	gs := make([]bus.Group, 4)
	for i := range bs {
		bs[i] = member(t, h, fmt.Sprint("m", i))
		gs[i] = join(t, bs[i], "g")
	}
	// Drain join views; keep the last.
	var last bus.ViewID
	for i := range gs {
		for j := i; j < len(gs); j++ {
			last = recvView(t, gs[i]).ID
		}
	}
	h.Partition(bs[:2], bs[2:])
	left, right := recvView(t, gs[0]), recvView(t, gs[2])
	assert.Equal(t, left.ID, recvView(t, gs[1]).ID)
	assert.Equal(t, right.ID, recvView(t, gs[3]).ID)
	assert.NotEqual(t, left.ID, right.ID)
	assert.Equal(t, []bus.ViewID{last}, left.Previous)
	assert.Len(t, left.Members, 2)
	assert.Len(t, left.Left, 2)

	// Messages stay on their side.
	require.NoError(t, bs[0].Send(t.Context(), "g", bus.Agreed, []byte("left")))
	require.NoError(t, bs[3].Send(t.Context(), "g", bus.Agreed, []byte("right")))
	for i, want := range []string{"left", "left", "right", "right"} {
		assert.Equal(t, want, string(recvMsg(t, gs[i]).Data))
	}

	h.Heal()
	var merged []*bus.View
	for _, g := range gs {
		merged = append(merged, recvView(t, g))
	}
	for _, v := range merged {
		assert.Equal(t, merged[0].ID, v.ID)
		assert.Equal(t, merged[0].Members, v.Members)
		assert.True(t, v.IsMerge())
		assert.ElementsMatch(t, []bus.ViewID{left.ID, right.ID}, v.Previous)
		assert.Len(t, v.Joined, 2)
	}
	require.NoError(t, bs[3].Send(t.Context(), "g", bus.Agreed, []byte("all")))
	for _, g := range gs {
		assert.Equal(t, "all", string(recvMsg(t, g).Data))
	}
}

func TestCrash(t *testing.T) {
	h := inproc.New(inproc.Config{})
	defer h.Close()
	a, b := member(t, h, "a"), member(t, h, "b")
	ga, gb := join(t, a, "g"), join(t, b, "g")
	recvView(t, ga)
	recvView(t, ga)
	recvView(t, gb)
	h.Crash(a)
	v := recvView(t, gb)
	assert.Equal(t, []bus.MemberID{a.Self()}, v.Left)
	assert.True(t, v.IsLeader())
	_, err := ga.Recv(t.Context())
	assert.ErrorIs(t, err, bus.ErrClosed)
	assert.ErrorIs(t, a.Send(t.Context(), "g", bus.FIFO, nil), bus.ErrClosed)

	// Same name again: a new incarnation.
	a2 := member(t, h, "a")
	assert.NotEqual(t, a.Self(), a2.Self())
	join(t, a2, "g")
	v = recvView(t, gb)
	assert.Equal(t, []bus.MemberID{a2.Self()}, v.Joined)
}

func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := inproc.New(inproc.Config{QueueLen: 4})
		defer h.Close()
		a, b, c := member(t, h, "a"), member(t, h, "b"), member(t, h, "c")
		join(t, a, "g") // a never reads
		gb := join(t, b, "g")
		for range 4 {
			require.NoError(t, c.Send(t.Context(), "g", bus.FIFO, []byte("x")))
		}
		// Unreliable never blocks: dropped for the full receivers.
		require.NoError(t, c.Send(t.Context(), "g", bus.Unreliable, []byte("u")))
		assert.Equal(t, uint64(2), h.Stats().Dropped)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := c.Send(ctx, "g", bus.Reliable, []byte("blocked"))
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		// b drains; a Send waiting for a's full queue proceeds when a leaves.
		recvView(t, gb)
		for range 4 {
			assert.Equal(t, "x", string(recvMsg(t, gb).Data))
		}
		done := make(chan error)
		go func() { done <- c.Send(t.Context(), "g", bus.Agreed, []byte("later")) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Send returned %v while a's queue was full", err)
		default:
		}
		require.NoError(t, a.Close())
		require.NoError(t, <-done)
		assert.Equal(t, []bus.MemberID{a.Self()}, recvView(t, gb).Left)
		assert.Equal(t, "later", string(recvMsg(t, gb).Data))
	})
}

func TestRecvUnblocksOnSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := inproc.New(inproc.Config{})
		a := member(t, h, "a")
		g := join(t, a, "g")
		recvView(t, g)
		got := make(chan string)
		go func() {
			ev, err := g.Recv(t.Context())
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(ev.(*bus.Message).Data)
		}()
		synctest.Wait()
		require.NoError(t, a.Send(t.Context(), "g", bus.FIFO, []byte("wake")))
		assert.Equal(t, "wake", <-got)

		// Recv honours ctx.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := g.Recv(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		// Close wakes a blocked Recv.
		go func() {
			_, err := g.Recv(t.Context())
			got <- fmt.Sprint(errors.Is(err, bus.ErrClosed))
		}()
		synctest.Wait()
		require.NoError(t, h.Close())
		assert.Equal(t, "true", <-got)
	})
}

func TestDropRate(t *testing.T) {
	h := inproc.New(inproc.Config{DropRate: 0.5, Seed: 7})
	defer h.Close()
	a := member(t, h, "a")
	g := join(t, a, "g")
	recvView(t, g)
	for range 200 {
		require.NoError(t, a.Send(t.Context(), "g", bus.Unreliable, []byte("u")))
	}
	require.NoError(t, a.Send(t.Context(), "g", bus.FIFO, []byte("end")))
	n := 0
	for {
		m := recvMsg(t, g)
		if string(m.Data) == "end" {
			break
		}
		n++
	}
	assert.InDelta(t, 100, n, 40, "about half of 200 Unreliable messages should arrive")
	assert.Equal(t, uint64(200-n), h.Stats().Dropped)
}

// BenchmarkSend measures throughput with 3 members, each draining its
// queue, and 1 or 3 senders of 200-byte messages.
func BenchmarkSend(b *testing.B) {
	for _, level := range []bus.Level{bus.FIFO, bus.Agreed} {
		for _, senders := range []int{1, 3} {
			b.Run(fmt.Sprintf("%s/senders=%d", level, senders), func(b *testing.B) {
				benchSend(b, level, senders)
			})
		}
	}
}

func benchSend(b *testing.B, level bus.Level, senders int) {
	h := inproc.New(inproc.Config{})
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	members := make([]*inproc.Bus, 3)
	var wg sync.WaitGroup
	for i := range members {
		members[i] = member(b, h, fmt.Sprint("m", i))
		g := join(b, members[i], "bench")
		wg.Go(func() {
			for {
				if _, err := g.Recv(ctx); err != nil {
					return
				}
			}
		})
	}
	payload := make([]byte, 200)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var sent sync.WaitGroup
	per := b.N / senders
	for s := range senders {
		sent.Go(func() {
			for range per {
				if err := members[s].Send(ctx, "bench", level, payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	sent.Wait()
	b.ReportMetric(float64(per*senders)/time.Since(start).Seconds(), "msgs/s")
	cancel()
	wg.Wait()
}
