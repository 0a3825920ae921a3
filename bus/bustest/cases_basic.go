package bustest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// reliableLevels lists the levels that promise delivery, weakest first.
var reliableLevels = []bus.Level{bus.Reliable, bus.FIFO, bus.Causal, bus.Agreed, bus.Safe}

// provides reports whether the Network provides level: Levels allows it
// and, for Safe, a Send does not return ErrUnsupportedLevel.
func (e *env) provides(b bus.Bus, level bus.Level) bool {
	e.t.Helper()
	if !e.supports(level) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	err := b.Send(ctx, "bustest-probe", level, []byte("probe"))
	switch {
	case err == nil:
		return true
	case errors.Is(err, bus.ErrUnsupportedLevel) && level == bus.Safe:
		return false
	case errors.Is(err, bus.ErrUnsupportedLevel):
		e.t.Fatalf("bustest: Send at %s: %v (only Safe is optional; a Network without %s implements Levels)", level, err, level)
	default:
		e.t.Fatalf("bustest: Send at %s to a group without members: %v", level, err)
	}
	return false
}

func testJoinFirstView(e *env) {
	t := e.t
	a := e.member("a")
	ra := e.join(a, group)
	first, at := ra.WaitView(t, 0, "the first view", func(*bus.View) bool { return true })
	if at != 0 {
		t.Fatalf("first event is %v, want a view", ra.Events()[0])
	}
	if len(first.Members) != 1 || first.Members[0] != a.Self() || first.Self != 0 || !first.IsLeader() {
		t.Errorf("first view of a lone member: %v Self %d, want [%s] Self 0", first, first.Self, a.Self())
	}
	if first.Group != group || first.ID.IsZero() || len(first.Previous) != 0 {
		t.Errorf("first view %v: want group %q, a non-zero id and no Previous (the group's first view), got Previous %v", first, group, first.Previous)
	}

	// A member that joins while messages flow also gets a view first.
	flow := e.sendAll(a, bus.FIFO, "flow", 0, 50)
	b := e.member("b")
	rb := e.join(b, group)
	v, at := rb.WaitView(t, 0, "the first view", func(*bus.View) bool { return true })
	if at != 0 {
		t.Fatalf("first event of a joiner is %v, want a view", rb.Events()[0])
	}
	if want := []bus.MemberID{a.Self(), b.Self()}; !slices.Equal(v.Members, want) || v.Self != 1 {
		t.Errorf("first view of the second member: %v Self %d, want %v Self 1", v, v.Self, want)
	}
	e.wait(flow)
	av := ra.WaitMembers(t, a.Self(), b.Self())
	if !slices.Equal(av.Joined, []bus.MemberID{b.Self()}) || av.Self != 0 || av.ID != v.ID {
		t.Errorf("a's view after b joined: %v Self %d, want %s with Joined [%s] Self 0", av, av.Self, v.ID, b.Self())
	}
}

func testViewsIdentical(e *env) {
	t := e.t
	bs, rs := e.group("a", "b", "c", "d")
	for _, r := range rs {
		v := r.LastView()
		if !slices.Equal(v.Members, ids(bs...)) {
			t.Errorf("%s: members %v, want oldest first %v", r.Self(), v.Members, ids(bs...))
		}
		if v.ID != rs[0].LastView().ID {
			t.Errorf("%s: view %s, a has %s", r.Self(), v.ID, rs[0].LastView().ID)
		}
	}
	ctx := e.ctx()
	if err := rs[1].Group().Leave(ctx); err != nil {
		t.Fatalf("b: Leave: %v", err)
	}
	if err := bs[2].Close(); err != nil {
		t.Fatalf("c: Close: %v", err)
	}
	for _, r := range []*Recorder{rs[0], rs[3]} {
		v := r.WaitMembers(t, bs[0].Self(), bs[3].Self())
		if !slices.Equal(v.Members, ids(bs[0], bs[3])) {
			t.Errorf("%s: members %v, want oldest first %v", r.Self(), v.Members, ids(bs[0], bs[3]))
		}
	}
	if err := rs[0].Group().Leave(ctx); err != nil {
		t.Fatalf("a: Leave: %v", err)
	}
	v := rs[3].WaitMembers(t, bs[3].Self())
	if v.Leader() != bs[3].Self() || !v.IsLeader() {
		t.Errorf("d alone: leader %s, IsLeader %v", v.Leader(), v.IsLeader())
	}
	for _, r := range rs[:3] {
		if err := r.WaitDone(t); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("%s: Recv after Leave or Close: %v, want ErrClosed", r.Self(), err)
		}
	}
	e.sameViews(rs...)
}

