// Package bustest is the conformance suite of the bus contract: every
// implementation of bus.Bus runs it unchanged, and the checkers it is made
// of (stream recorder, hash chains, FIFO and exactly-once checkers) are
// exported for longer tests of one implementation, such as chaos tests.
//
// # Usage
//
// An implementation adapts its constructor to Network and calls Run from
// a test:
//
//	type network struct{ hub *inproc.Hub }
//
//	func (n network) NewMember(t testing.TB, name string) bus.Bus {
//		b, err := n.hub.NewMember(name)
//		if err != nil {
//			t.Fatal(err)
//		}
//		t.Cleanup(func() { b.Close() })
//		return b
//	}
//
//	func TestConformance(t *testing.T) {
//		bustest.Run(t, func(t *testing.T) bustest.Network {
//			return network{inproc.New(inproc.Config{})}
//		})
//	}
//
// Implementing Faults (Crash, Partition, Heal) enables the fault cases;
// implementing Levels declares levels that are not provided (their cases
// are skipped, and the others use FIFO where they would use Agreed). Safe
// is skipped when Send returns bus.ErrUnsupportedLevel. Implementing
// Backlog declares how many messages may queue towards a member that does
// not read; the flow-control cases then hold the implementation to that
// bound instead of MaxBacklog.
//
// newNetwork runs inside each case's subtest, so an implementation lists
// the cases it knows it fails by name and skips them there:
//
//	if reason, ok := knownFailures[path.Base(t.Name())]; ok {
//		t.Skip("known failure: " + reason)
//	}
//
// One case runs with `go test -run 'TestConformance/Crash$'`. Do not run
// the conformance test in parallel with other tests of the same package
// (t.Parallel): the leak check of each case counts every goroutine of the
// process.
//
// # Cases
//
// Each case is a subtest with a stable name:
//
//	JoinFirstView          the first event after Join is a view containing the member at Self,
//	                       also when the joiner arrives while messages flow
//	RecvContext            Recv returns the context's error when it ends, and works afterwards
//	ViewsIdentical         4 members join and leave; views (ID, Members, Previous) identical
//	                       at every member over the streams they share; oldest first; ids increase
//	SelfDelivery           a member receives its own messages at every level it provides, intact
//	                       although the caller overwrote the buffer once Send returned
//	Reliable, FIFO         3 members send 2×200 messages each (two goroutines per member) at
//	                       once: exactly once everywhere, and for FIFO in order per sender
//	                       without gaps
//	Agreed, Causal, Safe   the same, and one identical stream (hash chains) at every member
//	AgreedViewChange       a member joins and another leaves while three send at Agreed without
//	                       pause: the views fall at the same point of every member's stream
//	OpenGroup              a non-member sends at every level: members receive, it gets nothing
//	                       and does not join, not even when it joins later
//	Leave                  the others see a view with Left; Recv and Group.Send return ErrClosed;
//	                       Leave is idempotent; the Bus still sends and can join again
//	Close                  every call returns ErrClosed, blocked Recvs end, Close is idempotent
//	MessageSize            exactly MaxMessageSize is delivered intact, one byte more is ErrTooLarge
//	BadGroup, BadLevel     ErrBadGroup for names ValidateGroup rejects, ErrBadLevel for levels
//	AlreadyJoined          a second Join is ErrAlreadyJoined; the first membership still works
//	Restart                a member restarted under its name is a new MemberID: it joins after the
//	                       old one left, its messages are delivered (not deduplicated), FIFO restarts
//	UnreliableNeverBlocks  MaxBacklog+1 Unreliable sends to a member that does not read all return;
//	                       views are still delivered to it
//	Backpressure           at Reliable, FIFO and Agreed, Send towards a member that does not read
//	                       blocks after at most MaxBacklog 1 KiB messages (or the bound the
//	                       Network declares, see Backlog) until its ctx ends, and resumes when
//	                       the member reads; nothing accepted is lost
//	GroupsIndependent      a member that stops reading one group blocks Sends to that group only:
//	                       Sends to its other group go on and it receives them
//	NoLeaks                traffic, a blocked Recv and a blocked Send, then Close of every member
//	                       ends them all (every case also checks for leaked goroutines)
//	Crash                  (Faults) a member crashes mid-stream: survivors see a view without it
//	                       and, at Agreed, identical streams; its calls return ErrClosed
//	RestartAfterCrash      (Faults) a crashed member restarts at once under its name
//	Partition              (Faults) a b | c d: each side installs its own views, messages stay
//	                       on their side
//	Heal                   (Faults) after a partition, one merged view at every member, Previous
//	                       listing each side's last view, identical everywhere; streams agree after it
//
// # Timing
//
// The suite runs in real time against real networks as well as in-process
// buses: it never sleeps for a fixed time and never assumes that delivery
// is instantaneous or atomic. Every wait ends as soon as its condition
// holds and fails after Timeout (20 s); checks run as events arrive, so a
// gap, a duplicate or a broken view fails at once rather than at the
// timeout (only a lost message of an unordered level waits for it). Cases
// run one after another because each checks that the goroutines it caused
// are gone (internal/leakcheck). Backpressure waits 250 ms and then 1 s
// for a Send to time out, per level (GroupsIndependent once), which makes
// it the slowest case on a correct implementation; it assumes that a member which stops reading
// for those 2 s stays in the view.
//
// Against bus/inproc, `go test -race -run TestConformance ./bus/inproc/`
// takes 7–10 s on a shared 2-core machine: Backpressure ~4 s,
// GroupsIndependent ~1.3 s, every other case under 1 s. The suite's own test (`go test -race ./bus/bustest/`)
// runs selected cases against versions of inproc with one defect each
// (a lost, duplicated or reordered message, a late view, a wrong Self, a
// merge that forgets a side, a partition that leaks, Send after Close, no
// size limit, an unbounded queue) and requires each to be caught.
//
// # Cost of the checkers
//
// Measured with `go test -run '^$' -bench . -benchtime 200000x -count 5
// ./bus/bustest` on a shared 2-core machine (medians): Chain.Add 1.8 µs
// per event for 0 and 200-byte payloads and 11 µs for 4 KiB (two SHA-256
// per event), FIFO.Check 0.3 µs per message, no allocation per message
// apart from the chain's own growth. A chaos test can check ~500k events
// per second of one stream.
//
// # Strictness
//
// Beyond the letter of the bus package, the StreamChecker requires that a
// member delivers every view it belongs to: Previous of each view must
// contain the member's previous view, so skipping a view is an error.
// Heal requires one merged view, not a sequence of partial merges.
//
// # Checkers
//
// Record starts a Recorder: it owns a Group's Recv, keeps every event,
// checks each with a StreamChecker (first event a view with the member at
// Self, view ids increasing, Joined and Left relative to the previous
// view, Previous containing it, oldest first, Message.View the current
// view) and offers Wait, WaitView, WaitMembers and WaitDone. A Chain is a
// hash chain of a stream reduced to what members must agree on;
// CompareChains compares two members over the part they share and names
// the first differing event, CompareFrom does so from a given view (after
// a merge). FIFO and Tally check per-sender order and exactly-once
// delivery of messages whose bodies Payload made (a tag and a sequence
// number, padded to a size).
package bustest
