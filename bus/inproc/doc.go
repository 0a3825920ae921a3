// Package inproc is an in-process implementation of the bus contract: a Hub
// connects any number of members (each a *Bus) in one process. It honours
// every delivery level exactly, Safe included, and offers the fault hooks
// that tests of packages built on the bus need.
//
// # Usage
//
//	hub := inproc.New(inproc.Config{})
//	a, _ := hub.NewMember("a")
//	b, _ := hub.NewMember("b")
//	g, _ := a.Join(ctx, "logs")
//	_ = b.Send(ctx, "logs", bus.FIFO, line) // b need not join
//	ev, _ := g.Recv(ctx)                   // *bus.View first, then *bus.Message
//
// # Delivery
//
// Every Send delivers into the receive queue of every member on the
// sender's side of the group, under one hub lock, so all members see one
// total order of messages and views whatever the level: Unreliable only
// differs in that it is dropped (never waited for) when a queue is full or
// when Config.DropRate says so. Views go to the queue even when it is full.
//
// # Faults
//
// Crash(b) removes a member abruptly (the others see it leave). Partition
// splits members into sides with their own views; Heal merges the sides
// into one view whose Previous lists every side's last view. These are the
// hooks bustest.Faults asks for.
//
// # Concurrency
//
// A Hub starts no goroutines and uses no timers: all work happens in the
// callers' goroutines. That makes it deterministic under testing/synctest
// (create the Hub inside the bubble).
//
// # Performance
//
// Measured with `go test ./bus/inproc -run '^$' -bench . -count 5` (3
// members, 200-byte messages, receivers draining): see BenchmarkSend for the
// figures this machine gives; README lists them.
package inproc