func testSelfDelivery(e *env) {
	t := e.t
	a := e.member("a")
	ra := e.join(a, group)
	e.send(a, bus.FIFO, "alone", 0)
	e.waitHas(ra, a, "alone", 0)

	bs, rs := []bus.Bus{a, e.member("b")}, []*Recorder{ra}
	rs = append(rs, e.join(bs[1], group))
	e.settle(bs, rs)
	for _, r := range rs {
		e.checkOnce(r) // also rejects bodies that are not Payloads
	}
	for _, level := range reliableLevels {
		if !e.provides(a, level) {
			t.Logf("%s not provided: skipped", level)
			continue
		}
		tag := "self-" + level.String()
		// The caller may reuse data once Send returns.
		data := Payload(tag, 0, 64)
		if err := a.Send(e.ctx(), group, level, data); err != nil {
			t.Fatalf("Send at %s: %v", level, err)
		}
		for i := range data {
			data[i] = 'X'
		}
		for _, r := range rs {
			e.waitHas(r, a, tag, 0)
			for _, m := range r.Messages() {
				if tg, _, _ := ParsePayload(m.Data); tg == tag && (m.Level != level || m.Group != group) {
					t.Errorf("%s: %v, want level %s in %q", r.Self(), m, level, group)
				}
			}
		}
	}
}

func testOpenGroup(e *env) {
	t := e.t
	bs, rs := e.group("a", "b")
	n := e.member("n")
	var seq uint64
	for _, level := range reliableLevels {
		if e.provides(n, level) {
			e.send(n, level, "open", seq)
			seq++
		}
	}
	for _, r := range rs {
		e.waitCount(r, "open", int(seq), n)
		for _, v := range r.Views() {
			if v.Contains(n.Self()) {
				t.Errorf("%s: sending made the non-member a member: %v", r.Self(), v)
			}
		}
	}
	ctx := e.ctx()
	if err := n.Send(ctx, "bustest-nobody", bus.FIFO, Payload("nobody", 0, 0)); err != nil {
		t.Errorf("Send to a group without members: %v", err)
	}
	if err := n.Send(ctx, group, bus.Unreliable, Payload("open-unreliable", 0, 0)); err != nil {
		t.Errorf("Send at unreliable from a non-member: %v", err)
	}

	// Joining later does not deliver what it sent as a non-member.
	rn := e.join(n, group)
	e.settle(append(bs, n), append(rs, rn))
	e.send(bs[0], bus.FIFO, "after", 0)
	e.waitHas(rn, bs[0], "after", 0)
	for _, m := range rn.Messages() {
		if tag, _, _ := ParsePayload(m.Data); strings.HasPrefix(tag, "open") {
			t.Errorf("n received %v that it sent before joining", m)
		}
	}
	for _, r := range rs {
		e.checkOnce(r)
	}
}

func testLeave(e *env) {
	t := e.t
	bs, rs := e.group("a", "b", "c")
	a, b, c := bs[0], bs[1], bs[2]
	g := rs[1].Group()
	ctx := e.ctx()
	if err := g.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := rs[1].WaitDone(t); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Recv after Leave: %v, want ErrClosed", err)
	}
	for _, r := range []*Recorder{rs[0], rs[2]} {
		v := r.WaitMembers(t, a.Self(), c.Self())
		if !slices.Equal(v.Left, []bus.MemberID{b.Self()}) {
			t.Errorf("%s: view after b left: Left = %v, want [%s]", r.Self(), v.Left, b.Self())
		}
	}
	if _, err := g.Recv(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Recv on the group left: %v, want ErrClosed", err)
	}
	if err := g.Send(ctx, bus.FIFO, Payload("left", 0, 0)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Group.Send after Leave: %v, want ErrClosed", err)
	}
	if err := g.Leave(ctx); err != nil {
		t.Errorf("second Leave: %v, want nil (idempotent)", err)
	}

	// The Bus still sends to the group as a non-member, and may join again.
	if err := b.Send(ctx, group, bus.FIFO, Payload("open", 0, 0)); err != nil {
		t.Fatalf("Bus.Send after Leave: %v", err)
	}
	e.waitHas(rs[0], b, "open", 0)
	rb := e.join(b, group)
	for _, r := range []*Recorder{rs[0], rs[2], rb} {
		v := r.WaitMembers(t, a.Self(), c.Self(), b.Self())
		if want := ids(a, c, b); !slices.Equal(v.Members, want) {
			t.Errorf("%s: view after b joined again: %v, want %v", r.Self(), v.Members, want)
		}
	}
	e.send(b, bus.FIFO, "back", 0)
	for _, r := range []*Recorder{rs[0], rs[2], rb} {
		e.waitHas(r, b, "back", 0)
	}
	if has(rb.Events(), b.Self(), "open", 0) {
		t.Errorf("b received its message sent while out of the group")
	}
	e.sameViews(rs[0], rs[2], rb)
}

