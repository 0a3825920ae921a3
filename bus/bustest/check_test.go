package bustest

import (
	"strings"
	"testing"

	"github.com/peerscale/peerscale/bus"
)

var (
	ma = bus.MemberID{Name: "a", Incarnation: 1}
	mb = bus.MemberID{Name: "b", Incarnation: 2}
	mc = bus.MemberID{Name: "c", Incarnation: 3}
)

func vid(seq uint64) bus.ViewID { return bus.ViewID{Seq: seq, Coord: ma} }

// view builds the view of members as received by self after prev.
func view(seq uint64, self bus.MemberID, prev *bus.View, members ...bus.MemberID) *bus.View {
	v := &bus.View{Group: "g", ID: vid(seq), Members: members}
	v.Self = v.Index(self)
	if prev == nil {
		v.Joined = members
		if seq > 1 {
			v.Previous = []bus.ViewID{vid(seq - 1)}
		}
		return v
	}
	v.Previous = []bus.ViewID{prev.ID}
	for _, m := range members {
		if !prev.Contains(m) {
			v.Joined = append(v.Joined, m)
		}
	}
	for _, m := range prev.Members {
		if !v.Contains(m) {
			v.Left = append(v.Left, m)
		}
	}
	return v
}

func msg(sender bus.MemberID, in bus.ViewID, tag string, seq uint64) *bus.Message {
	return &bus.Message{Group: "g", Sender: sender, Level: bus.FIFO, View: in, Data: Payload(tag, seq, 0)}
}

func TestStreamChecker(t *testing.T) {
	v1 := view(1, mb, nil, ma, mb)
	v2 := view(2, mb, v1, ma, mb, mc)
	v3 := view(3, mb, v2, mb, mc)
	valid := []bus.Event{v1, msg(ma, v1.ID, "s", 0), v2, msg(mc, v2.ID, "s", 0), v3}

	mutate := func(v *bus.View, f func(*bus.View)) *bus.View {
		c := v.Clone()
		f(c)
		return c
	}
	for _, tc := range []struct {
		name   string
		events []bus.Event
		want   string // substring of the error; "" for a valid stream
	}{
		{"valid", valid, ""},
		{"message first", []bus.Event{msg(ma, v1.ID, "s", 0)}, "before the first view"},
		{"self missing", []bus.Event{view(1, mb, nil, ma)}, "does not index"},
		{"wrong Self", []bus.Event{mutate(v1, func(v *bus.View) { v.Self = 0 })}, "does not index"},
		{"first Joined", []bus.Event{mutate(v1, func(v *bus.View) { v.Joined = []bus.MemberID{mb} })}, "want every member"},
		{"duplicate member", []bus.Event{view(1, mb, nil, ma, mb, ma)}, "listed twice"},
		{"id not increasing", []bus.Event{v1, v2, mutate(v3, func(v *bus.View) { v.ID = vid(2) })}, "does not increase"},
		{"Previous", []bus.Event{v1, mutate(v2, func(v *bus.View) { v.Previous = []bus.ViewID{vid(7)} })}, "Previous"},
		{"Joined", []bus.Event{v1, mutate(v2, func(v *bus.View) { v.Joined = nil })}, "Joined"},
		{"Left", []bus.Event{v1, v2, mutate(v3, func(v *bus.View) { v.Left = nil })}, "Left"},
		{"order changed", []bus.Event{v1, v2, view(3, mb, v2, mb, ma)}, "changed order"},
		{"newest first", []bus.Event{v1, view(2, mb, v1, mc, ma, mb)}, "oldest first"},
		{"merge may interleave", []bus.Event{v1, mutate(view(2, mb, v1, ma, mc, mb), func(v *bus.View) {
			v.Previous = []bus.ViewID{vid(1), {Seq: 1, Coord: mc}}
		})}, ""},
		{"message view", []bus.Event{v1, msg(ma, vid(9), "s", 0)}, "last view delivered"},
		{"message group", []bus.Event{v1, &bus.Message{Group: "h", Sender: ma, Level: bus.FIFO, View: v1.ID}}, "for group"},
		{"view group", []bus.Event{mutate(v1, func(v *bus.View) { v.Group = "h" })}, "of group"},
		{"bad level", []bus.Event{v1, &bus.Message{Group: "g", Sender: ma, View: v1.ID}}, "invalid level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewStreamChecker(mb, "g")
			var err error
			for _, ev := range tc.events {
				if err = c.Check(ev); err != nil {
					break
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("valid stream: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("no error, want one about %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q, want one about %q", err, tc.want)
			}
		})
	}
}

func TestFIFO(t *testing.T) {
	in := vid(1)
	var f FIFO
	for _, m := range []*bus.Message{msg(ma, in, "s", 0), msg(mb, in, "s", 0), msg(ma, in, "s", 1), msg(ma, in, "t", 0)} {
		if err := f.Check(m); err != nil {
			t.Fatalf("in-order message: %v", err)
		}
	}
	if got := f.Next(ma, "s"); got != 2 {
		t.Errorf("Next = %d, want 2", got)
	}
	for _, tc := range []struct {
		m    *bus.Message
		want string
	}{
		{msg(ma, in, "s", 1), "duplicate"},
		{msg(ma, in, "s", 3), "gap"},
		{msg(mc, in, "s", 5), "want #0"},
		{&bus.Message{Sender: ma, Data: []byte("other")}, "not a bustest payload"},
	} {
		if err := f.Check(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%s): %v, want an error about %q", tc.m.Data, err, tc.want)
		}
	}
	late := FIFO{LateStart: true}
	if err := late.Check(msg(mc, in, "s", 5)); err != nil {
		t.Errorf("LateStart first message #5: %v", err)
	}
	if err := late.Check(msg(mc, in, "s", 7)); err == nil {
		t.Errorf("LateStart accepted a gap")
	}
}

func TestTally(t *testing.T) {
	in := vid(1)
	var tl Tally
	for _, seq := range []uint64{3, 0, 1} {
		if err := tl.Add(msg(ma, in, "s", seq)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.Add(msg(mb, in, "s", 1)); err != nil {
		t.Fatal(err)
	}
	if err := tl.Add(msg(ma, in, "s", 1)); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
	if tl.Len() != 4 || tl.Count(ma, "s") != 3 {
		t.Errorf("Len %d Count %d, want 4 and 3", tl.Len(), tl.Count(ma, "s"))
	}
	if got := tl.Missing(ma, "s", 5); len(got) != 2 || got[0] != 2 || got[1] != 4 {
		t.Errorf("Missing = %v, want [2 4]", got)
	}
}
