package logpub

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testLogger is a logger written against the wire protocol: it receives
// batches on the log group, keeps each stream's records in order without
// duplicates, and acknowledges on the ack group.
type testLogger struct {
	tb      testing.TB
	name    string
	b       *inproc.Bus
	g       bus.Group
	next    map[[2]string]uint64 // (publisher, epoch) -> next expected seq
	lines   []string
	batches int
	dups    int
	gaps    int
}

func newTestLogger(tb testing.TB, hub *inproc.Hub, name string) *testLogger {
	tb.Helper()
	b, err := hub.NewMember(name)
	require.NoError(tb, err)
	g, err := b.Join(tb.Context(), "logs")
	require.NoError(tb, err)
	_, err = b.Join(tb.Context(), "logs.ack")
	require.NoError(tb, err)
	return &testLogger{tb: tb, name: name, b: b, g: g, next: map[[2]string]uint64{}}
}

func key(pub string, epoch uint64) [2]string { return [2]string{pub, fmt.Sprint(epoch)} }

// receive reads events until it holds n lines in total, for at most a
// minute (of fake time, inside synctest).
func (l *testLogger) receive(ctx context.Context, n int) {
	l.tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for len(l.lines) < n {
		ev, err := l.g.Recv(ctx)
		require.NoError(l.tb, err, "logger %s has %d of %d lines", l.name, len(l.lines), n)
		m, ok := ev.(*bus.Message)
		if !ok {
			continue
		}
		bt, err := logwire.DecodeBatch(m.Data)
		require.NoError(l.tb, err)
		l.batches++
		k := key(bt.Publisher, bt.Epoch)
		if l.next[k] == 0 {
			l.next[k] = 1
		}
		for _, r := range bt.Records {
			switch {
			case r.Seq < l.next[k]:
				l.dups++
			case r.Seq > l.next[k]:
				l.gaps++
			default:
				l.lines = append(l.lines, string(r.Line))
				l.next[k]++
			}
		}
	}
}

func (l *testLogger) ack(flags uint8, resend bool) {
	l.tb.Helper()
	a := &logwire.Ack{Logger: l.name, Flags: flags}
	for k, next := range l.next {
		var epoch uint64
		fmt.Sscan(k[1], &epoch)
		a.Entries = append(a.Entries, logwire.AckEntry{Publisher: k[0], Epoch: epoch, Next: next, Resend: resend})
	}
	require.NoError(l.tb, l.b.Send(l.tb.Context(), "logs.ack", bus.FIFO, logwire.AppendAck(nil, a)))
}

// sync sends an AckSync, as a logger does when it starts and when it sees
// members join its groups.
func (l *testLogger) sync() {
	l.tb.Helper()
	synctest.Wait() // the views are delivered first
	l.ack(logwire.AckDurable|logwire.AckSync, false)
}

func logN(p *Publisher, from, n int) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := from; i < from+n; i++ {
		r := httptest.NewRequest("GET", fmt.Sprintf("/page/%d", i), nil)
		p.Log(&Entry{Request: r, Status: 200, BodyBytes: int64(i), Start: start, End: start})
	}
}

func wantLines(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf(`192.0.2.1 - - [01/Jan/2024:00:00:00 +0000] "GET /page/%d HTTP/1.1" 200 %s`, i, clfBytes(i)))
	}
	return out
}

func clfBytes(i int) string {
	if i == 0 {
		return "-"
	}
	return fmt.Sprint(i)
}

var testFormat = MustCompile(CommonFormat)

func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond) // fake time inside synctest
	}
	tb.Fatalf("timed out waiting for %s", what)
}