func testClose(e *env) {
	t := e.t
	bs, rs := e.group("a", "b")
	a, b := bs[0], bs[1]
	r2 := e.join(a, "bustest-2")
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, r := range []*Recorder{rs[0], r2} {
		if err := r.WaitDone(t); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Recv in %q after Close: %v, want ErrClosed", r.group, err)
		}
	}
	v := rs[1].WaitMembers(t, b.Self())
	if !slices.Equal(v.Left, []bus.MemberID{a.Self()}) {
		t.Errorf("b's view after a closed: Left = %v, want [%s]", v.Left, a.Self())
	}
	if err := a.Close(); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("second Close: %v, want nil or ErrClosed", err)
	}
	ctx := e.ctx()
	if _, err := a.Join(ctx, "bustest-3"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Join after Close: %v, want ErrClosed", err)
	}
	for _, level := range []bus.Level{bus.Unreliable, bus.FIFO} {
		if err := a.Send(ctx, group, level, Payload("closed", 0, 0)); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Send at %s after Close: %v, want ErrClosed", level, err)
		}
	}
	g := rs[0].Group()
	if _, err := g.Recv(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Group.Recv after Close: %v, want ErrClosed", err)
	}
	if err := g.Send(ctx, bus.FIFO, Payload("closed", 1, 0)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Group.Send after Close: %v, want ErrClosed", err)
	}
	if err := g.Leave(ctx); err != nil && !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Group.Leave after Close: %v, want nil or ErrClosed", err)
	}
	if a.Self().IsZero() {
		t.Errorf("Self after Close is zero")
	}
	_ = a.MaxMessageSize()
	e.send(b, bus.FIFO, "still", 0)
	e.waitHas(rs[1], b, "still", 0)
	if n := len(messagesFrom(rs[1].Events(), a.Self())); n != 0 {
		t.Errorf("b received %d messages from a after a closed", n)
	}
}

// maxMessageSize is the largest MaxMessageSize the MessageSize case sends.
const maxMessageSize = 64 << 20

func testMessageSize(e *env) {
	t := e.t
	bs, rs := e.group("a", "b")
	a := bs[0]
	limit := a.MaxMessageSize()
	if limit < 64 {
		t.Fatalf("MaxMessageSize = %d: the suite needs at least 64 bytes", limit)
	}
	if limit > maxMessageSize {
		t.Skipf("MaxMessageSize = %d: larger than the %d bytes this case sends", limit, maxMessageSize)
	}
	big := Payload("max", 0, limit)
	ctx := e.ctx()
	if err := a.Send(ctx, group, bus.FIFO, big); err != nil {
		t.Fatalf("Send of exactly MaxMessageSize (%d bytes): %v", limit, err)
	}
	tooBig := Payload("max", 1, limit+1)
	for _, level := range []bus.Level{bus.Unreliable, bus.FIFO} {
		if err := a.Send(ctx, group, level, tooBig); !errors.Is(err, bus.ErrTooLarge) {
			t.Errorf("Send at %s of MaxMessageSize+1 bytes: %v, want ErrTooLarge", level, err)
		}
	}
	if err := rs[1].Group().Send(ctx, bus.FIFO, tooBig); !errors.Is(err, bus.ErrTooLarge) {
		t.Errorf("Group.Send of MaxMessageSize+1 bytes: %v, want ErrTooLarge", err)
	}
	e.send(a, bus.FIFO, "max", 2)
	for _, r := range rs {
		e.waitHas(r, a, "max", 2)
		var got [][]byte
		for _, m := range r.Messages() {
			got = append(got, m.Data)
		}
		if len(got) != 2 || !bytes.Equal(got[0], big) || !bytes.Equal(got[1], Payload("max", 2, 0)) {
			sizes := make([]int, len(got))
			for i, d := range got {
				sizes[i] = len(d)
			}
			t.Errorf("%s received messages of %v bytes, want exactly the %d-byte message then the marker", r.Self(), sizes, limit)
		}
	}
}

func testBadGroup(e *env) {
	t := e.t
	a := e.member("a")
	ctx := e.ctx()
	bad := []string{"", "with space", "tab\there", "nul\x00", "del\x7f", "caf\xc3\xa9", strings.Repeat("x", bus.MaxGroupName+1)}
	for _, name := range bad {
		if _, err := a.Join(ctx, name); !errors.Is(err, bus.ErrBadGroup) {
			t.Errorf("Join(%q): %v, want ErrBadGroup", name, err)
		}
		if err := a.Send(ctx, name, bus.FIFO, []byte("x")); !errors.Is(err, bus.ErrBadGroup) {
			t.Errorf("Send(%q): %v, want ErrBadGroup", name, err)
		}
	}
	for _, name := range []string{strings.Repeat("x", bus.MaxGroupName), "!~/:punct", "a"} {
		r := e.join(a, name)
		r.WaitMembers(t, a.Self())
	}
}

