package logsub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
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

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// waitFor sleeps in fake time until cond holds or limit passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// auditLines checks that the lines under files hold every created record
// exactly once, and nothing else.
func auditLines(t testing.TB, files []string, pubs ...*simPub) {
	t.Helper()
	count := make(map[string]int)
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if l != "" {
				count[l]++
			}
		}
	}
	want := 0
	for _, p := range pubs {
		for _, r := range p.created {
			want++
			if n := count[r.line]; n != 1 {
				t.Errorf("record %s written %d times", r.key(p.id), n)
			}
			delete(count, r.line)
		}
	}
	assert.Empty(t, count, "lines that no publisher created")
	t.Logf("audited %d records", want)
}

func TestLoggerWritesAndAcknowledges(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		lb, err := hub.NewMember("logger")
		require.NoError(t, err)
		l, err := New(ctx, lb, []string{"www"}, []Output{{File: filepath.Join(dir, "access_log")}},
			Config{Name: "l1", Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, Logger: quiet})
		require.NoError(t, err)
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		p := newSimPub(t, "web1", "www")
		p.start(pb)
		for range 20 {
			p.publish(ctx, 50)
			time.Sleep(5 * time.Millisecond)
		}
		// A malformed message is counted and dropped.
		require.NoError(t, pb.Send(ctx, "www", bus.FIFO, []byte{1, 1, 0}))
		waitFor(t, 5*time.Second, "acks", func() bool { return p.pending() == 0 })
		st := l.Stats()
		assert.Equal(t, uint64(1000), st.Records)
		assert.Equal(t, uint64(1), st.BadMessages)
		assert.Positive(t, st.Acks)
		assert.Positive(t, st.Syncs)
		require.NoError(t, l.Shutdown(ctx))
		require.NoError(t, l.Close(), "Close after Shutdown")
		p.crash()
		auditLines(t, []string{filepath.Join(dir, "access_log")}, p)
	})
}

// TestLoggerChaos kills the logger (without committing) three times at
// random points, restarts a publisher, and cuts the logger off the bus for
// a while, with two publishers sending all along; then it audits that
// every record is in the files exactly once.
func TestLoggerChaos(t *testing.T) {
	leakcheck.Check(t)
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { chaos(t, seed) })
		})
	}
}

func chaos(t *testing.T, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()
	hub := inproc.New(inproc.Config{Logger: quiet, Seed: seed, QueueLen: 64})
	defer hub.Close()
	outs := []Output{{File: filepath.Join(dir, "access.%H%M"), Rotate: FileConfig{Interval: time.Minute, MaxSize: 64 << 10}}}
	cfg := Config{Name: "l1", Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, GapTimeout: time.Hour, Logger: quiet}
	startLogger := func() (*Logger, *inproc.Bus) {
		b, err := hub.NewMember("logger")
		require.NoError(t, err)
		l, err := New(ctx, b, []string{"www"}, outs, cfg)
		require.NoError(t, err)
		return l, b
	}
	l, lb := startLogger()

	pubs := []*simPub{newSimPub(t, "web1", "www"), newSimPub(t, "web2", "www")}
	pbs := make([]*inproc.Bus, len(pubs))
	for i, p := range pubs {
		var err error
		pbs[i], err = hub.NewMember(p.id)
		require.NoError(t, err)
		p.start(pbs[i])
	}
	publish := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			for _, p := range pubs {
				p.publish(ctx, 1+rng.IntN(40))
			}
			time.Sleep(time.Duration(1+rng.IntN(20)) * time.Millisecond)
		}
	}
	var totalCut int64
	for kill := range 3 {
		publish(time.Duration(200+rng.IntN(2000)) * time.Millisecond)
		l.crash(kill != 0)
		hub.Crash(lb)
		publish(time.Duration(rng.IntN(300)) * time.Millisecond)
		if kill == 1 {
			pubs[0].crash()
			hub.Crash(pbs[0])
			var err error
			pbs[0], err = hub.NewMember("web1")
			require.NoError(t, err)
			pubs[0].start(pbs[0])
		}
		l, lb = startLogger()
		totalCut += l.Stats().Truncated
	}
	// The logger's bus member is cut off for a while, then comes back.
	publish(500 * time.Millisecond)
	hub.Partition([]*inproc.Bus{lb})
	publish(500 * time.Millisecond)
	hub.Heal()
	publish(500 * time.Millisecond)
	waitFor(t, time.Minute, "every record acknowledged", func() bool { return pubs[0].pending()+pubs[1].pending() == 0 })
	require.NoError(t, l.Shutdown(ctx))
	for _, p := range pubs {
		p.crash()
	}
	files, err := filepath.Glob(filepath.Join(dir, "access.*"))
	require.NoError(t, err)
	auditLines(t, files, pubs...)
	st := l.Stats()
	t.Logf("cut %d uncommitted bytes over 3 kills; last logger: %d records, %d duplicates dropped, %d files", totalCut, st.Records, st.Duplicates, len(files))
	assert.Positive(t, totalCut, "the kills left uncommitted lines to cut")
	assert.Zero(t, st.Forgotten)
}