func TestPublisherDeliversAndReleases(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 500)
		l.receive(t.Context(), 500)
		assert.Equal(t, wantLines(0, 500), l.lines)
		assert.Zero(t, l.gaps)
		assert.Greater(t, l.batches, 10, "4 KiB batches")

		st := p.Stats()
		assert.Equal(t, uint64(500), st.Records)
		assert.Equal(t, uint64(500), st.Retained, "nothing released before a durable ack")
		l.ack(0, false)
		synctest.Wait()
		assert.Equal(t, uint64(500), p.Stats().Retained, "a non-durable ack releases nothing")
		l.ack(logwire.AckDurable, false)
		waitFor(t, "release", func() bool { return p.Stats().Retained == 0 })
		st = p.Stats()
		assert.Equal(t, uint64(500), st.Acked)
		assert.Zero(t, st.Dropped)
		assert.Zero(t, st.MemoryBytes)

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.NoError(t, p.Shutdown(ctx))
		assert.ErrorIs(t, p.Shutdown(ctx), ErrClosed)
		require.NoError(t, p.Close(), "Close after Shutdown is a no-op")
	})
}

func TestPublisherResendsOnRequest(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 100)
		l.receive(t.Context(), 100)
		// The logger lost everything after record 40, although it stayed
		// in the views (so those batches should have reached it).
		l.lines = l.lines[:40]
		for k := range l.next {
			l.next[k] = 41
		}
		l.ack(logwire.AckDurable, true)
		synctest.Wait()
		assert.Zero(t, p.Stats().Replayed, "sent since the logger joined: taken for on their way")
		// Asked again without progress for ResendAfter: they were lost.
		time.Sleep(2 * time.Second)
		l.ack(logwire.AckDurable, true)
		l.receive(t.Context(), 100)
		assert.Equal(t, wantLines(0, 100), l.lines)
		assert.Positive(t, l.dups, "batches are resent whole")
		assert.Positive(t, p.Stats().Replayed)
	})
}

// TestPublisherResendsOnlyHole checks that a Resend with End gets the
// batches holding the hole's records (sent while the logger was away) and
// nothing past it.
func TestPublisherResendsOnlyHole(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 1024})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 40)
		l.receive(t.Context(), 40)
		hub.Partition([]*inproc.Bus{l.b})
		logN(p, 40, 20) // records 41-60: lost for the logger
		time.Sleep(time.Second)
		hub.Heal()
		synctest.Wait()
		logN(p, 60, 140)
		recvSeqs(t, l.g, 61, 200)
		// The logger holds 1-40 and 61-200.
		a := &logwire.Ack{Logger: l.name, Flags: logwire.AckDurable, Entries: []logwire.AckEntry{
			{Publisher: "web1", Epoch: p.Epoch(), Next: 41, Resend: true, End: 61},
		}}
		require.NoError(t, l.b.Send(t.Context(), "logs.ack", bus.FIFO, logwire.AppendAck(nil, a)))
		var got []uint64
		for !slices.Contains(got, 60) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			ev, err := l.g.Recv(ctx)
			cancel()
			require.NoError(t, err)
			m, ok := ev.(*bus.Message)
			if !ok {
				continue
			}
			bt, err := logwire.DecodeBatch(m.Data)
			require.NoError(t, err)
			require.Less(t, bt.FirstSeq, uint64(61), "a batch past the hole")
			require.Greater(t, bt.FirstSeq+uint64(bt.Count), uint64(41), "a batch before the hole")
			for _, r := range bt.Records {
				got = append(got, r.Seq)
			}
		}
		for seq := uint64(41); seq <= 60; seq++ {
			assert.Contains(t, got, seq)
		}
		synctest.Wait()
		assert.Equal(t, uint64(len(got)), p.Stats().Replayed)
		assert.Len(t, got, 20, "records 41-60 only")
	})
}

