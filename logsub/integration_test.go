package logsub

import (
	"context"
	"fmt"
	"net/http/httptest"
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
	"github.com/peerscale/peerscale/logpub"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWithLogpubPublisher runs logpub's Publisher (with its journal)
// against a Logger that crashes twice: every logged request ends up in the
// file exactly once, and the Publisher's Shutdown sees everything
// acknowledged.
func TestWithLogpubPublisher(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		outs := []Output{{File: filepath.Join(dir, "access_log")}}
		cfg := Config{Name: "logger-a", Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, Logger: quiet}
		startLogger := func() (*Logger, *inproc.Bus) {
			b, err := hub.NewMember("logger-a")
			require.NoError(t, err)
			l, err := New(ctx, committedAcks{b, t, cfg.Store.StateFile}, []string{"www"}, outs, cfg)
			require.NoError(t, err)
			return l, b
		}
		l, lb := startLogger()
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		p, err := logpub.New(pb, "www", logpub.Config{ID: "web1", Dir: filepath.Join(dir, "journal"), Logger: quiet})
		require.NoError(t, err)

		const n = 3000
		for i := range n {
			r := httptest.NewRequest("GET", fmt.Sprintf("/r/%d", i), nil)
			now := time.Now()
			p.Log(&logpub.Entry{Request: r, Status: 200, BodyBytes: int64(i), Start: now, End: now})
			if i%100 == 99 {
				time.Sleep(10 * time.Millisecond)
			}
			if i == n/3 || i == 2*n/3 {
				l.crash(true)
				hub.Crash(lb)
				time.Sleep(50 * time.Millisecond)
				l, lb = startLogger()
			}
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		require.NoError(t, p.Shutdown(sctx), "every record acknowledged; logger %+v", l.Stats())
		require.NoError(t, l.Shutdown(ctx))
		st := p.Stats()
		t.Logf("publisher: %+v", st)

		data, err := os.ReadFile(filepath.Join(dir, "access_log"))
		require.NoError(t, err)
		count := map[string]int{}
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			f := strings.Fields(line)
			require.GreaterOrEqual(t, len(f), 7, line)
			count[f[6]]++
		}
		for i := range n {
			assert.Equal(t, 1, count[fmt.Sprintf("/r/%d", i)], "/r/%d", i)
		}
		assert.Len(t, count, n)
	})
}

// TestLogpubRestartReplaysJournal closes a logpub Publisher before loggers
// acknowledged its records and starts it again on the same journal: it
// replays under the old epoch, the Logger drops what it already holds, and
// every request is in the file exactly once.
func TestLogpubRestartReplaysJournal(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		lb, err := hub.NewMember("logger-a")
		require.NoError(t, err)
		l, err := New(ctx, lb, []string{"www"}, []Output{{File: filepath.Join(dir, "access_log")}},
			Config{Name: "logger-a", Store: StoreConfig{StateFile: filepath.Join(dir, "state")}, Logger: quiet})
		require.NoError(t, err)
		pcfg := logpub.Config{ID: "web1", Dir: filepath.Join(dir, "journal"), Logger: quiet}
		logN := func(p *logpub.Publisher, from, to int) {
			for i := from; i < to; i++ {
				now := time.Now()
				p.Log(&logpub.Entry{Request: httptest.NewRequest("GET", fmt.Sprintf("/r/%d", i), nil), Status: 200, Start: now, End: now})
			}
		}
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		p, err := logpub.New(pb, "www", pcfg)
		require.NoError(t, err)
		logN(p, 0, 1000)
		time.Sleep(30 * time.Millisecond) // some batches sent, few acknowledged
		require.NoError(t, p.Close())
		hub.Crash(pb)

		pb, err = hub.NewMember("web1")
		require.NoError(t, err)
		p, err = logpub.New(pb, "www", pcfg)
		require.NoError(t, err)
		logN(p, 1000, 2000)
		require.NoError(t, p.Shutdown(ctx))
		require.NoError(t, l.Shutdown(ctx))
		t.Logf("publisher after restart: %+v; logger: %d records, %d duplicates", p.Stats(), l.Stats().Records, l.Stats().Duplicates)

		data, err := os.ReadFile(filepath.Join(dir, "access_log"))
		require.NoError(t, err)
		count := map[string]int{}
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			count[strings.Fields(line)[6]]++
		}
		for i := range 2000 {
			assert.Equal(t, 1, count[fmt.Sprintf("/r/%d", i)], "/r/%d", i)
		}
		assert.Len(t, count, 2000)
	})
}

// committedAcks wraps a logger's bus and checks every durable ack the
// logger sends against its state file: an ack never covers a record that
// a crash right after it would lose (records written but not committed).
type committedAcks struct {
	bus.Bus
	t     testing.TB
	state string
}

