package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain runs logtop itself when the tmux test starts this binary in a
// terminal.
func TestMain(m *testing.M) {
	if args := os.Getenv("LOGTOP_CHILD_ARGS"); args != "" {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		if err := run(ctx, strings.Fields(args), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLogtopInTmux runs logtop in a real terminal (a detached tmux session
// of 100×30) and reads the screen with capture-pane while a publisher sends.
func TestLogtopInTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("tmux is required (PEERSCALE_REQUIRE_TOOLS=1) but not installed: %v", err)
		}
		t.Skip("tmux not installed (apt-get install tmux); skipping")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pb, err := cluster.New("web7", cluster.LANConfig())
	require.NoError(t, err)
	defer pb.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for seq := uint64(1); ctx.Err() == nil; seq++ {
			msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web7", Epoch: 1, FirstSeq: seq, Count: 1})
			msg = logwire.AppendRecord(msg, &logwire.Record{Status: 404, Bytes: 10, VHost: "tmux.example", URL: "/in-a-terminal", Line: []byte("x")})
			pb.Send(ctx, "www", bus.FIFO, msg)
			time.Sleep(20 * time.Millisecond)
		}
	})

	session := fmt.Sprintf("logtop-test-%d", os.Getpid())
	socket := "-Lpeerscale-test"
	cmd := exec.Command(tmux, socket, "new-session", "-d", "-s", session, "-x", "100", "-y", "30",
		"-e", "LOGTOP_CHILD_ARGS=-interval 200ms -seeds "+pb.GossipAddr()+" -name top-tmux",
		os.Args[0]+" -test.run=^$")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { exec.Command(tmux, socket, "kill-session", "-t", session).Run() })

	var screen string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := exec.Command(tmux, socket, "capture-pane", "-p", "-t", session).Output()
		require.NoError(t, err)
		screen = string(b)
		if strings.Contains(screen, "web7") && strings.Contains(screen, "/in-a-terminal") {
			break
		}
		require.True(t, time.Now().Before(deadline), "logtop never showed the traffic; screen:\n%s", screen)
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(screen, "\n")
	assert.True(t, strings.HasPrefix(lines[0], "logtop "), "the screen is cleared and redrawn from the top: %q", lines[0])
	assert.Regexp(t, `\nweb7 +\d+\.\d +[\d.]+ \w?B +0 +0 +\d+ +0`, screen, "4xx counted for web7")
	for _, l := range lines {
		assert.LessOrEqual(t, len(l), 100)
	}
	t.Logf("screen:\n%s", screen)
}