func testBadLevel(e *env) {
	t := e.t
	bs, rs := e.group("a")
	a := bs[0]
	ctx := e.ctx()
	for _, level := range []bus.Level{0, bus.Safe + 1, 255} {
		if err := a.Send(ctx, group, level, Payload("bad", 0, 0)); !errors.Is(err, bus.ErrBadLevel) {
			t.Errorf("Send at %s: %v, want ErrBadLevel", level, err)
		}
		if err := rs[0].Group().Send(ctx, level, Payload("bad", 0, 0)); !errors.Is(err, bus.ErrBadLevel) {
			t.Errorf("Group.Send at %s: %v, want ErrBadLevel", level, err)
		}
	}
	e.send(a, bus.FIFO, "good", 0)
	e.waitHas(rs[0], a, "good", 0)
	if n := len(rs[0].Messages()); n != 1 {
		t.Errorf("received %d messages, want only the valid one", n)
	}
}

func testAlreadyJoined(e *env) {
	t := e.t
	bs, rs := e.group("a")
	a := bs[0]
	ctx := e.ctx()
	if _, err := a.Join(ctx, group); !errors.Is(err, bus.ErrAlreadyJoined) {
		t.Fatalf("second Join: %v, want ErrAlreadyJoined", err)
	}
	e.send(a, bus.FIFO, "still", 0)
	e.waitHas(rs[0], a, "still", 0)
	if err := rs[0].Group().Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := rs[0].WaitDone(t); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Recv after Leave: %v, want ErrClosed", err)
	}
	r := e.join(a, group)
	r.WaitMembers(t, a.Self())
	e.send(a, bus.FIFO, "again", 0)
	e.waitHas(r, a, "again", 0)
}

func testRestart(e *env) {
	t := e.t
	bs, rs := e.group("a", "b")
	a, b := bs[0], bs[1]
	level := e.ordered()
	for i := range uint64(5) {
		e.send(b, level, "r", i)
	}
	e.waitCount(rs[0], "r", 5, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	rs[0].WaitMembers(t, a.Self())

	b2 := e.member("b")
	if b2.Self() == b.Self() || b2.Self().Name != b.Self().Name {
		t.Fatalf("restarted member is %s, was %s: want the same name and a new incarnation", b2.Self(), b.Self())
	}
	rb2 := e.join(b2, group)
	v := rs[0].WaitMembers(t, a.Self(), b2.Self())
	if !slices.Equal(v.Joined, []bus.MemberID{b2.Self()}) {
		t.Errorf("view after the restart: Joined = %v, want [%s]", v.Joined, b2.Self())
	}
	rb2.WaitMembers(t, a.Self(), b2.Self())
	for i := range uint64(5) {
		e.send(b2, level, "r", i)
	}
	for _, r := range []*Recorder{rs[0], rb2} {
		e.waitCount(r, "r", 5, b2)
	}
	if n := len(messagesFrom(rs[0].Events(), b2.Self())); n != 5 {
		t.Errorf("a received %d messages from the new incarnation, want 5", n)
	}
	e.checkFIFO(rs[0], false)
	e.checkFIFO(rb2, false)
	e.checkOnce(rs[0])
}

func testRecvContext(e *env) {
	t := e.t
	a := e.member("a")
	g, err := a.Join(e.ctx(), group)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	ev, err := g.Recv(e.ctx())
	if _, ok := ev.(*bus.View); !ok || err != nil {
		t.Fatalf("first Recv: %v, %v, want a view", ev, err)
	}
	ctx, cancel := context.WithTimeout(e.life, 50*time.Millisecond)
	defer cancel()
	if ev, err := g.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv with nothing to receive: %v, %v, want context.DeadlineExceeded", ev, err)
	}
	canceled, cancel := context.WithCancel(e.life)
	cancel()
	if ev, err := g.Recv(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv with a canceled context: %v, %v, want context.Canceled", ev, err)
	}
	e.send(a, bus.FIFO, "after", 0)
	ev, err = g.Recv(e.ctx())
	if m, ok := ev.(*bus.Message); !ok || err != nil || !bytes.Equal(m.Data, Payload("after", 0, 0)) {
		t.Fatalf("Recv after timeouts: %v, %v, want the message sent", ev, err)
	}
}
