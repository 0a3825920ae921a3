// Package bus is peerscale's group-messaging vocabulary: named groups,
// membership views, delivery levels and one ordered stream of messages and
// views per group, after the Spread toolkit's model. Every other peerscale
// package is written against the small Bus and Group interfaces here and
// never against an implementation; the mains choose one:
//
//   - bus/inproc: every member in one process, with fault hooks (crash,
//     partition, heal, loss) for the tests of packages that sit on the bus.
//   - bus/bustest: the conformance suite every implementation passes.
//
// # Usage
//
//	g, err := b.Join(ctx, "purge")
//	...
//	go func() {
//		for {
//			ev, err := g.Recv(ctx)
//			if err != nil {
//				return // bus.ErrClosed after Leave or Close, or ctx.Err()
//			}
//			switch ev := ev.(type) {
//			case *bus.View:
//				// membership changed: ev.Members, ev.Joined, ev.Left
//			case *bus.Message:
//				// ev.Sender, ev.Data
//			}
//		}
//	}()
//	err = b.Send(ctx, "purge", bus.Agreed, payload) // members or not
//
// # Members, groups and views
//
// A Bus is one member: one incarnation of a process, identified by a
// MemberID whose Incarnation is random per start. A member joins groups by
// name; any Bus may send to any group without joining it (open groups, so a
// web server can publish logs to a group of loggers it never joins).
//
// A member of a group receives one stream of events for it: messages and
// views, interleaved, pulled with Recv so that a slow consumer pushes back
// on senders rather than growing memory. The first event after Join is a
// view containing the new member. Views carry an id that strictly
// increases, the members in one order identical everywhere (oldest first:
// Members[0] is the leader), and, when a view merges sides of a partition,
// the last view id of every side.
//
// # Delivery levels
//
//	Level       guarantee
//	Unreliable  may be lost, duplicated or reordered; Send never blocks
//	Reliable    exactly once to every member that stays in the view
//	FIFO        Reliable + per-sender order, no gaps, no duplicates
//	Causal      provided as Agreed (as in Spread)
//	Agreed      FIFO + one total order identical at every member, views
//	            delivered at the same point of that order
//	Safe        Agreed + delivered only once every member has it
//	            (optional: ErrUnsupportedLevel where not provided)
//
// A member always receives its own messages to a group it belongs to
// (self-delivery). Payloads are limited to MaxMessageSize (ErrTooLarge).
//
// # Failures
//
// What holds in each situation, for every implementation (an implementation
// may do better and says so in its own documentation):
//
//	Situation               Guaranteed                               Not guaranteed
//	no failures             every level as above; identical views    Unreliable under a full queue
//	member crash            survivors install a view without it;     Reliable/FIFO messages the crashed
//	                        Agreed: every survivor delivers the      member sent may reach only some
//	                        same messages before that view           survivors
//	sender crash            FIFO order and no duplicates for what    delivery of what it sent last
//	                        arrives                                  (not yet accepted by the others)
//	restart, same name      a new MemberID: the old incarnation      state transfer between incarnations
//	                        leaves, the new one joins; its messages
//	                        are never taken for the old one's
//	partition               each side goes on with its own views     a primary component: both sides
//	                        (no side stops); messages reach only     act; require a quorum yourself with
//	                        the sender's side                        len(View.Members)
//	heal                    one merged view listing every side's     reconciliation of what the sides did
//	                        last view id in Previous                 (the application's job)
//	slow receiver           Send at Reliable and above blocks        Unreliable reaching it; staying in
//	                        until its ctx ends; memory stays         the view if an implementation
//	                        bounded                                  excludes stuck members after a timeout
//	Leave / Close           the others see a view without it;        delivery of events still queued for
//	                        Recv returns ErrClosed                   the leaver
//
// # Concurrency
//
// Bus methods, Group.Send and Group.Leave are safe for concurrent use.
// Group.Recv is called by one goroutine at a time.
//
// # Backpressure
//
// Each member buffers a bounded number of events per group. A Send at
// Reliable or above waits while a receiver's buffer is full, until the
// receiver reads or the Send's ctx ends; an Unreliable send drops the
// message for that receiver instead. Views are never dropped.
//
// # Testing
//
// Packages that sit on the bus test against bus/inproc, which runs under
// testing/synctest and can crash, partition and heal members. An
// implementation of Bus proves itself with bustest.Run.
package bus
