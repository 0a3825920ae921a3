package bustest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/leakcheck"
)

// Network creates members that can reach each other.
type Network interface {
	// NewMember starts a member. A name may be reused after the member that
	// had it was closed or crashed: the result is a new incarnation.
	// The member must be closed when t ends (t.Cleanup), and NewMember
	// fails t if it cannot start one.
	NewMember(t testing.TB, name string) bus.Bus
}

// Faults is implemented by Networks that can inject faults; the fault
// cases run only when it is.
type Faults interface {
	// Crash stops b abruptly: the others see it leave; b's calls return
	// bus.ErrClosed.
	Crash(t testing.TB, b bus.Bus)
	// Partition splits members into sides: members on different sides
	// cannot exchange anything.
	Partition(t testing.TB, sides ...[]bus.Bus)
	// Heal restores connectivity: the sides merge into one view.
	Heal(t testing.TB)
}

// Levels is implemented by Networks that do not provide every level;
// unsupported levels' cases are skipped.
type Levels interface{ Supports(bus.Level) bool }

// MaxBacklog bounds how many 1 KiB messages a Send at Reliable or above
// may accept towards a member that does not read before it blocks, unless
// the Network implements Backlog: the Backpressure case fails when more
// are accepted, taking it for an unbounded queue.
const MaxBacklog = 50_000

// Backlog is implemented by Networks that know how many messages of 1 KiB
// Sends at Reliable or above may accept towards a member that does not
// read before they block (queues and windows between sender and
// receiver). The Backpressure case then holds them to that bound instead
// of MaxBacklog, and UnreliableNeverBlocks sends one more than it.
type Backlog interface{ MaxBacklog() int }

// group is the group the cases use.
const group = "bustest"

type testCase struct {
	name   string
	faults bool
	run    func(e *env)
}

// cases lists the conformance cases in the order Run runs them. Names are
// stable: implementations may refer to them, as "TestX/Crash".
var cases = []testCase{
	{name: "JoinFirstView", run: testJoinFirstView},
	{name: "ViewsIdentical", run: testViewsIdentical},
	{name: "RecvContext", run: testRecvContext},
	{name: "SelfDelivery", run: testSelfDelivery},
	{name: "Reliable", run: func(e *env) { testConcurrentSenders(e, bus.Reliable) }},
	{name: "FIFO", run: func(e *env) { testConcurrentSenders(e, bus.FIFO) }},
	{name: "Agreed", run: func(e *env) { testConcurrentSenders(e, bus.Agreed) }},
	{name: "Causal", run: func(e *env) { testConcurrentSenders(e, bus.Causal) }},
	{name: "Safe", run: func(e *env) { testConcurrentSenders(e, bus.Safe) }},
	{name: "AgreedViewChange", run: testAgreedViewChange},
	{name: "OpenGroup", run: testOpenGroup},
	{name: "Leave", run: testLeave},
	{name: "Close", run: testClose},
	{name: "MessageSize", run: testMessageSize},
	{name: "BadGroup", run: testBadGroup},
	{name: "BadLevel", run: testBadLevel},
	{name: "AlreadyJoined", run: testAlreadyJoined},
	{name: "Restart", run: testRestart},
	{name: "UnreliableNeverBlocks", run: testUnreliableNeverBlocks},
	{name: "Backpressure", run: testBackpressure},
	{name: "GroupsIndependent", run: testGroupsIndependent},
	{name: "NoLeaks", run: testNoLeaks},
	{name: "Crash", faults: true, run: testCrash},
	{name: "RestartAfterCrash", faults: true, run: testRestartAfterCrash},
	{name: "Partition", faults: true, run: testPartition},
	{name: "Heal", faults: true, run: testHeal},
}

// Run runs every conformance case as a subtest of t; newNetwork is called
// once per case, inside the subtest. Cases run one after another (they
// check for leaked goroutines); fault cases are skipped unless the Network
// implements Faults, and cases of a level are skipped when it implements
// Levels and does not support the level.
func Run(t *testing.T, newNetwork func(t *testing.T) Network) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runCase(t, c, func() Network { return newNetwork(t) })
		})
	}
}

// runCase runs one case on t with the network newNetwork returns.
func runCase(t testing.TB, c testCase, newNetwork func() Network) {
	leakcheck.Check(t)
	e := &env{t: t}
	t.Cleanup(func() { // after the members are closed
		done := make(chan struct{})
		go func() {
			e.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(Timeout):
			t.Errorf("bustest: Send or Recv calls still blocked %v after the members were closed and their contexts canceled", Timeout)
		}
	})
	var cancel context.CancelFunc
	e.life, cancel = context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.net = newNetwork()
	if c.faults {
		f, ok := e.net.(Faults)
		if !ok {
			t.Skip("bustest: the Network does not implement Faults")
		}
		e.faults = f
	}
	c.run(e)
}