// TestPublisherSyncSendsOnlyWhatPrecedesJoin checks that an AckSync gets
// the batches a logger missed while it was away, not those sent since it
// joined again (those reach it).
func TestPublisherSyncSendsOnlyWhatPrecedesJoin(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 1024})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 50)
		l.receive(t.Context(), 50)
		hub.Partition([]*inproc.Bus{pb}, []*inproc.Bus{l.b})
		logN(p, 50, 50) // lost for the logger
		time.Sleep(time.Second)
		hub.Heal()
		synctest.Wait()
		logN(p, 100, 50) // sent after the logger joined again: it gets them
		seqs := recvSeqs(t, l.g, 101, 150)
		assert.Equal(t, uint64(101), slices.Min(seqs))
		l.ack(logwire.AckDurable|logwire.AckSync, false) // it holds 1-50
		seqs = recvSeqs(t, l.g, 51, 100)
		assert.Equal(t, uint64(51), slices.Min(seqs))
		assert.Equal(t, uint64(100), slices.Max(seqs), "records 51-100 only")
		synctest.Wait()
		assert.Equal(t, uint64(50), p.Stats().Replayed)
	})
}

// recvSeqs receives batches until it has seen every sequence number from
// lo to hi, and returns all it saw.
func recvSeqs(tb testing.TB, g bus.Group, lo, hi uint64) []uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	var seqs []uint64
	have := map[uint64]bool{}
	for missing := hi - lo + 1; missing > 0; {
		ev, err := g.Recv(ctx)
		require.NoError(tb, err, "%d of %d-%d missing", missing, lo, hi)
		m, ok := ev.(*bus.Message)
		if !ok {
			continue
		}
		bt, err := logwire.DecodeBatch(m.Data)
		require.NoError(tb, err)
		for _, r := range bt.Records {
			seqs = append(seqs, r.Seq)
			if r.Seq >= lo && r.Seq <= hi && !have[r.Seq] {
				have[r.Seq] = true
				missing--
			}
		}
	}
	return seqs
}

// TestPublisherResendsLostTail checks the repair of a lost tail: a logger
// repeating an ack short of what was sent gets the rest again, but only
// once those batches were sent ResendAfter ago (a logger that is merely
// behind repeats its ack too, and resending to it would feed its backlog).
func TestPublisherResendsLostTail(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, ResendAfter: time.Second})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 100)
		l.receive(t.Context(), 100)
		// The logger lost everything after record 40 and sees no gap.
		l.lines = l.lines[:40]
		for k := range l.next {
			l.next[k] = 41
		}
		l.ack(logwire.AckDurable, false)
		l.ack(logwire.AckDurable, false)
		synctest.Wait()
		assert.Zero(t, p.Stats().Stalled, "sent less than ResendAfter ago: still on its way")

		// A logger making progress, however slowly, is behind, not stuck.
		setNext := func(n int) {
			l.lines = wantLines(0, n-1)
			for k := range l.next {
				l.next[k] = uint64(n)
			}
		}
		time.Sleep(600 * time.Millisecond)
		setNext(45)
		l.ack(logwire.AckDurable, false)
		time.Sleep(600 * time.Millisecond)
		l.ack(logwire.AckDurable, false)
		synctest.Wait()
		assert.Zero(t, p.Stats().Stalled, "progress less than ResendAfter ago")
		assert.Zero(t, p.Stats().Replayed)

		time.Sleep(400 * time.Millisecond)
		l.ack(logwire.AckDurable, false)
		l.receive(t.Context(), 100)
		assert.Equal(t, wantLines(0, 100), l.lines)
		assert.Equal(t, uint64(1), p.Stats().Stalled)
		l.ack(logwire.AckDurable, false)
		waitFor(t, "release", func() bool { return p.Stats().Retained == 0 })
		assert.Equal(t, uint64(1), p.Stats().Stalled, "no resend once acknowledged")
	})
}

func TestPublisherPartitionHeal(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 50)
		l.receive(t.Context(), 50)
		hub.Partition([]*inproc.Bus{pb}, []*inproc.Bus{l.b})
		logN(p, 50, 50) // sent to an empty side: lost for the logger
		time.Sleep(time.Second)
		synctest.Wait()
		hub.Heal() // the logger re-appears in the ack group and asks for what it lacks
		l.sync()
		l.receive(t.Context(), 100)
		assert.Equal(t, wantLines(0, 100), l.lines)
		assert.Zero(t, l.gaps)
		assert.Zero(t, l.dups, "only what the logger lacked is sent again")
		assert.Equal(t, uint64(50), p.Stats().Replayed)
	})
}

