package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
)

// summaryInt returns the integer the pattern's first group matches in s,
// failing the test when it does not match.
func summaryInt(t *testing.T, s, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	require.NotNil(t, m, "no %q in:\n%s", pattern, s)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	return n
}

// summaryOf returns the summary part of the output.
func summaryOf(t *testing.T, out string) string {
	t.Helper()
	i := strings.LastIndex(out, "=== summary")
	require.GreaterOrEqual(t, i, 0, "no summary in:\n%s", out)
	return out[i:]
}

// TestDemo runs the whole demo on bus/cluster: purge, kill, recovery,
// clean exit.
func TestDemo(t *testing.T) {
	leakcheck.Check(t)
	var out bytes.Buffer
	start := time.Now()
	require.NoError(t, run(t.Context(), []string{"-duration", "6s", "-rate", "60"}, &out))
	t.Logf("demo ran in %v", time.Since(start))
	all := out.String()
	s := summaryOf(t, all)

	assert.Greater(t, summaryInt(t, s, `cache +hits (\d+)`), 0, s)
	assert.Greater(t, summaryInt(t, s, `misses (\d+)`), 0, s)
	assert.Greater(t, summaryInt(t, s, `purges applied (\d+)`), 0, s)
	assert.Greater(t, summaryInt(t, s, `lines logged (\d+)`), 0, s)
	assert.Greater(t, summaryInt(t, s, `users online (\d+)`), 0, s)
	assert.Contains(t, s, "every VIP owned", s)
	assert.Contains(t, s, "killed    web3", s)
	assert.Regexp(t, `recovery  view \d+ \[web1 web2\]`, s)
	assert.Regexp(t, `moved     every VIP of web3 moved after .*web3->web(1|2)`, s)
	assert.Greater(t, summaryInt(t, s, `logging   continued: (\d+) lines`), 0, s)
	assert.Contains(t, s, "shutdown  clean")

	// The frames show every section.
	for _, want := range []string{"MEMBERS AND VIEWS", "DELIVERY LEVELS", "CACHE", "ACCESS LOG",
		"WHO'S ONLINE", "VIRTUAL IPs", "EVENTS", "purged http://images.demo/thumbs/ on every member"} {
		assert.Contains(t, all, want)
	}
	// bus/cluster delivers Causal and Agreed: the last frame counts them at
	// the two survivors.
	for _, level := range []string{"causal", "agreed"} {
		rows := regexp.MustCompile(`(?m)^  `+level+` +(\d+) +(\d+) +\d+$`).FindAllStringSubmatch(all, -1)
		require.NotEmpty(t, rows, "no %s row with counts", level)
		last := rows[len(rows)-1]
		assert.NotEqual(t, "0", last[1], "%s at web1", level)
		assert.NotEqual(t, "0", last[2], "%s at web2", level)
	}
	assert.NotContains(t, all, "\x1b[", "no ANSI codes when the output is not a terminal")

	// The temporary directory is gone.
	m := regexp.MustCompile(`files in (\S+)`).FindStringSubmatch(all)
	require.NotNil(t, m)
	_, err := os.Stat(m[1])
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestDemoInterrupted runs the demo on bus/inproc in a given directory and
// interrupts it: it shuts down cleanly, prints the summary and leaves the
// directory with the access log.
func TestDemoInterrupted(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-bus", "inproc", "-members", "2", "-duration", "10m", "-dir", dir}, &out)
	}()
	// Interrupt once the access log has some lines.
	logFile := filepath.Join(dir, "logs", "access.log")
	deadline := time.Now().Add(30 * time.Second)
	for countLines(logFile) < 50 {
		require.True(t, time.Now().Before(deadline), "no access log lines within 30 s")
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30 s of the interrupt")
	}
	s := out.String()
	assert.Contains(t, s, "interrupted, shutting down")
	sum := summaryOf(t, s)
	lines := summaryInt(t, sum, `lines logged (\d+)`)
	assert.GreaterOrEqual(t, lines, 50)
	assert.Equal(t, lines, countLines(logFile), "the logger's count matches the file")
	assert.Contains(t, sum, "every VIP owned")
	assert.NotContains(t, sum, "killed")
	assert.NotContains(t, s, "unsupported", "bus/inproc provides every level")
}

func TestDemoBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nope"},
		{"-members", "0"},
		{"-members", "10"},
		{"-bus", "carrier-pigeon"},
		{"-duration", "0s"},
		{"-rate", "0"},
		{"-vips", "-1"},
		{"extra"},
	} {
		var out bytes.Buffer
		assert.Error(t, run(t.Context(), args, &out), "%q", args)
	}
}