func (c committedAcks) Send(ctx context.Context, group string, level bus.Level, data []byte) error {
	if k, err := logwire.MessageKind(data); err == nil && k == logwire.KindAck {
		c.check(strings.TrimSuffix(group, ".ack"), data)
	}
	return c.Bus.Send(ctx, group, level, data)
}

func (c committedAcks) check(group string, data []byte) {
	a, err := logwire.DecodeAck(data)
	if err != nil {
		c.t.Errorf("logger sent an undecodable ack: %v", err)
		return
	}
	if a.Flags&logwire.AckDurable == 0 {
		return
	}
	st, err := readState(c.state)
	if err != nil {
		c.t.Errorf("state file: %v", err)
		return
	}
	for _, e := range a.Entries {
		if e.Next <= 1 {
			continue
		}
		held := false
		for _, se := range st.Seen {
			if se.Group == group && se.Publisher == e.Publisher && se.Epoch == e.Epoch {
				held = len(se.Ranges) > 0 && se.Ranges[0].Lo == 1 && se.Ranges[0].Hi >= e.Next-1
			}
		}
		if !held {
			c.t.Errorf("ack (flags %#x) of %s epoch %d up to %d covers records the state file does not hold: %+v",
				a.Flags, e.Publisher, e.Epoch, e.Next-1, st.Seen)
		}
	}
}

// TestLogpubRejoinGetsOnlyWhatItLacks partitions one of two loggers
// (AckQuorum 2) away from a logpub Publisher while it logs, lets a monitor
// join the ack group meanwhile, then heals: the logger that stayed gets
// nothing again while the other is away, the one that comes back gets
// exactly the records it missed, and both files hold every record once.
func TestLogpubRejoinGetsOnlyWhatItLacks(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		dir := t.TempDir()
		hub := inproc.New(inproc.Config{Logger: quiet})
		defer hub.Close()
		var loggers []*Logger
		var buses []*inproc.Bus
		for _, name := range []string{"logger-a", "logger-b"} {
			b, err := hub.NewMember(name)
			require.NoError(t, err)
			state := filepath.Join(dir, name+".state")
			l, err := New(ctx, committedAcks{b, t, state}, []string{"www"}, []Output{{File: filepath.Join(dir, name+".log")}},
				Config{Name: name, Store: StoreConfig{StateFile: state}, Logger: quiet})
			require.NoError(t, err)
			loggers, buses = append(loggers, l), append(buses, b)
		}
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		p, err := logpub.New(pb, "www", logpub.Config{ID: "web1", Dir: filepath.Join(dir, "journal"), AckQuorum: 2, Logger: quiet})
		require.NoError(t, err)
		logN := func(from, to int) {
			for i := from; i < to; i++ {
				now := time.Now()
				p.Log(&logpub.Entry{Request: httptest.NewRequest("GET", fmt.Sprintf("/r/%d", i), nil), Status: 200, Start: now, End: now})
				if i%100 == 99 {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
		acked := func(n uint64) func() bool {
			return func() bool { st := p.Stats(); return st.Records == n && st.Retained == 0 }
		}
		logN(0, 1000)
		waitFor(t, time.Minute, "both loggers acknowledge", acked(1000))

		hub.Partition([]*inproc.Bus{buses[1]})
		logN(1000, 2000)
		mb, err := hub.NewMember("monitor")
		require.NoError(t, err)
		_, err = mb.Join(ctx, "www.ack")
		require.NoError(t, err)
		time.Sleep(time.Second)
		assert.Zero(t, loggers[0].Stats().Duplicates, "a join does not resend what logger-a holds")
		assert.Zero(t, p.Stats().Replayed)

		hub.Heal()
		logN(2000, 3000)
		waitFor(t, time.Minute, "both loggers acknowledge", acked(3000))
		st := p.Stats()
		t.Logf("publisher: %+v", st)
		assert.Equal(t, uint64(1000), st.Replayed, "records 1001-2000, once")
		assert.Zero(t, loggers[1].Stats().Duplicates, "logger-b got only what it lacked")
		assert.Equal(t, uint64(1000), loggers[0].Stats().Duplicates, "the resend reached logger-a too (a multicast)")

		require.NoError(t, p.Shutdown(ctx))
		for i, l := range loggers {
			require.NoError(t, l.Shutdown(ctx))
			data, err := os.ReadFile(filepath.Join(dir, []string{"logger-a", "logger-b"}[i]+".log"))
			require.NoError(t, err)
			count := map[string]int{}
			for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				count[strings.Fields(line)[6]]++
			}
			for i := range 3000 {
				assert.Equal(t, 1, count[fmt.Sprintf("/r/%d", i)], "/r/%d", i)
			}
			assert.Len(t, count, 3000)
		}
	})
}
