package online

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/logwire"
)

// batch encodes records as a logpub publisher would.
func batch(pub string, firstSeq uint64, recs ...logwire.Record) []byte {
	b := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: pub, Epoch: 1, FirstSeq: firstSeq, Count: uint32(len(recs))})
	for i := range recs {
		b = logwire.AppendRecord(b, &recs[i])
	}
	return b
}

func logRec(user, url string, t time.Time) logwire.Record {
	return logwire.Record{Time: t, Status: 200, Method: "GET", URL: url, Proto: "HTTP/1.1", User: user, Remote: "192.0.2.7", Line: []byte("line")}
}

// eventually waits, in synctest's fake time, for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		synctest.Wait()
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestIngestAppliesRecords(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		web, err := hub.NewMember("web1")
		require.NoError(t, err)
		od, err := hub.NewMember("onlined")
		require.NoError(t, err)
		now := time.Now()
		ix := NewIndex(Config{Window: time.Minute, Now: time.Now})
		in, err := NewIngest(ix, od, "logs", IngestConfig{})
		require.NoError(t, err)
		defer in.Close()

		ctx := t.Context()
		require.NoError(t, web.Send(ctx, "logs", bus.FIFO, batch("web1", 1,
			logRec("alice", "/a?x=1", now),
			logRec("bob", "/a", now.Add(time.Millisecond)),
			logRec("", "/anon", now),                       // no user: skipped
			logRec("alice", "/old", now.Add(-time.Second)), // older: ignored
			logRec("carol", "/c", time.Time{}),             // no time: the index clock
		)))
		require.NoError(t, web.Send(ctx, "logs", bus.FIFO, []byte("garbage")))
		require.NoError(t, web.Send(ctx, "logs", bus.FIFO, batch("web1", 6, logRec("dave", "/d", now))[:40]))
		require.NoError(t, web.Send(ctx, "logs", bus.FIFO, logwire.AppendAck(nil, &logwire.Ack{Logger: "l1"})))
		eventually(t, "records applied", func() bool { return in.Stats().Messages == 4 && in.Stats().Backlog == 0 })

		st := in.Stats()
		assert.Equal(t, uint64(5), st.Records)
		assert.Equal(t, uint64(3), st.Applied)
		assert.Equal(t, uint64(1), st.Ignored)
		assert.Equal(t, uint64(1), st.Anonymous)
		assert.Equal(t, uint64(2), st.BadMessages, "garbage and a truncated batch; the ack is not ours")
		assert.Equal(t, uint64(1), st.Views)
		assert.Equal(t, 3, ix.Count())
		who := ix.OnURL("/a", 0)
		require.Len(t, who, 2)
		assert.Equal(t, "bob", who[0].User)
		assert.Equal(t, "alice", who[1].User)
		v, ok := ix.Lookup("carol")
		require.True(t, ok)
		assert.Equal(t, now.UnixMilli(), v.Time.UnixMilli())

		require.NoError(t, in.Shutdown(ctx))
		assert.ErrorIs(t, in.Shutdown(ctx), nil, "a second Shutdown after a clean one is harmless")
	})
}

func TestIngestOptions(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		web, _ := hub.NewMember("web1")
		od, _ := hub.NewMember("onlined")
		ix := NewIndex(Config{Window: time.Minute})
		in, err := NewIngest(ix, od, "logs", IngestConfig{UseRemoteAddr: true, KeepQuery: true})
		require.NoError(t, err)
		defer in.Close()
		require.NoError(t, web.Send(t.Context(), "logs", bus.FIFO, batch("web1", 1, logRec("", "/a?x=1", time.Now()))))
		eventually(t, "applied", func() bool { return in.Stats().Applied == 1 })
		who := ix.OnURL("/a?x=1", 0)
		require.Len(t, who, 1)
		assert.Equal(t, "192.0.2.7", who[0].User)
	})
}