func TestPublisherDropsWhenFull(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, MaxMemory: 4 * 4104})
		require.NoError(t, err)
		defer p.Close()
		start := time.Now()
		logN(p, 0, 2000)
		assert.Equal(t, start, time.Now(), "Log does not wait by default")
		st := p.Stats()
		assert.Positive(t, st.Dropped)
		assert.Equal(t, uint64(2000), st.Records+st.Dropped)
		assert.LessOrEqual(t, st.MemoryBytes, int64(4*4104))
	})
}

func TestPublisherBlocksWithBound(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, MaxMemory: 2 * 4104, Block: 30 * time.Millisecond})
		require.NoError(t, err)
		defer p.Close()
		for p.Stats().Dropped == 0 {
			before := time.Now()
			logN(p, 0, 1)
			if p.Stats().Dropped > 0 {
				assert.Equal(t, 30*time.Millisecond, time.Since(before), "the dropping Log waited Block")
			}
		}
	})
}

func TestPublisherJournalReplay(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		cfg := Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, Dir: dir, SegmentBytes: 16 << 10}
		p, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		logN(p, 0, 300) // no logger anywhere
		require.NoError(t, p.Close())
		st := p.Stats()
		assert.Positive(t, st.JournalBytes)
		segs, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
		assert.Greater(t, len(segs), 1, "16 KiB segments")
		epoch1 := p.Epoch()

		// Restart: the journal is replayed under the old epoch's numbers.
		l := newTestLogger(t, hub, "logger1")
		p2, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		defer p2.Close()
		assert.Greater(t, p2.Epoch(), epoch1)
		logN(p2, 300, 10)
		l.receive(t.Context(), 310)
		assert.Equal(t, wantLines(0, 310), l.lines)
		assert.Contains(t, l.next, key("web1", epoch1))
		assert.Contains(t, l.next, key("web1", p2.Epoch()))
		l.ack(logwire.AckDurable, false)
		// Segments are deleted right after the records are released.
		waitFor(t, "release and deletion", func() bool { st := p2.Stats(); return st.Retained == 0 && st.JournalBytes == 0 })
		assert.Equal(t, uint64(300), p2.Stats().Replayed)
		segs, _ = filepath.Glob(filepath.Join(dir, "*.journal"))
		for _, s := range segs {
			assert.True(t, strings.HasPrefix(filepath.Base(s), fmt.Sprintf("%016x", p2.Epoch())), "old segments deleted: %s", s)
		}
	})
}

// TestPublisherJournalEmptyWhenAcknowledged checks that a journal whose
// records are all acknowledged is deleted, the segment being written
// included, and that a restart then replays nothing.
func TestPublisherJournalEmptyWhenAcknowledged(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		cfg := Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, Dir: dir, SegmentBytes: 16 << 10}
		p, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		segments := func() []string {
			segs, err := filepath.Glob(filepath.Join(dir, "*.journal"))
			require.NoError(t, err)
			return segs
		}

		for round := range 3 {
			logN(p, round*300, 300)
			l.receive(t.Context(), (round+1)*300)
			waitFor(t, "journaled", func() bool { return p.Stats().JournalBytes > 0 })
			l.ack(logwire.AckDurable, false)
			waitFor(t, "release and deletion", func() bool { st := p.Stats(); return st.Retained == 0 && st.JournalBytes == 0 })
			assert.Empty(t, segments(), "round %d", round)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.NoError(t, p.Shutdown(ctx))
		assert.Zero(t, p.Stats().JournalBytes)
		assert.Empty(t, segments())

		p2, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		defer p2.Close()
		synctest.Wait()
		assert.Zero(t, p2.Stats().Replayed)
		assert.Zero(t, p2.Stats().JournalBytes)
	})
}

