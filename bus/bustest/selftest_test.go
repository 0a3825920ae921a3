package bustest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
)

// The suite is tested on itself: bus/inproc must pass the cases, and
// versions of it with one defect each must fail the case meant to catch
// the defect.

// fakeTB records failures instead of failing the test, so that a case can
// be expected to fail.
type fakeTB struct {
	testing.TB // the real test, for what is not overridden

	mu       sync.Mutex
	failed   bool
	skipped  bool
	log      strings.Builder
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fakeTB) record(failed, skipped bool, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = f.failed || failed
	f.skipped = f.skipped || skipped
	f.log.WriteString(msg)
	f.log.WriteByte('\n')
}

func (f *fakeTB) Log(args ...any) { f.record(false, false, fmt.Sprint(args...)) }
func (f *fakeTB) Logf(format string, args ...any) {
	f.record(false, false, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Error(args ...any) { f.record(true, false, fmt.Sprint(args...)) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.record(true, false, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fail()    { f.record(true, false, "Fail") }
func (f *fakeTB) FailNow() { f.record(true, false, "FailNow"); runtime.Goexit() }
func (f *fakeTB) Fatal(args ...any) {
	f.record(true, false, fmt.Sprint(args...))
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.record(true, false, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) { f.record(false, true, fmt.Sprint(args...)); runtime.Goexit() }
func (f *fakeTB) SkipNow()         { f.record(false, true, "SkipNow"); runtime.Goexit() }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.record(false, true, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
func (f *fakeTB) Skipped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.skipped
}

// runFake runs the case named name on a fake TB and returns it once the
// case and its cleanups are done.
func runFake(t *testing.T, name string, newNetwork func(tb testing.TB) Network) *fakeTB {
	t.Helper()
	i := slices.IndexFunc(cases, func(c testCase) bool { return c.name == name })
	if i < 0 {
		t.Fatalf("no case %q", name)
	}
	f := &fakeTB{TB: t}
	inGoroutine := func(fn func()) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			fn()
		}()
		<-done
	}
	inGoroutine(func() { runCase(f, cases[i], func() Network { return newNetwork(f) }) })
	for {
		f.mu.Lock()
		n := len(f.cleanups)
		var fn func()
		if n > 0 {
			fn = f.cleanups[n-1]
			f.cleanups = f.cleanups[:n-1]
		}
		f.mu.Unlock()
		if fn == nil {
			return f
		}
		inGoroutine(fn)
	}
}

// defect changes what an inproc member does. Nil fields change nothing.
type defect struct {
	// recv rewrites the events a member receives: it is given the
	// member's name, the event and how many events the member received
	// before, and returns the events to deliver instead.
	recv func(member string, ev bus.Event, n int) []bus.Event
	// sendAfterClose makes Send of a closed member return nil.
	sendAfterClose bool
	// sizeDelta is added to MaxMessageSize.
	sizeDelta int
	// config configures the hub.
	config inproc.Config
	// backlog is what the Network declares as its MaxBacklog; 0 declares
	// nothing.
	backlog int
	// supports is what the Network declares through Levels; nil supports
	// every level.
	supports func(bus.Level) bool
}

type defectNet struct {
	hub *inproc.Hub
	d   *defect
}

type defectBus struct {
	*inproc.Bus
	d      *defect
	closed bool
	mu     sync.Mutex
}

type defectGroup struct {
	bus.Group
	b       *defectBus
	n       int
	pending []bus.Event
}

func newDefectNet(tb testing.TB, d *defect) Network {
	hub := inproc.New(d.config)
	tb.Cleanup(func() { hub.Close() })
	return defectNet{hub, d}
}

func (n defectNet) NewMember(t testing.TB, name string) bus.Bus {
	b, err := n.hub.NewMember(name)
	if err != nil {
		t.Fatalf("NewMember: %v", err)
	}
	db := &defectBus{Bus: b, d: n.d}
	t.Cleanup(func() { db.Close() })
	return db
}

func (n defectNet) MaxBacklog() int { return n.d.backlog }

func (n defectNet) Supports(l bus.Level) bool { return n.d.supports == nil || n.d.supports(l) }

func unwrap(b bus.Bus) *inproc.Bus { return b.(*defectBus).Bus }

func (n defectNet) Crash(t testing.TB, b bus.Bus) { n.hub.Crash(unwrap(b)) }
func (n defectNet) Heal(t testing.TB)             { n.hub.Heal() }
func (n defectNet) Partition(t testing.TB, sides ...[]bus.Bus) {
	ps := make([][]*inproc.Bus, len(sides))
	for i, side := range sides {
		for _, b := range side {
			ps[i] = append(ps[i], unwrap(b))
		}
	}
	n.hub.Partition(ps...)
}

func (b *defectBus) MaxMessageSize() int { return b.Bus.MaxMessageSize() + b.d.sizeDelta }

func (b *defectBus) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.Bus.Close()
}

func (b *defectBus) Send(ctx context.Context, group string, level bus.Level, data []byte) error {
	if level.Valid() && b.d.supports != nil && !b.d.supports(level) {
		return bus.ErrUnsupportedLevel
	}
	err := b.Bus.Send(ctx, group, level, data)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed && b.d.sendAfterClose {
		return nil
	}
	return err
}

func (b *defectBus) Join(ctx context.Context, group string) (bus.Group, error) {
	g, err := b.Bus.Join(ctx, group)
	if err != nil {
		return nil, err
	}
	return &defectGroup{Group: g, b: b}, nil
}

func (g *defectGroup) Send(ctx context.Context, level bus.Level, data []byte) error {
	return g.b.Send(ctx, g.Name(), level, data)
}

func (g *defectGroup) Recv(ctx context.Context) (bus.Event, error) {
	for len(g.pending) == 0 {
		ev, err := g.Group.Recv(ctx)
		if err != nil {
			return nil, err
		}
		if g.b.d.recv == nil {
			return ev, nil
		}
		g.pending = g.b.d.recv(g.b.Self().Name, ev, g.n)
		g.n++
	}
	ev := g.pending[0]
	g.pending = g.pending[1:]
	return ev, nil
}

// atMember applies f to the events of one member from its n-th on.
func atMember(name string, from int, f func(ev bus.Event) []bus.Event) func(string, bus.Event, int) []bus.Event {
	return func(member string, ev bus.Event, n int) []bus.Event {
		if member != name || n < from {
			return []bus.Event{ev}
		}
		return f(ev)
	}
}

// swapper delivers two consecutive messages of different senders, from
// the member's at-th event on, in the wrong order: per-sender order holds.
func swapper(name string, at int) func(string, bus.Event, int) []bus.Event {
	var held *bus.Message
	swapped := false
	return func(member string, ev bus.Event, n int) []bus.Event {
		m, ok := ev.(*bus.Message)
		switch {
		case member != name || !ok || n < at || swapped:
			return []bus.Event{ev}
		case held == nil:
			held = m
			return nil
		case held.Sender == m.Sender:
			out := []bus.Event{held}
			held = m
			return out
		default:
			swapped = true
			return []bus.Event{m, held}
		}
	}
}

// lateView delivers a member's view after the message that follows it,
// relabelling the message so that it claims the view before: only the
// position of the view in the stream is wrong.
func lateView(name string, nth int) func(string, bus.Event, int) []bus.Event {
	var last bus.ViewID
	var held *bus.View
	views := 0
	return func(member string, ev bus.Event, n int) []bus.Event {
		if member != name {
			return []bus.Event{ev}
		}
		switch ev := ev.(type) {
		case *bus.View:
			views++
			if views == nth {
				held = ev
				return nil
			}
			last = ev.ID
		case *bus.Message:
			if held != nil {
				m := *ev
				m.View = last
				out := []bus.Event{&m, held}
				last, held = held.ID, nil
				return out
			}
		}
		return []bus.Event{ev}
	}
}

func TestSuiteCatchesDefects(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite on defective buses")
	}
	once := func(f func(ev bus.Event) []bus.Event) func(ev bus.Event) []bus.Event {
		done := false
		return func(ev bus.Event) []bus.Event {
			if _, ok := ev.(*bus.Message); !ok || done {
				return []bus.Event{ev}
			}
			done = true
			return f(ev)
		}
	}
	for _, tc := range []struct {
		name   string
		cases  []string
		defect func() *defect
	}{
		{"none", []string{"JoinFirstView", "Reliable", "FIFO", "Agreed", "AgreedViewChange", "Close", "MessageSize", "Crash", "Heal"}, func() *defect { return &defect{} }},
		{"none, declared backlog", []string{"Backpressure", "UnreliableNeverBlocks"}, func() *defect { return &defect{backlog: 1024} }},
		{"lost message", []string{"FIFO", "Agreed"}, func() *defect {
			return &defect{recv: atMember("b", 20, once(func(bus.Event) []bus.Event { return nil }))}
		}},
		{"duplicate", []string{"Reliable", "Agreed"}, func() *defect {
			return &defect{recv: atMember("c", 30, once(func(ev bus.Event) []bus.Event { return []bus.Event{ev, ev} }))}
		}},
		{"swapped messages", []string{"Agreed", "AgreedViewChange"}, func() *defect { return &defect{recv: swapper("b", 40)} }},
		{"late view", []string{"AgreedViewChange"}, func() *defect { return &defect{recv: lateView("b", 4)} }},
		{"changed payload", []string{"Agreed"}, func() *defect {
			return &defect{recv: atMember("a", 50, once(func(ev bus.Event) []bus.Event {
				m := *ev.(*bus.Message)
				m.Data = Payload("s", 0, 0)
				return []bus.Event{&m}
			}))}
		}},
		{"wrong Self", []string{"JoinFirstView"}, func() *defect {
			return &defect{recv: atMember("b", 0, func(ev bus.Event) []bus.Event {
				if v, ok := ev.(*bus.View); ok {
					v = v.Clone()
					v.Self = (v.Self + 1) % len(v.Members)
					return []bus.Event{v}
				}
				return []bus.Event{ev}
			})}
		}},
		{"message in a stale view", []string{"Reliable"}, func() *defect {
			return &defect{recv: atMember("c", 10, once(func(ev bus.Event) []bus.Event {
				m := *ev.(*bus.Message)
				m.View = bus.ViewID{}
				return []bus.Event{&m}
			}))}
		}},
		{"merge forgets a side", []string{"Heal"}, func() *defect {
			return &defect{recv: atMember("d", 0, func(ev bus.Event) []bus.Event {
				if v, ok := ev.(*bus.View); ok && v.IsMerge() {
					v = v.Clone()
					v.Previous = v.Previous[:1]
					return []bus.Event{v}
				}
				return []bus.Event{ev}
			})}
		}},
		{"partition leak", []string{"Partition"}, func() *defect {
			var a bus.MemberID
			leaked := false
			return &defect{recv: atMember("c", 0, func(ev bus.Event) []bus.Event {
				if v, ok := ev.(*bus.View); ok && a.IsZero() {
					a = v.Members[0]
				}
				m, ok := ev.(*bus.Message)
				if !ok || leaked {
					return []bus.Event{ev}
				}
				if tag, seq, _ := ParsePayload(m.Data); tag == "pc" {
					leaked = true
					fake := *m
					fake.Sender, fake.Data = a, Payload("pa", seq, 0)
					return []bus.Event{m, &fake}
				}
				return []bus.Event{ev}
			})}
		}},
		{"Send after Close", []string{"Close"}, func() *defect { return &defect{sendAfterClose: true} }},
		{"no size limit", []string{"MessageSize"}, func() *defect { return &defect{sizeDelta: -1} }},
		{"unbounded queue", []string{"Backpressure"}, func() *defect { return &defect{backlog: 1024, config: inproc.Config{QueueLen: 2048}} }},
	} {
		for _, name := range tc.cases {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				f := runFake(t, name, func(tb testing.TB) Network { return newDefectNet(tb, tc.defect()) })
				switch {
				case f.Skipped():
					t.Fatalf("case skipped:\n%s", f.log.String())
				case strings.HasPrefix(tc.name, "none") && f.Failed():
					t.Errorf("inproc fails %s:\n%s", name, f.log.String())
				case !strings.HasPrefix(tc.name, "none") && !f.Failed():
					t.Errorf("%s does not catch the defect", name)
				default:
					t.Logf("%s", f.log.String())
				}
			})
		}
	}
}

// TestSuiteLevels runs the suite on a Network that declares no total
// order, as an implementation without a sequencer does: the total-order
// cases skip and the others fall back to FIFO.
func TestSuiteLevels(t *testing.T) {
	if testing.Short() {
		t.Skip("runs suite cases")
	}
	noTotal := func(tb testing.TB) Network {
		return newDefectNet(tb, &defect{backlog: 1024, supports: func(l bus.Level) bool { return !l.Total() }})
	}
	for _, name := range []string{"Agreed", "Causal", "Safe", "AgreedViewChange"} {
		if f := runFake(t, name, noTotal); !f.Skipped() || f.Failed() {
			t.Errorf("%s: skipped %v, failed %v, want a skip:\n%s", name, f.Skipped(), f.Failed(), f.log.String())
		}
	}
	for _, name := range []string{"SelfDelivery", "OpenGroup", "Restart", "Backpressure", "Crash", "Heal"} {
		if f := runFake(t, name, noTotal); f.Skipped() || f.Failed() {
			t.Errorf("%s: skipped %v, failed %v, want a pass:\n%s", name, f.Skipped(), f.Failed(), f.log.String())
		}
	}
}
