package bustest

import (
	"strings"
	"testing"

	"github.com/peerscale/peerscale/bus"
)

func chainOf(evs ...bus.Event) *Chain {
	var c Chain
	for _, ev := range evs {
		c.Add(ev)
	}
	return &c
}

func TestCompareChains(t *testing.T) {
	v1 := view(1, ma, nil, ma)
	v2 := view(2, ma, v1, ma, mb)
	v2b := view(2, mb, nil, ma, mb) // the same view as b receives it
	v3 := view(3, ma, v2, ma)
	m := func(seq uint64) bus.Event { return msg(ma, v2.ID, "s", seq) }

	a := chainOf(v1, msg(ma, v1.ID, "s", 0), v2, m(1), m(2), v3)
	for _, tc := range []struct {
		name    string
		b       *Chain
		overlap int
		want    string
	}{
		{"itself", a, 6, ""},
		{"later joiner that left", chainOf(v2b, m(1), m(2)), 3, ""},
		{"later joiner, shorter", chainOf(v2b, m(1)), 2, ""},
		{"missing message", chainOf(v2b, m(2)), 1, "differ at event 1 after view 2@a#1"},
		{"reordered", chainOf(v2b, m(2), m(1)), 1, `"s" #1 here, fifo message from a#1 "s" #2 there`},
		{"other payload", chainOf(v2b, msg(ma, v2.ID, "t", 1)), 1, "differ"},
		{"view differs", chainOf(view(2, mb, nil, mb, ma)), 0, "view 2@a#1"},
		{"no common view", chainOf(view(5, mc, nil, mc)), 0, ""},
		{"empty", chainOf(), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, swap := range []bool{false, true} {
				x, y := a, tc.b
				if swap {
					x, y = y, x
				}
				n, err := CompareChains(x, y)
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("swap %v: %v", swap, err)
				case tc.want != "" && err == nil:
					t.Errorf("swap %v: no error, want one about %q", swap, tc.want)
				case tc.want != "" && !swap && !strings.Contains(err.Error(), tc.want):
					t.Errorf("error %q, want one about %q", err, tc.want)
				}
				if n != tc.overlap {
					t.Errorf("swap %v: overlap %d, want %d", swap, n, tc.overlap)
				}
			}
		})
	}
}

func TestChainDigestIgnoresReceiverFields(t *testing.T) {
	v1 := view(1, ma, nil, ma)
	va := view(2, ma, v1, ma, mb)
	vb := view(2, mb, nil, ma, mb)
	if Digest(va) != Digest(vb) {
		t.Errorf("digests of one view received by two members differ")
	}
	other := va.Clone()
	other.Previous = []bus.ViewID{vid(9)}
	if Digest(other) == Digest(va) {
		t.Errorf("views with different Previous have one digest")
	}
	if Digest(msg(ma, vid(1), "s", 0)) == Digest(msg(mb, vid(1), "s", 0)) {
		t.Errorf("messages from different senders have one digest")
	}
	c := chainOf(va, msg(ma, va.ID, "s", 0))
	if c.Head() != c.HeadOf(0, c.Len()) || c.Head() == chainOf(va).Head() {
		t.Errorf("Head and HeadOf disagree")
	}
}

func TestCompareFrom(t *testing.T) {
	v1 := view(1, ma, nil, ma, mb)
	sideA := view(2, ma, v1, ma)
	sideB := view(2, mb, nil, mb)
	sideB.ID.Coord = mb
	merged := view(3, ma, sideA, ma, mb)
	merged.Previous = []bus.ViewID{sideA.ID, sideB.ID}
	mergedB := merged.Clone()
	mergedB.Self = 1
	a := chainOf(v1, sideA, msg(ma, sideA.ID, "pa", 0), merged, msg(ma, merged.ID, "x", 0))
	b := chainOf(v1, sideB, msg(mb, sideB.ID, "pb", 0), mergedB, msg(ma, merged.ID, "x", 0))
	if _, err := CompareChains(a, b); err == nil {
		t.Errorf("CompareChains found no difference across a partition")
	}
	if n, err := CompareFrom(a, b, merged.ID); err != nil || n != 2 {
		t.Errorf("CompareFrom the merged view: %d, %v, want 2, nil", n, err)
	}
	if _, err := CompareFrom(a, b, sideA.ID); err == nil {
		t.Errorf("CompareFrom a view only one side has: no error")
	}
}