// env is one case's network and helpers.
type env struct {
	t      testing.TB
	net    Network
	faults Faults
	wg     sync.WaitGroup
	life   context.Context // canceled when the case ends
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	e.t.Cleanup(cancel)
	return ctx
}

// member starts a member.
func (e *env) member(name string) bus.Bus {
	e.t.Helper()
	b := e.net.NewMember(e.t, name)
	if b == nil {
		e.t.Fatalf("bustest: NewMember(%q) returned nil", name)
	}
	return b
}

// join joins b to name and records its stream.
func (e *env) join(b bus.Bus, name string) *Recorder {
	e.t.Helper()
	g, err := b.Join(e.ctx(), name)
	if err != nil {
		e.t.Fatalf("bustest: %s: Join(%q): %v", b.Self(), name, err)
	}
	if g.Name() != name {
		e.t.Errorf("bustest: %s: Join(%q) returned a group named %q", b.Self(), name, g.Name())
	}
	return Record(e.t, b.Self(), g)
}

// group starts members with names, joins them to the group one after
// another (each once every earlier member sees it) and returns them with
// their recorders, in join order.
func (e *env) group(names ...string) ([]bus.Bus, []*Recorder) {
	e.t.Helper()
	var bs []bus.Bus
	var rs []*Recorder
	for _, n := range names {
		b := e.member(n)
		bs = append(bs, b)
		rs = append(rs, e.join(b, group))
		e.settle(bs, rs)
	}
	return bs, rs
}

// settle waits until every recorder's last view has exactly the members bs.
func (e *env) settle(bs []bus.Bus, rs []*Recorder) {
	e.t.Helper()
	want := ids(bs...)
	for _, r := range rs {
		r.WaitMembers(e.t, want...)
	}
}

// supports skips the case when the Network says it does not support level.
func (e *env) supports(level bus.Level) bool {
	l, ok := e.net.(Levels)
	return !ok || l.Supports(level)
}

// requireLevel skips the case unless the Network provides level.
func (e *env) requireLevel(b bus.Bus, level bus.Level) {
	e.t.Helper()
	if !e.provides(b, level) {
		e.t.Skipf("bustest: the Network does not provide %s", level)
	}
}

// backlog returns the bound of the flow-control cases.
func (e *env) backlog() int {
	if b, ok := e.net.(Backlog); ok && b.MaxBacklog() > 0 {
		return b.MaxBacklog()
	}
	return MaxBacklog
}

// ordered returns the strongest level up to Agreed the Network supports
// that promises at least FIFO.
func (e *env) ordered() bus.Level {
	if e.supports(bus.Agreed) {
		return bus.Agreed
	}
	return bus.FIFO
}

// send sends Payload(tag, seq, 0) from b to the group and fails on error.
func (e *env) send(b bus.Bus, level bus.Level, tag string, seq uint64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := b.Send(ctx, group, level, Payload(tag, seq, 0)); err != nil {
		e.t.Fatalf("bustest: %s: Send(%s %q #%d): %v", b.Self(), level, tag, seq, err)
	}
}

// sendAll starts a goroutine that sends seqs [from, to) from b under tag
// and returns a channel that receives its error (nil) and closes.
func (e *env) sendAll(b bus.Bus, level bus.Level, tag string, from, to uint64) <-chan error {
	done := make(chan error, 1)
	e.wg.Go(func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		for seq := from; seq < to; seq++ {
			if err := b.Send(ctx, group, level, Payload(tag, seq, 0)); err != nil {
				done <- fmt.Errorf("%s: Send(%s %q #%d): %w", b.Self(), level, tag, seq, err)
				return
			}
		}
	})
	return done
}

// wait fails the case on the first error from the channels.
func (e *env) wait(chs ...<-chan error) {
	e.t.Helper()
	for _, ch := range chs {
		if err := <-ch; err != nil {
			e.t.Fatalf("bustest: %v", err)
		}
	}
}

// count returns how many messages in evs carry tag from sender.
func count(evs []bus.Event, sender bus.MemberID, tag string) int {
	n := 0
	for _, ev := range evs {
		if m, ok := ev.(*bus.Message); ok && m.Sender == sender {
			if t, _, err := ParsePayload(m.Data); err == nil && t == tag {
				n++
			}
		}
	}
	return n
}

// has reports whether evs contain the message tag #seq from sender.
func has(evs []bus.Event, sender bus.MemberID, tag string, seq uint64) bool {
	for _, ev := range evs {
		if m, ok := ev.(*bus.Message); ok && m.Sender == sender {
			if t, s, err := ParsePayload(m.Data); err == nil && t == tag && s == seq {
				return true
			}
		}
	}
	return false
}

