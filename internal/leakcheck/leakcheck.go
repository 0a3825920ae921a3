// Package leakcheck fails a test whose goroutines outlive it.
//
// Call Check first in a test (before anything registers a Cleanup): it
// records the goroutines running now and, when the test ends, waits up to
// a deadline for every goroutine started since to exit, then reports the
// stacks of those that did not.
package leakcheck

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"time"
)

// TB is the part of testing.TB that Check uses.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
}

// Timeout bounds how long Check waits for goroutines to exit.
const Timeout = 10 * time.Second

// Check registers a Cleanup on t that fails t if goroutines started after
// Check are still running Timeout after the test (and its other cleanups)
// finished.
func Check(t TB) {
	t.Helper()
	check(t, Timeout)
}

func check(t TB, timeout time.Duration) {
	t.Helper()
	before := snapshot()
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(timeout)
		var leaked []string
		for {
			leaked = leaked[:0]
			for id, stack := range snapshot() {
				if _, ok := before[id]; !ok && interesting(stack) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(leaked) > 0 {
			t.Errorf("leakcheck: %d goroutine(s) still running after the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}

func snapshot() map[int]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[int]string)
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		s := string(g)
		// "goroutine 17 [running]:"
		header, _, _ := strings.Cut(s, "\n")
		var id int
		if _, err := fmt.Sscanf(header, "goroutine %d", &id); err != nil {
			continue
		}
		if strings.Contains(header, "[running]") && strings.Contains(s, "leakcheck.snapshot") {
			continue // ourselves
		}
		out[id] = s
	}
	return out
}

// machinery marks goroutines that belong to the testing package or the
// runtime rather than to the code under test.
var machinery = []string{
	"testing.tRunner(",
	"testing.(*M).",
	"testing.runTests(",
	"testing.runFuzzing(",
	"testing.(*F).Fuzz",
	"os/signal.signal_recv(",
	"os/signal.loop(",
	"runtime.ReadTrace(",
	"runtime.ensureSigM",
}

func interesting(stack string) bool {
	for _, m := range machinery {
		if strings.Contains(stack, m) {
			return false
		}
	}
	return true
}
