package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/require"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogmonSmoke(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pb, err := cluster.New("web1", cluster.LANConfig())
	require.NoError(t, err)
	defer pb.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for seq := uint64(1); ctx.Err() == nil; seq++ {
			msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: seq, Count: 1})
			msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, Bytes: 100, VHost: "smoke.example", URL: "/smoke", Line: []byte("x")})
			pb.Send(ctx, "www", bus.FIFO, msg)
			time.Sleep(50 * time.Millisecond)
		}
	})
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-seeds", pb.GossipAddr(), "-name", "mon1"}, &out)
	}()
	re := regexp.MustCompile(`dashboard on (http://\S+)/`)
	deadline := time.Now().Add(30 * time.Second)
	var url string
	for url == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		}
		require.True(t, time.Now().Before(deadline), "logmon did not start: %s", out.String())
		time.Sleep(20 * time.Millisecond)
	}
	for {
		resp, err := http.Get(url + "/snapshot.json")
		require.NoError(t, err)
		var v view
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		require.NoError(t, err)
		if len(v.Servers) > 0 && v.Servers[0].Name == "web1" && v.All.TotalHits > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no traffic seen: %+v", v)
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
}