func TestLoggerConfigErrors(t *testing.T) {
	hub := inproc.New(inproc.Config{Logger: quiet})
	defer hub.Close()
	b, err := hub.NewMember("x")
	require.NoError(t, err)
	out := []Output{{File: filepath.Join(t.TempDir(), "log")}}
	_, err = New(context.Background(), b, nil, out, Config{})
	assert.ErrorIs(t, err, ErrConfig)
	_, err = New(context.Background(), b, []string{"bad group"}, out, Config{})
	assert.ErrorIs(t, err, bus.ErrBadGroup)
	_, err = New(context.Background(), b, []string{"g"}, out, Config{FsyncInterval: -1})
	assert.ErrorIs(t, err, ErrConfig)
}

// TestTwoLoggersFullCopies runs two loggers on one group: each holds a full
// copy, and each acknowledges under its own name.
func TestTwoLoggersFullCopies(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		var ls []*Logger
		for _, name := range []string{"a", "b"} {
			b, err := hub.NewMember("logger-" + name)
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), name)
			l, err := New(ctx, b, []string{"www"}, []Output{{File: filepath.Join(dir, "access_log")}},
				Config{Name: "logger-" + name, Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, Logger: quiet})
			require.NoError(t, err)
			ls = append(ls, l)
		}
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		ob, err := hub.NewMember("observer")
		require.NoError(t, err)
		ackG, err := ob.Join(ctx, "www.ack")
		require.NoError(t, err)
		p := newSimPub(t, "web1", "www")
		p.start(pb)
		for range 10 {
			p.publish(ctx, 30)
		}
		names := map[string]uint64{}
		for names["logger-a"] < 301 || names["logger-b"] < 301 {
			ev, err := ackG.Recv(ctx)
			require.NoError(t, err)
			if m, ok := ev.(*bus.Message); ok {
				a, err := logwire.DecodeAck(m.Data)
				require.NoError(t, err)
				for _, e := range a.Entries {
					names[a.Logger] = max(names[a.Logger], e.Next)
				}
			}
		}
		for _, l := range ls {
			require.NoError(t, l.Shutdown(ctx))
			assert.Equal(t, uint64(300), l.Stats().Records)
		}
		p.crash()
	})
}

// TestLoggerRepeatsAcks checks that a logger repeats its latest ack of a
// recent stream, so that an ack lost on the bus does not stall a publisher,
// and stops once the stream is no longer recent.
func TestLoggerRepeatsAcks(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		lb, err := hub.NewMember("logger")
		require.NoError(t, err)
		l, err := New(ctx, lb, []string{"www"}, []Output{{File: filepath.Join(dir, "log")}}, Config{Name: "l1",
			Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, AckRepeat: time.Second, AckRecent: 5 * time.Second, Logger: quiet})
		require.NoError(t, err)
		ob, err := hub.NewMember("observer")
		require.NoError(t, err)
		ackG, err := ob.Join(ctx, "www.ack")
		require.NoError(t, err)
		msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: 1, Count: 1})
		msg = logwire.AppendRecord(msg, &logwire.Record{Line: []byte("x")})
		require.NoError(t, ob.Send(ctx, "www", bus.FIFO, msg))
		start := time.Now()
		var seen []time.Duration
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			ev, err := ackG.Recv(rctx)
			if err != nil {
				break
			}
			if m, ok := ev.(*bus.Message); ok {
				a, err := logwire.DecodeAck(m.Data)
				require.NoError(t, err)
				for _, e := range a.Entries {
					if e.Publisher == "web1" && e.Next == 2 {
						seen = append(seen, time.Since(start).Round(100*time.Millisecond))
					}
				}
			}
		}
		require.NoError(t, l.Shutdown(ctx))
		// The first ack after the first commit, then about once a second for 5 s.
		require.GreaterOrEqual(t, len(seen), 5, "%v", seen)
		assert.LessOrEqual(t, len(seen), 7, "%v", seen)
		assert.Less(t, seen[len(seen)-1], 7*time.Second, "repeats stop once the stream is not recent: %v", seen)
	})
}