// TestIngestLagsRatherThanSlows holds the index lock (a slow index) while
// a publisher sends: its sends complete, the backlog grows, and everything
// is applied once the index is free. Past MaxBacklogBytes messages are
// dropped and counted instead of blocking the publisher.
func TestIngestLagsRatherThanSlows(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{QueueLen: 4})
		defer hub.Close()
		web, _ := hub.NewMember("web1")
		od, _ := hub.NewMember("onlined")
		ix := NewIndex(Config{Window: time.Hour})
		msg := func(i int) []byte {
			return batch("web1", uint64(i*10+1), logRec("u"+string(rune('a'+i%26))+string(rune('a'+i/26)), "/p", time.Now()))
		}
		size := len(msg(0))
		in, err := newTestIngest(ix, od, IngestConfig{MaxBacklogBytes: 100 * size})
		require.NoError(t, err)
		defer in.Close()

		in.busy <- struct{}{} // the index is busy
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		for i := range 150 {
			require.NoError(t, web.Send(ctx, "logs", bus.FIFO, msg(i)), "send %d blocked", i)
		}
		cancel()
		synctest.Wait()
		st := in.Stats()
		assert.Equal(t, uint64(150), st.Messages)
		assert.LessOrEqual(t, st.Backlog, 100*size)
		assert.GreaterOrEqual(t, st.Dropped, uint64(49), "the applier holds at most one message outside the backlog")
		assert.Equal(t, st.Dropped, st.DroppedRecords)
		close(in.release)

		eventually(t, "backlog applied", func() bool { return in.Stats().Backlog == 0 })
		st = in.Stats()
		assert.Equal(t, 150-int(st.Dropped), ix.Count())
		assert.Equal(t, uint64(150)-st.Dropped, st.Applied)
	})
}

func TestIngestShutdownAppliesBacklogCloseDoesNot(t *testing.T) {
	leakcheck.Check(t)
	for _, graceful := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			hub := inproc.New(inproc.Config{})
			defer hub.Close()
			web, _ := hub.NewMember("web1")
			od, _ := hub.NewMember("onlined")
			ix := NewIndex(Config{Window: time.Hour})
			in, err := newTestIngest(ix, od, IngestConfig{})
			require.NoError(t, err)
			in.busy <- struct{}{}
			for i := range 10 {
				require.NoError(t, web.Send(t.Context(), "logs", bus.FIFO, batch("web1", uint64(i+1), logRec("u"+string(rune('a'+i)), "/p", time.Now()))))
			}
			synctest.Wait()
			require.Equal(t, uint64(10), in.Stats().Messages)
			done := make(chan error, 1)
			if graceful {
				go func() { done <- in.Shutdown(t.Context()) }()
				synctest.Wait()
				close(in.release)
				require.NoError(t, <-done)
				assert.Equal(t, 10, ix.Count(), "Shutdown applies the backlog")
				assert.ErrorIs(t, in.Shutdown(t.Context()), nil)
			} else {
				go func() { done <- in.Close() }()
				synctest.Wait()
				close(in.release)
				require.NoError(t, <-done)
				assert.Less(t, ix.Count(), 10, "Close drops the backlog")
				assert.ErrorIs(t, in.Shutdown(t.Context()), ErrClosed)
			}
			require.NoError(t, in.Close(), "Close is idempotent")
		})
	}
}

func TestIngestSurvivesPartitionAndHeal(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		hub := inproc.New(inproc.Config{})
		defer hub.Close()
		web, _ := hub.NewMember("web1")
		od, _ := hub.NewMember("onlined")
		ix := NewIndex(Config{Window: time.Hour})
		in, err := NewIngest(ix, od, "logs", IngestConfig{})
		require.NoError(t, err)
		defer in.Close()
		hub.Partition([]*inproc.Bus{web}, []*inproc.Bus{od})
		require.NoError(t, web.Send(t.Context(), "logs", bus.FIFO, batch("web1", 1, logRec("lost", "/p", time.Now()))))
		hub.Heal()
		require.NoError(t, web.Send(t.Context(), "logs", bus.FIFO, batch("web1", 2, logRec("seen", "/p", time.Now()))))
		eventually(t, "applied", func() bool { return in.Stats().Applied == 1 })
		_, ok := ix.Lookup("seen")
		assert.True(t, ok)
		_, ok = ix.Lookup("lost")
		assert.False(t, ok, "a message sent to the other side of a partition does not arrive")
	})
}

// testIngest is an Ingest whose applier can be held: a send on busy makes
// the applier wait before its next message until release is closed.
type testIngest struct {
	*Ingest
	busy    chan struct{}
	release chan struct{}
}

func newTestIngest(ix *Index, b bus.Bus, cfg IngestConfig) (*testIngest, error) {
	in, err := NewIngest(ix, b, "logs", cfg)
	if err != nil {
		return nil, err
	}
	ti := &testIngest{Ingest: in, busy: make(chan struct{}, 1), release: make(chan struct{})}
	in.mu.Lock()
	in.beforeApply = func() {
		select {
		case <-ti.busy:
			<-ti.release
		default:
		}
	}
	in.mu.Unlock()
	return ti, nil
}
