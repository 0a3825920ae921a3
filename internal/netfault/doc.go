// Package netfault injects real network faults into tests: packet loss,
// partitions and TCP-only cuts made with nftables between hosts that are
// network namespaces of the test's own, and members of a bus that run as
// separate processes on those hosts. It needs Linux, root, iproute2 and
// nftables.
//
// # Usage
//
//	lab := netfault.New(t, "a", "b", "c", "d") // skips without root
//	m := lab.StartMember(t, "a", "TestHelperMember", netfault.MemberSpec{Seeds: seeds})
//	g, err := m.Join(ctx, "g") // m is a bus.Bus, g a bus.Group
//	rec := bustest.Record(t, m.Self(), g)
//	lab.Loss("a", "b", 10)                          // 10% of packets a<->b dropped
//	lab.Cut([]string{"a", "b"}, []string{"c", "d"}) // a 2|2 partition
//	lab.CutTCP([]string{"d"}, []string{"a", "b", "c"}) // UDP passes, TCP does not
//	lab.Heal()                                      // every rule removed
//
// with a helper test in the same package that builds the member:
//
//	func TestHelperMember(t *testing.T) {
//		netfault.ServeMember(t, func(s netfault.MemberSpec) (bus.Bus, error) {
//			return cluster.New(s.Name, cluster.Config{BindAddr: s.Addr, Seeds: s.Seeds})
//		})
//	}
//
// # Lab
//
// New builds a switch namespace holding a bridge and one namespace per
// host, with eth0 (a veth on the bridge) at 198.19.0.<i+1>/24 and lo up:
// addresses that exist only inside the lab. Namespace names are unique per
// process and run ("nf<pid>-<random>-<host>"), and t.Cleanup deletes them,
// also when the test fails. Do runs a function on an OS thread that is in
// a host's namespace; Command runs a program there.
//
// # Faults
//
// Each host has an nftables table of its own (inet netfault) whose chain
// on the input hook holds the fault rules, so a dropped packet vanishes
// silently, as on a real network (a drop on the output hook would return
// EPERM to the sender instead). Loss adds `ip saddr X numgen random mod
// 100 < P counter drop` on both hosts of a path; Cut drops everything
// whose source is on the other side; CutTCP does so for TCP only (meta
// l4proto tcp); Heal flushes every host's chain. Dropped reads the rules'
// counters, and TCPRetransmits a host's retransmitted TCP segments (the
// evidence that TCP, not luck, carried the data through the loss).
//
// # Why members run in processes of their own
//
// A Go program enters a network namespace per OS thread, and the runtime
// moves goroutines between threads: a socket is created in the namespace
// of whatever thread runs the goroutine at that moment. memberlist and
// bus/cluster open connections from their own goroutines long after New,
// so members of one process cannot be kept inside namespaces.
//
// Putting every member of one process into a single namespace on several
// loopback addresses does not work either: bus/cluster and memberlist dial
// without binding a source address, and the kernel then picks the
// destination's own address as the source (the local route of a loopback
// address carries it as preferred source). Every packet of a link between
// two members shows only the address of the member that was dialed, so no
// rule can tell a link of a from a link of b to the same member, and a 2|2
// partition cannot be expressed.
//
// So each member runs in a process started in its host's namespace with
// "ip netns exec": the test binary itself, re-executed with -test.run
// naming a helper test that calls ServeMember. The whole process and every
// socket it opens stay in the namespace, each host has one address that is
// the source of all its traffic, and rules keyed by source address cut
// exactly the paths they name. The parent drives each member through a
// Member, a bus.Bus whose calls travel over two pipes (gob), so bustest's
// Recorder and checkers run unchanged in the parent. A member process is
// also what a crash looks like in production: Kill sends it SIGKILL.
//
// # Members
//
// StartMembers starts several member processes at once and waits until
// each has built its Bus. A Member's Group receives the events the child
// forwards, at most Prefetch (64) ahead of Recv, so a parent that stops
// reading still pushes back on senders. A call whose context ends is
// canceled in the child and returns the child's result. On a loaded
// machine a round trip to a member takes milliseconds: SendBatch sends
// many messages in one, in order. Stats returns the JSON of the Bus's
// Stats method decoded into the caller's type (cluster.Stats, say). The
// child's output (its logs) goes to the test log, prefixed with the
// member's name; a child that exits with an error fails the test.
//
// # Privileges and tools
//
// RequireRoot (called by New) skips a test without root, or fails it when
// PEERSCALE_REQUIRE_ROOT_TESTS=1; it skips when the ip or nft binary is
// missing, or fails when PEERSCALE_REQUIRE_TOOLS=1. Debian packages:
// iproute2 and nftables.
//
// # Testing
//
// The package's tests check that the rules really drop (a TCP dial times
// out under a TCP-only cut while UDP datagrams still arrive; a 2|2 cut
// passes traffic within each side only; 10% loss drops 200 ± 100 of 2,000
// datagrams and the counters agree) and that namespaces are removed:
//
//	go test -race ./internal/netfault/  # 17-32 s as root on a loaded 2-core machine
//
// They also run members (bus/inproc, one per process) through the pipes:
// ordered delivery past the prefetch window, sentinel errors, a Send
// canceled in the child, Leave, Close, Kill and a constructor's error.
package netfault
