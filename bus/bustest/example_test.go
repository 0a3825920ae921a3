package bustest_test

import (
	"fmt"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
)

// Two members' streams compared over the part they share: b joined in
// view 2, so the comparison starts there.
func ExampleCompareChains() {
	a := bus.MemberID{Name: "a", Incarnation: 1}
	b := bus.MemberID{Name: "b", Incarnation: 2}
	v1 := &bus.View{Group: "g", ID: bus.ViewID{Seq: 1, Coord: a}, Members: []bus.MemberID{a}}
	v2 := &bus.View{Group: "g", ID: bus.ViewID{Seq: 2, Coord: a}, Members: []bus.MemberID{a, b}, Previous: []bus.ViewID{v1.ID}}
	m := func(seq uint64) *bus.Message {
		return &bus.Message{Group: "g", Sender: a, Level: bus.Agreed, View: v2.ID, Data: bustest.Payload("s", seq, 0)}
	}

	var atA, atB bustest.Chain
	for _, ev := range []bus.Event{v1, m(0), v2, m(1), m(2)} {
		atA.Add(ev)
	}
	for _, ev := range []bus.Event{v2, m(2), m(1)} {
		atB.Add(ev)
	}
	n, err := bustest.CompareChains(&atA, &atB)
	fmt.Println(n, err)
	// Output:
	// 1 bustest: streams differ at event 1 after view 2@a#1: agreed message from a#1 "s" #1 here, agreed message from a#1 "s" #2 there
}

func ExampleFIFO() {
	a := bus.MemberID{Name: "a", Incarnation: 1}
	var f bustest.FIFO
	for _, seq := range []uint64{0, 1, 3} {
		m := &bus.Message{Sender: a, Level: bus.FIFO, Data: bustest.Payload("s", seq, 0)}
		if err := f.Check(m); err != nil {
			fmt.Println(err)
		}
	}
	// Output:
	// bustest: fifo: gap in messages of a#1 "s": #3 after #1
}
