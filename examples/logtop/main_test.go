package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogtopSmoke(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pb, err := cluster.New("web1", cluster.LANConfig())
	require.NoError(t, err)
	defer pb.Close()
	var wg sync.WaitGroup
	wg.Go(func() {
		seq := uint64(1)
		for ctx.Err() == nil {
			msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: seq, Count: 1})
			msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, Bytes: 100, VHost: "smoke.example", URL: "/smoke", Line: []byte("x")})
			pb.Send(ctx, "www", bus.FIFO, msg)
			seq++
			time.Sleep(50 * time.Millisecond)
		}
	})
	var out bytes.Buffer
	err = run(ctx, []string{"-once", "-interval", "3s", "-seeds", pb.GossipAddr(), "-name", "top1"}, &out)
	cancel()
	wg.Wait()
	require.NoError(t, err)
	assert.Contains(t, out.String(), "smoke.example")
	assert.Contains(t, out.String(), "/smoke")
	assert.Regexp(t, `\nweb1 +\d+\.\d`, out.String())
}