// TestSyncAckNamesOnlyCommittedRecords checks that an AckSync (sent by a
// starting logger) lists how far each stream is committed, and not the
// records written while the commit ran: a crash right after the ack would
// lose those while publishers, taking them as acknowledged, forgot them.
func TestSyncAckNamesOnlyCommittedRecords(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		ob, err := hub.NewMember("observer")
		require.NoError(t, err)
		ackG, err := ob.Join(ctx, "www.ack")
		require.NoError(t, err)
		lb, err := hub.NewMember("logger")
		require.NoError(t, err)
		l, err := New(ctx, lb, []string{"www"}, []Output{{File: filepath.Join(dir, "log")}}, Config{Name: "l1",
			Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, FsyncInterval: time.Hour, Logger: quiet})
		require.NoError(t, err)
		synctest.Wait() // the logger saw its first views
		write := func(from, to uint64) {
			for seq := from; seq < to; seq++ {
				_, err := l.store.Write(&Record{Group: "www", Publisher: "web1", Epoch: 1, Seq: seq, Line: fmt.Appendf(nil, "line %d", seq)})
				require.NoError(t, err)
			}
		}
		nextAck := func() *logwire.Ack {
			t.Helper()
			for {
				ev, err := ackG.Recv(ctx)
				require.NoError(t, err)
				if m, ok := ev.(*bus.Message); ok {
					a, err := logwire.DecodeAck(m.Data)
					require.NoError(t, err)
					return a
				}
			}
		}
		write(1, 4)
		l.afterCommit = func() { write(4, 7) } // batches arriving while the commit runs
		require.NoError(t, l.commit(ctx))
		l.afterCommit = nil
		a := nextAck()
		assert.Equal(t, logwire.AckDurable|logwire.AckSync, a.Flags)
		assert.Equal(t, []logwire.AckEntry{{Publisher: "web1", Epoch: 1, Next: 4}}, a.Entries, "only what the commit covered")

		require.NoError(t, l.commit(ctx))
		a = nextAck()
		assert.Equal(t, []logwire.AckEntry{{Publisher: "web1", Epoch: 1, Next: 7}}, a.Entries, "the rest at the next commit")
		require.NoError(t, l.Shutdown(ctx))
	})
}

func TestAckChunk(t *testing.T) {
	es := make([]logwire.AckEntry, 10000)
	for i := range es {
		es[i] = logwire.AckEntry{Publisher: fmt.Sprintf("publisher-%05d.example.com", i), Epoch: 1 << 40, Next: 1 << 50}
	}
	n := ackChunk(es, 64<<10)
	require.Positive(t, n)
	require.Less(t, n, len(es))
	msg := logwire.AppendAck(nil, &logwire.Ack{Logger: "l", Flags: logwire.AckDurable, Entries: es[:n]})
	assert.LessOrEqual(t, len(msg), 64<<10)
	assert.Equal(t, 1, ackChunk(es, 10), "at least one entry")
	assert.Equal(t, 3, ackChunk(es[:3], 1<<20))
}

// TestLoggerSyncsOnAckGroupJoin checks that a member joining the ack group
// (a publisher starting, or back after a partition: publishers are not in
// the log group) gets an AckSync with the logger's positions, a hole's end
// included.
func TestLoggerSyncsOnAckGroupJoin(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		lb, err := hub.NewMember("logger")
		require.NoError(t, err)
		l, err := New(ctx, lb, []string{"www"}, []Output{{File: filepath.Join(dir, "log")}}, Config{Name: "l1",
			Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, Logger: quiet})
		require.NoError(t, err)
		defer l.Close()
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		for _, first := range []uint64{1, 5} { // records 1-2 and 5-6: a hole at 3-4
			msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: first, Count: 2})
			msg = logwire.AppendRecord(msg, &logwire.Record{Line: []byte("x")})
			msg = logwire.AppendRecord(msg, &logwire.Record{Line: []byte("y")})
			require.NoError(t, pb.Send(ctx, "www", bus.FIFO, msg))
		}
		time.Sleep(time.Second)
		syncs := l.Stats().Syncs

		ackG, err := pb.Join(ctx, "www.ack")
		require.NoError(t, err)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for {
			ev, err := ackG.Recv(rctx)
			require.NoError(t, err, "no AckSync")
			if m, ok := ev.(*bus.Message); ok {
				a, err := logwire.DecodeAck(m.Data)
				require.NoError(t, err)
				if a.Flags&logwire.AckSync == 0 {
					continue
				}
				assert.Equal(t, []logwire.AckEntry{{Publisher: "web1", Epoch: 1, Next: 3, Resend: true, End: 5}}, a.Entries)
				break
			}
		}
		synctest.Wait()
		assert.Equal(t, syncs+1, l.Stats().Syncs)
	})
}