func TestPublisherJournalTornWrite(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		cfg := Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, Dir: dir}
		p, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		logN(p, 0, 100)
		require.NoError(t, p.Close())
		segs, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
		require.Len(t, segs, 1)
		fi, err := os.Stat(segs[0])
		require.NoError(t, err)
		require.NoError(t, os.Truncate(segs[0], fi.Size()-10)) // the last frame is torn

		l := newTestLogger(t, hub, "logger1")
		p2, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		defer p2.Close()
		n := int(p2.Stats().Retained)
		assert.Less(t, n, 100)
		assert.Positive(t, n)
		l.receive(t.Context(), n)
		assert.Equal(t, wantLines(0, n), l.lines, "a valid prefix is replayed")
	})
}

func TestPublisherBusCrash(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, AckQuorum: -1})
		require.NoError(t, err)
		hub.Crash(pb)
		logN(p, 0, 10)
		p.Flush()
		waitFor(t, "send error", func() bool { return p.Stats().SendErrors > 0 })
		assert.Equal(t, uint64(10), p.Stats().Retained)
		require.NoError(t, p.Close())
		logN(p, 0, 1)
		assert.Equal(t, uint64(1), p.Stats().Dropped, "Log after Close drops")
	})
}

func TestPublisherNoQuorum(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "monitor")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, AckQuorum: -1})
		require.NoError(t, err)
		logN(p, 0, 20)
		l.receive(t.Context(), 20)
		waitFor(t, "release", func() bool { return p.Stats().Retained == 0 })
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		require.NoError(t, p.Shutdown(ctx))
	})
}

func TestPublisherShutdownTimeout(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat})
		require.NoError(t, err)
		logN(p, 0, 5)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err = p.Shutdown(ctx)
		assert.ErrorIs(t, err, ErrUnacknowledged)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestPublisherDropsOversizeRecord(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: MustCompile(AgentFormat), MaxBatchBytes: 4096})
		require.NoError(t, err)
		defer p.Close()
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("User-Agent", strings.Repeat("x", 5000))
		p.Log(&Entry{Request: r, Status: 200})
		r2 := httptest.NewRequest("GET", "/", nil)
		r2.Header.Set("User-Agent", "small")
		p.Log(&Entry{Request: r2, Status: 200})
		l.receive(t.Context(), 1)
		assert.Equal(t, []string{"small"}, l.lines)
		assert.Equal(t, uint64(1), p.Stats().Dropped)
		assert.Equal(t, uint64(1), p.Stats().Records)
	})
}

func TestPublisherJournalFull(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		cfg := Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, MaxMemory: 4 * 4104,
			Dir: dir, MaxJournal: 40 << 10, SegmentBytes: 8 << 10}
		p, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		defer p.Close()
		for range 20 {
			logN(p, 0, 100)
			time.Sleep(100 * time.Millisecond) // let the flusher journal
		}
		st := p.Stats()
		assert.Positive(t, st.Dropped, "memory and journal full")
		assert.LessOrEqual(t, st.JournalBytes, int64(40<<10))
		assert.Greater(t, st.JournalBytes, int64(30<<10))
		assert.Equal(t, uint64(2000), st.Records+st.Dropped)
		assert.Equal(t, st.Records, st.Retained)

		// A logger arrives and acknowledges: the journal drains, nothing
		// accepted is lost.
		l := newTestLogger(t, hub, "logger1")
		l.sync()
		l.receive(t.Context(), int(st.Records))
		assert.Zero(t, l.gaps)
		l.ack(logwire.AckDurable, false)
		waitFor(t, "journal drained, every segment deleted, the active one included", func() bool {
			st := p.Stats()
			return st.Retained == 0 && st.JournalBytes == 0
		})
		segs, err := filepath.Glob(filepath.Join(dir, "*.journal"))
		require.NoError(t, err)
		assert.Empty(t, segs)
	})
}

