package leakcheck

import (
	"fmt"
	"testing"
	"time"
)

type fakeT struct {
	cleanups []func()
	errors   []string
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(format string, a ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, a...))
}
func (f *fakeT) finish() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestReportsLeak(t *testing.T) {
	ft := &fakeT{}
	Check(ft)
	stop := make(chan struct{})
	go func() { <-stop }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ft.finish()
	}()
	// The check waits Timeout before failing; release the goroutine only
	// after it had a chance to see it, by stopping it late.
	time.Sleep(50 * time.Millisecond)
	seen := 0
	for _, stack := range snapshot() {
		if interesting(stack) {
			seen++
		}
	}
	if seen == 0 {
		t.Fatal("the running goroutine was not seen")
	}
	close(stop)
	<-done
	if len(ft.errors) != 0 {
		t.Fatalf("a goroutine that exited within the timeout was reported: %v", ft.errors)
	}
}

func TestLeakFailsAfterTimeout(t *testing.T) {
	ft := &fakeT{}
	check(ft, 200*time.Millisecond)
	stop := make(chan struct{})
	go func() { <-stop }()
	ft.finish()
	close(stop)
	if len(ft.errors) != 1 {
		t.Fatalf("leak not reported: %v", ft.errors)
	}
}

func TestNoLeak(t *testing.T) {
	ft := &fakeT{}
	Check(ft)
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
	ft.finish()
	if len(ft.errors) != 0 {
		t.Fatalf("unexpected report: %v", ft.errors)
	}
}
