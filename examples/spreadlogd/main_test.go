package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/assert"
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

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publisher sends numbered records until a durable ack covers them.
type publisher struct {
	t    *testing.T
	b    *cluster.Bus
	ack  bus.Group
	mu   sync.Mutex
	next uint64 // acknowledged below
}

func (p *publisher) ackLoop(ctx context.Context) {
	for {
		ev, err := p.ack.Recv(ctx)
		if err != nil {
			return
		}
		if m, ok := ev.(*bus.Message); ok {
			a, err := logwire.DecodeAck(m.Data)
			if err != nil {
				p.t.Errorf("bad ack: %v", err)
				continue
			}
			for _, e := range a.Entries {
				p.mu.Lock()
				if a.Flags&logwire.AckDurable != 0 && e.Publisher == "web1" && e.Next > p.next {
					p.next = e.Next
				}
				p.mu.Unlock()
			}
		}
	}
}

func line(seq uint64) string {
	return fmt.Sprintf(`127.0.0.1 - - [02/Jan/2000:12:00:00 +0000] "GET /page/%d HTTP/1.1" 200 %d "-" "smoke"`, seq, seq)
}

// publish sends records first..last (one batch) until they are acknowledged.
func (p *publisher) publish(ctx context.Context, first, last uint64) {
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: first, Count: uint32(last - first + 1)})
	for s := first; s <= last; s++ {
		msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, Bytes: int64(s), URL: "/page", Line: []byte(line(s))})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		require.NoError(p.t, p.b.Send(ctx, "www", bus.FIFO, msg))
		for range 25 {
			p.mu.Lock()
			done := p.next > last
			p.mu.Unlock()
			if done {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("records %d-%d never acknowledged", first, last)
		}
	}
}

func TestSpreadlogdSmoke(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access_log")
	conf := filepath.Join(dir, "spreadlogd.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
Name = logger-a
StateFile = %q
FsyncInterval = 20ms
Log {
    Group = www
    File = %q
}
`, filepath.Join(dir, "state"), logPath)), 0o644))

	var check syncBuffer
	require.NoError(t, run(t.Context(), []string{"-config", conf, "-check"}, &check))
	assert.Contains(t, check.String(), "Group = \"www\"")
	var sample syncBuffer
	require.NoError(t, run(t.Context(), []string{"-config", "spreadlogd.conf", "-check"}, &sample), "the sample configuration parses")
	assert.Contains(t, sample.String(), `Pipe = "/usr/bin/logger -t www-access"`)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pcfg := cluster.LANConfig()
	pb, err := cluster.New("web1", pcfg)
	require.NoError(t, err)
	defer pb.Close()
	ackG, err := pb.Join(ctx, "www.ack")
	require.NoError(t, err)
	p := &publisher{t: t, b: pb, ack: ackG, next: 1}
	var wg sync.WaitGroup
	wg.Go(func() { p.ackLoop(ctx) })

	var out syncBuffer
	runErr := make(chan error, 1)
	go func() {
		runErr <- run(ctx, []string{"-config", conf, "-seeds", pb.GossipAddr(), "-metrics", "127.0.0.1:0"}, &out)
	}()
	eventually(t, "spreadlogd to start", func() bool { return strings.Contains(out.String(), "logging www") })

	p.publish(ctx, 1, 10)
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	var want strings.Builder
	for s := uint64(1); s <= 10; s++ {
		want.WriteString(line(s) + "\n")
	}
	assert.Equal(t, want.String(), string(data), "acknowledged records are on disk")

	m := regexp.MustCompile(`metrics on (http://\S+)`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	resp, err := http.Get(m[1])
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), "spreadlogd_records_total 10")

	// logrotate moves the file away and sends SIGHUP.
	require.NoError(t, os.Rename(logPath, logPath+".1"))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	eventually(t, "the reopen", func() bool { return strings.Contains(out.String(), "reopened files") })
	p.publish(ctx, 11, 12)
	data, err = os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Equal(t, line(11)+"\n"+line(12)+"\n", string(data))

	cancel()
	require.NoError(t, <-runErr)
	assert.Contains(t, out.String(), "stopped after 12 records")
	wg.Wait()
	require.NoError(t, pb.Close())
}
