package logsub

import (
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

func TestAggregatorWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := NewAggregator(AggregatorConfig{Window: 10 * time.Second, TopN: 2, MaxKeys: 3})
		obs := func(server, vhost, url, ref string, status int, bytes int64) {
			a.Observe(&Record{Server: server, Vhost: vhost, URL: url, Referer: ref, Status: status, Bytes: bytes})
		}
		for range 10 {
			obs("web1", "a.example", "/", "-", 200, 100)
		}
		for range 5 {
			obs("web2", "b.example", "/x", "http://r/", 404, 10)
		}
		obs("web2", "b.example", "/y", "", 500, 0)
		obs("web3", "c.example", "/z", "", 302, 0)
		obs("web4", "d.example", "/w", "", 99, 0)
		time.Sleep(time.Second)
		s := a.Snapshot()
		assert.Equal(t, 2*time.Second, s.Window, "the window grows from the start")
		assert.Equal(t, uint64(18), s.All.Window.Hits)
		assert.Equal(t, uint64(1050), s.All.Window.Bytes)
		assert.InDelta(t, 9.0, s.All.HitsPerSec, 1e-9)
		assert.Equal(t, [6]uint64{1, 0, 10, 1, 5, 1}, s.All.Window.Status)
		require.Len(t, s.Servers, 4)
		assert.Equal(t, "web1", s.Servers[0].Name)
		assert.Equal(t, "web2", s.Servers[1].Name)
		assert.Equal(t, uint64(6), s.Servers[1].Window.Hits)
		assert.Equal(t, OtherKey, s.Servers[2].Name, "the fourth server counts as other")
		assert.Equal(t, []Count{{"/", 10}, {"/x", 5}}, s.TopURLs)
		assert.Equal(t, []Count{{"http://r/", 5}}, s.TopReferrers)

		time.Sleep(5 * time.Second)
		obs("web1", "a.example", "/late", "", 200, 1)
		time.Sleep(5 * time.Second)
		s = a.Snapshot()
		assert.Equal(t, 10*time.Second, s.Window)
		assert.Equal(t, uint64(1), s.All.Window.Hits, "the first second slid out")
		assert.Equal(t, uint64(19), s.All.Total.Hits)
		assert.Equal(t, []Count{{"/late", 1}}, s.TopURLs)
		assert.Equal(t, uint64(11), s.Servers[0].Total.Hits)
	})
}

func TestMonitorNeverHoldsBackPublishers(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		hub := inproc.New(inproc.Config{Logger: quiet, QueueLen: 4})
		defer hub.Close()
		mb, err := hub.NewMember("mon")
		require.NoError(t, err)
		m, err := NewMonitor(ctx, mb, []string{"www"}, MonitorConfig{QueueLen: 2, Logger: quiet})
		require.NoError(t, err)
		pb, err := hub.NewMember("web1")
		require.NoError(t, err)
		msg := func(first uint64) []byte {
			b := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: first, Count: 2})
			for i := range 2 {
				b = logwire.AppendRecord(b, &logwire.Record{Status: 200, Bytes: 10, VHost: "v", URL: "/", Line: []byte{'a' + byte(i)}})
			}
			return b
		}
		// Sends go through with nobody reading in between: the monitor's
		// receive loop drains the bus and drops what it cannot aggregate.
		for i := range 500 {
			require.NoError(t, pb.Send(ctx, "www", bus.FIFO, msg(uint64(1+2*i))))
		}
		require.NoError(t, pb.Send(ctx, "www", bus.FIFO, msg(1)), "a retransmission")
		require.NoError(t, pb.Send(ctx, "www", bus.FIFO, []byte{9}))
		synctest.Wait()
		st := m.Stats()
		assert.Equal(t, uint64(502), st.Messages)
		assert.Equal(t, st.Messages, st.Dropped+st.Records/2+st.BadMessages+st.Duplicates/2)
		assert.Equal(t, st.Records, m.Snapshot().All.Total.Hits)
		require.NoError(t, m.Close())
		require.NoError(t, m.Close())
	})
}