// scanner indexes the Payload messages of a growing stream, reading each
// event once, so that waits on long streams stay linear.
type scanner struct {
	next   int
	counts map[streamKey]int
	seen   map[streamKey]map[uint64]bool
}

func (sc *scanner) update(evs []bus.Event) {
	if sc.counts == nil {
		sc.counts = make(map[streamKey]int)
		sc.seen = make(map[streamKey]map[uint64]bool)
	}
	for ; sc.next < len(evs); sc.next++ {
		m, ok := evs[sc.next].(*bus.Message)
		if !ok {
			continue
		}
		tag, seq, err := ParsePayload(m.Data)
		if err != nil {
			continue
		}
		k := streamKey{m.Sender, tag}
		sc.counts[k]++
		if sc.seen[k] == nil {
			sc.seen[k] = make(map[uint64]bool)
		}
		sc.seen[k][seq] = true
	}
}

func (sc *scanner) count(sender bus.MemberID, tag string) int {
	return sc.counts[streamKey{sender, tag}]
}

func (sc *scanner) has(sender bus.MemberID, tag string, seq uint64) bool {
	return sc.seen[streamKey{sender, tag}][seq]
}

// waitCount waits until r has n messages under tag from every sender.
func (e *env) waitCount(r *Recorder, tag string, n int, senders ...bus.Bus) {
	e.t.Helper()
	var sc scanner
	r.Wait(e.t, fmt.Sprintf("%d %q messages from each of %v", n, tag, ids(senders...)), func(evs []bus.Event) bool {
		sc.update(evs)
		for _, s := range senders {
			if sc.count(s.Self(), tag) < n {
				return false
			}
		}
		return true
	})
}

// waitHas waits until r has the message tag #seq from sender.
func (e *env) waitHas(r *Recorder, sender bus.Bus, tag string, seq uint64) {
	e.t.Helper()
	var sc scanner
	r.Wait(e.t, fmt.Sprintf("%q #%d from %s", tag, seq, sender.Self()), func(evs []bus.Event) bool {
		sc.update(evs)
		return sc.has(sender.Self(), tag, seq)
	})
}

// checkFIFO checks per-sender order in r's stream, as it arrives.
func (e *env) checkFIFO(r *Recorder, lateStart bool) {
	r.AddCheck(CheckMessages((&FIFO{LateStart: lateStart}).Check))
}

// checkOnce checks exactly-once delivery in r's stream, as it arrives,
// and returns the Tally.
func (e *env) checkOnce(r *Recorder) *Tally {
	var tl Tally
	r.AddCheck(CheckMessages(tl.Add))
	return &tl
}

// sameStreams checks that the recorders' streams agree wherever they
// overlap, and that each pair overlaps.
func (e *env) sameStreams(rs ...*Recorder) {
	e.t.Helper()
	e.compare("streams", func(r *Recorder) *Chain { return r.Chain() }, rs)
}

// sameViews checks that the recorders' view sequences agree wherever they
// overlap, and that each pair overlaps.
func (e *env) sameViews(rs ...*Recorder) {
	e.t.Helper()
	e.compare("views", func(r *Recorder) *Chain { return r.ViewChain() }, rs)
}

func (e *env) compare(what string, chain func(*Recorder) *Chain, rs []*Recorder) {
	e.t.Helper()
	chains := make([]*Chain, len(rs))
	for i, r := range rs {
		chains[i] = chain(r)
	}
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			n, err := CompareChains(chains[i], chains[j])
			switch {
			case err != nil:
				e.t.Errorf("bustest: %s of %s and %s: %v", what, rs[i].Self(), rs[j].Self(), err)
			case n == 0:
				e.t.Errorf("bustest: %s of %s and %s share no view", what, rs[i].Self(), rs[j].Self())
			}
		}
	}
}

func ids(bs ...bus.Bus) []bus.MemberID {
	out := make([]bus.MemberID, len(bs))
	for i, b := range bs {
		out[i] = b.Self()
	}
	return out
}

// messagesFrom returns the messages in evs from sender.
func messagesFrom(evs []bus.Event, sender bus.MemberID) []*bus.Message {
	var out []*bus.Message
	for _, ev := range evs {
		if m, ok := ev.(*bus.Message); ok && m.Sender == sender {
			out = append(out, m)
		}
	}
	return out
}

// indexOf returns the position of the view with id in evs, or -1.
func indexOf(evs []bus.Event, id bus.ViewID) int {
	return slices.IndexFunc(evs, func(ev bus.Event) bool {
		v, ok := ev.(*bus.View)
		return ok && v.ID == id
	})
}
