package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary act as a member process: "run" starts
// members by executing itself.
func TestMain(m *testing.M) {
	if os.Getenv("BUSBENCH_MEMBER") == "1" {
		if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runSummary(t *testing.T, args ...string) Summary {
	t.Helper()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"run"}, args...), &out)
	var s Summary
	require.NoError(t, json.Unmarshal([]byte(out.String()), &s), "output: %s", out.String())
	require.NoError(t, err, "problems: %v", s.Problems)
	return s
}

func TestThreeProcesses(t *testing.T) {
	s := runSummary(t, "-n", "3", "-duration", "1s", "-rate", "500")
	assert.True(t, s.FIFOOK, s.Problems)
	assert.True(t, s.ViewsOK, s.Problems)
	assert.Empty(t, s.Problems)
	require.Len(t, s.Reports, 3)
	for _, r := range s.Reports {
		assert.Len(t, r.LastView, 3)
		assert.Positive(t, r.Sent)
	}
	t.Logf("%.0f sends/s, p50 %.0f µs, p99 %.0f µs", s.SendsPerSec, s.P50us, s.P99us)
}

// TestSIGKILLMidStream kills one member process while all send: the
// survivors install a view without it, keep FIFO order and receive
// everything the other survivor sent.
func TestSIGKILLMidStream(t *testing.T) {
	s := runSummary(t, "-n", "3", "-duration", "3s", "-rate", "500", "-kill-after", "1500ms")
	assert.Equal(t, "m2", s.Killed)
	assert.True(t, s.FIFOOK, s.Problems)
	assert.True(t, s.ViewsOK, s.Problems)
	assert.Empty(t, s.Problems)
	require.Len(t, s.Reports, 2)
	for _, r := range s.Reports {
		assert.Len(t, r.LastView, 2)
		assert.Positive(t, r.Received[r.Self])
	}
	t.Logf("detected in %v ms", s.DetectMs)
}