// TestPublisherJournalsWhileBusBlocks checks that a bus holding Sends back
// (a logger that does not read) does not stop journaling: batches move to
// disk and free their memory, so Log drops nothing while the journal has
// room, and everything arrives once the logger reads again.
func TestPublisherJournalsWhileBusBlocks(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{QueueLen: 2})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1") // not reading yet
		cfg := Config{ID: "web1", Format: testFormat, MaxBatchBytes: 4096, MaxMemory: 8 * 4104, Dir: t.TempDir()}
		p, err := New(pb, "logs", cfg)
		require.NoError(t, err)
		defer p.Close()
		for i := range 40 {
			logN(p, i*50, 50)
			time.Sleep(50 * time.Millisecond)
		}
		st := p.Stats()
		assert.Zero(t, st.Dropped, "memory freed by journaling while Send waits")
		assert.Greater(t, st.JournalBytes, int64(200<<10))
		assert.LessOrEqual(t, st.MemoryBytes, int64(8*4104))

		l.receive(t.Context(), 2000)
		assert.Equal(t, wantLines(0, 2000), l.lines)
		l.ack(logwire.AckDurable, false)
		waitFor(t, "release", func() bool { return p.Stats().Retained == 0 })
	})
}

func TestPublisherConcurrentLog(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 2048})
		require.NoError(t, err)
		defer p.Close()
		done := make(chan struct{})
		for w := range 4 {
			go func() {
				defer func() { done <- struct{}{} }()
				logN(p, w*1000, 1000)
			}()
		}
		for range 4 {
			<-done
		}
		l.receive(t.Context(), 4000)
		assert.Zero(t, l.gaps)
		assert.Zero(t, l.dups)
		want := wantLines(0, 4000)
		slices.Sort(want)
		slices.Sort(l.lines)
		assert.Equal(t, want, l.lines)
		l.ack(logwire.AckDurable, false)
		waitFor(t, "release", func() bool { return p.Stats().Retained == 0 })
	})
}

func TestPublisherLoggerCrashRestart(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 2048})
		require.NoError(t, err)
		defer p.Close()

		logN(p, 0, 50)
		l.receive(t.Context(), 50)
		// The logger made the first 30 durable, acknowledged them, crashed.
		k := key("web1", p.Epoch())
		l.next[k] = 31
		l.ack(logwire.AckDurable, false)
		synctest.Wait()
		hub.Crash(l.b)
		logN(p, 50, 50)
		time.Sleep(time.Second)

		// It restarts from its files: 30 lines, expecting seq 31.
		l2 := newTestLogger(t, hub, "logger1")
		l2.lines = append([]string(nil), l.lines[:30]...)
		l2.next[k] = 31
		l2.sync()
		l2.receive(t.Context(), 100)
		assert.Equal(t, wantLines(0, 100), l2.lines)
		assert.Zero(t, l2.gaps)
		assert.Less(t, l2.dups, 30, "resent from the batch holding record 31, not from the start")
		l2.ack(logwire.AckDurable, false)
		waitFor(t, "release", func() bool { return p.Stats().Retained == 0 })
	})
}

func TestPublisherConcurrentBlock(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		pb, _ := hub.NewMember("web1")
		l := newTestLogger(t, hub, "logger1")
		p, err := New(pb, "logs", Config{ID: "web1", Format: testFormat, MaxBatchBytes: 2048,
			MaxMemory: 2 * 2056, AckQuorum: -1, Block: 50 * time.Millisecond})
		require.NoError(t, err)
		defer p.Close()
		done := make(chan struct{})
		for w := range 4 {
			go func() {
				defer func() { done <- struct{}{} }()
				logN(p, w*500, 500)
			}()
		}
		for range 4 {
			<-done
		}
		st := p.Stats()
		assert.Zero(t, st.Dropped, "writers waited for the flusher instead")
		assert.Equal(t, uint64(2000), st.Records)
		l.receive(t.Context(), 2000)
		assert.Zero(t, l.gaps)
		assert.Zero(t, l.dups)
		want := wantLines(0, 2000)
		slices.Sort(want)
		slices.Sort(l.lines)
		assert.Equal(t, want, l.lines)
	})
}
