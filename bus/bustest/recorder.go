package bustest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// Timeout bounds every wait of the suite and of Recorder.Wait. Waits end
// as soon as their condition holds, so the bound only matters when an
// implementation is wrong or very slow.
const Timeout = 20 * time.Second

// Recorder receives one member's stream of a group in its own goroutine,
// keeps every event and checks each with a StreamChecker. Record starts
// it; it stops when Recv returns an error (bus.ErrClosed after Leave or
// Close) or on Stop, and at the latest when the test ends, which then
// fails if the stream broke a StreamChecker rule.
//
// Methods are safe for concurrent use; Wait, WaitView and WaitDone must be
// called from the test's goroutine.
type Recorder struct {
	self  bus.MemberID
	group string
	g     bus.Group

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	events   []bus.Event
	changed  chan struct{} // closed and replaced on every change
	err      error         // why the reader stopped
	violated error         // first StreamChecker or AddCheck error
	checks   []func(bus.Event) error
}

// Record starts recording g, the membership of member self. The Recorder
// becomes the only reader of g.
func Record(t testing.TB, self bus.MemberID, g bus.Group) *Recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{
		self:    self,
		group:   g.Name(),
		g:       g,
		cancel:  cancel,
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	go r.run(ctx, g)
	t.Cleanup(func() {
		t.Helper()
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(Timeout):
			t.Errorf("bustest: %s: Recv in %q did not return %v after its context was canceled", r.self, r.group, Timeout)
		}
		if err := r.Violation(); err != nil {
			t.Errorf("bustest: stream of %s in %q: %v", r.self, r.group, err)
		}
	})
	return r
}

func (r *Recorder) run(ctx context.Context, g bus.Group) {
	defer close(r.done)
	check := NewStreamChecker(r.self, r.group)
	for {
		ev, err := g.Recv(ctx)
		r.mu.Lock()
		if err != nil {
			r.err = err
		} else {
			r.events = append(r.events, ev)
			if r.violated == nil {
				r.violated = check.Check(ev)
			}
			for _, c := range r.checks {
				if r.violated != nil {
					break
				}
				r.violated = c(ev)
			}
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Self returns the member whose stream is recorded.
func (r *Recorder) Self() bus.MemberID { return r.self }

// AddCheck adds a check run on every event, those received so far first:
// the first error counts as a violation, which fails Wait at once and the
// test when it ends. Checks run in the reader's goroutine.
func (r *Recorder) AddCheck(check func(bus.Event) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		if r.violated != nil {
			break
		}
		r.violated = check(ev)
	}
	r.checks = append(r.checks, check)
}

// Group returns the recorded group membership, for Send and Leave. Do not
// call its Recv while the Recorder runs.
func (r *Recorder) Group() bus.Group { return r.g }

// Stop stops reading and waits for the reader to return. Events not yet
// received stay in the group's queue. Stop is idempotent.
func (r *Recorder) Stop() {
	r.cancel()
	<-r.done
}

// Done is closed when the reader has stopped.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Err returns the error that stopped the reader, or nil while it runs.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Violation returns the first StreamChecker or AddCheck error of the
// stream, or nil.
func (r *Recorder) Violation() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.violated
}

// Events returns the events received so far. The slice is shared: do not
// modify it.
func (r *Recorder) Events() []bus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[:len(r.events):len(r.events)]
}

// Len returns the number of events received so far.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Views returns the views received so far.
func (r *Recorder) Views() []*bus.View {
	var out []*bus.View
	for _, ev := range r.Events() {
		if v, ok := ev.(*bus.View); ok {
			out = append(out, v)
		}
	}
	return out
}

// LastView returns the last view received, or nil.
func (r *Recorder) LastView() *bus.View {
	evs := r.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if v, ok := evs[i].(*bus.View); ok {
			return v
		}
	}
	return nil
}

// Messages returns the messages received so far.
func (r *Recorder) Messages() []*bus.Message {
	var out []*bus.Message
	for _, ev := range r.Events() {
		if m, ok := ev.(*bus.Message); ok {
			out = append(out, m)
		}
	}
	return out
}

// Chain returns the hash chain of the events received so far.
func (r *Recorder) Chain() *Chain {
	var c Chain
	for _, ev := range r.Events() {
		c.Add(ev)
	}
	return &c
}

// ViewChain returns the hash chain of the views received so far.
func (r *Recorder) ViewChain() *Chain {
	var c Chain
	for _, v := range r.Views() {
		c.Add(v)
	}
	return &c
}

// errStopped reports a wait that cannot succeed any more.
var errStopped = errors.New("recorder stopped")

// Wait waits until cond holds for the events received so far, and fails
// t if it does not within Timeout, if the reader stops first, or if the
// stream breaks a StreamChecker rule. cond is called again after every
// event; it must not modify the slice.
func (r *Recorder) Wait(t testing.TB, what string, cond func(events []bus.Event) bool) {
	t.Helper()
	if err := r.wait(Timeout, cond); err != nil {
		t.Fatalf("bustest: %s waiting for %s: %v (last view %v, %d events)", r.self, what, err, r.LastView(), r.Len())
	}
}

func (r *Recorder) wait(timeout time.Duration, cond func([]bus.Event) bool) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		evs, changed, stopErr, violated := r.events[:len(r.events):len(r.events)], r.changed, r.err, r.violated
		r.mu.Unlock()
		if violated != nil {
			return violated
		}
		if cond(evs) {
			return nil
		}
		if stopErr != nil {
			return fmt.Errorf("%w: %w", errStopped, stopErr)
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("timed out after %v", timeout)
		}
	}
}

// WaitView waits for a view at position from or later in the stream for
// which cond holds, and returns the first such view and its position.
func (r *Recorder) WaitView(t testing.TB, from int, what string, cond func(v *bus.View) bool) (*bus.View, int) {
	t.Helper()
	var found *bus.View
	at := -1
	r.Wait(t, what, func(evs []bus.Event) bool {
		for i := max(from, 0); i < len(evs); i++ {
			if v, ok := evs[i].(*bus.View); ok && cond(v) {
				found, at = v, i
				return true
			}
		}
		return false
	})
	return found, at
}

// WaitMembers waits until the last view received has exactly members, in
// any order, and returns it.
func (r *Recorder) WaitMembers(t testing.TB, members ...bus.MemberID) *bus.View {
	t.Helper()
	var found *bus.View
	r.Wait(t, fmt.Sprintf("a view of %v", members), func(evs []bus.Event) bool {
		for i := len(evs) - 1; i >= 0; i-- {
			if v, ok := evs[i].(*bus.View); ok {
				if sameSet(v.Members, members) {
					found = v
					return true
				}
				return false
			}
		}
		return false
	})
	return found
}

// WaitDone waits for the reader to stop by itself (Recv returned an
// error) and returns that error; it fails t after Timeout.
func (r *Recorder) WaitDone(t testing.TB) error {
	t.Helper()
	select {
	case <-r.done:
		return r.Err()
	case <-time.After(Timeout):
		t.Fatalf("bustest: %s: Recv in %q still running after %v", r.self, r.group, Timeout)
		return nil
	}
}
