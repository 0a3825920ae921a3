// Package logpub writes Apache-exact access logs from net/http and
// publishes them on the bus, after mod_log_spread: web servers send every
// record to a log group; loggers (logsub) write files and acknowledge,
// monitors watch. FileSink (with Reopen for rotation) and WriterSink
// cover CustomLog to a local file; MultiSink does both.
//
// # Usage
//
//	f, err := logpub.Compile(logpub.CombinedFormat + " %T")
//	pub, err := logpub.New(b, "logs", logpub.Config{Format: f, Dir: "/var/spool/logpub"})
//	defer pub.Close()
//	file, err := logpub.OpenFileSink("/var/log/www/access.log", f)
//	defer file.Close()
//	sink := logpub.MultiSink(pub, file)
//	handler = logpub.Middleware(sink, logpub.HandlerConfig{})(handler)
//	...
//	err = pub.Shutdown(ctx) // sends the rest, waits for acknowledgement
//
// # Log formats
//
// Compile takes Apache 2.4 mod_log_config's LogFormat syntax (after
// Apache's configuration parser removed its quoting) and formats with
// Format.AppendLine into a caller's buffer without allocating. Every
// directive is accepted, with status conditions (%400,501{User-agent}i,
// %!200,304{Referer}i) and the < > modifiers (net/http has no internal
// redirects: both print the same request). NamedFormat returns common,
// combined, vhost_combined, referer and agent.
//
// Output follows Apache byte for byte: %r %i %o %U %u %C %e %n %q %m %H
// %v %V %f %R escape '"', '\' and the bytes outside 0x20..0x7e as \" \\
// \b \n \r \t \v or \xhh (so UTF-8 is escaped byte by byte); a value prints
// "-" only when absent (a header sent empty prints empty); %b prints "-"
// for no body bytes and %B prints 0; repeated request headers are joined
// with ", "; %{Content-Type}o drops parameters and %{Set-Cookie}o joins
// every value; %u prints "" for an empty user; %U is the decoded path with
// "." and ".." segments resolved and slashes merged, as Apache's r->uri;
// %{UNIT}T and %{...}p print an unknown argument itself, as Apache does.
// Times print in Entry.Start's location; %{format}t is glibc strftime in
// the C locale (with the -, _, 0 and ^ flags), begin:/end: prefixes, and
// sec, msec, usec, msec_frac, usec_frac.
//
// What net/http cannot supply, and what prints instead:
//
//	%l             "-" (no identd)
//	%L             Entry.LogID, "-" when empty (no mod_unique_id)
//	%R %f          set with SetFilename; "-" otherwise
//	%k             keep-alive requests before this one on the connection,
//	               with http.Server.ConnContext = ConnContext; 0 otherwise
//	%X             "X" when a write failed or the handler panicked,
//	               "-" when the connection will close, "+" otherwise
//	%I %O %S       estimated from the request line, headers and body read
//	               (net/http does not expose wire bytes); exact when the
//	               Entry's BytesIn/BytesOut are set. Against apache2, %I
//	               matched for 28 of 35 requests: it differs by the blanks
//	               net/http trims around header values and for pipelined
//	               requests. %O lacks the headers net/http adds itself.
//	%h %{c}h       the client address (no DNS lookups, as HostnameLookups Off)
//	%a %{c}a       the client address of the connection (no mod_remoteip)
//	%p             HandlerConfig.ServerPort, else the port the request came on
//	%{tid}P        the OS thread that formats the line
//	%{VAR}e        variables set with SetEnv (Apache: SetEnv/SetEnvIf)
//	%{VAR}n        notes set with SetNote
//	%u             the user set with SetUser, else the Basic auth user name
//	               (Apache prints it only where authentication is configured)
//	%{VAR}o        the handler's header map: headers net/http adds itself
//	               (Date, Content-Length, a sniffed Content-Type) are absent
//
// # Middleware
//
// Middleware wraps an http.Handler and hands one Entry per request to a
// Sink: final status (1xx responses are not final; 101 is), body bytes in
// and out, duration, time to first byte, user. The wrapped ResponseWriter
// keeps http.Flusher, http.Hijacker and io.ReaderFrom (so sendfile still
// works) and has Unwrap for http.ResponseController. When the handler
// panics the request is logged (status 500 unless written, %X "X") and the
// panic goes on. Per request the middleware allocates nothing of its own.
//
// # Publishing
//
// A Publisher is a Sink. Log formats the line and appends the record (the
// line plus structured fields, see internal/logwire) to an in-memory batch
// under a mutex: no network, no channel send per line. A batch is sealed
// when it is full (MaxBatchBytes) or FlushInterval old; a journaler
// goroutine writes it to the journal (when Dir is set) and a flusher
// goroutine sends it to the group at bus.FIFO. The two work apart, so that
// while the bus holds Sends back, batches still move to disk and free
// their memory. Each batch carries the publisher's ID, its Epoch (new at each
// start) and the sequence numbers of its records (1, 2, ... per epoch).
//
// Log allocates nothing in the steady state, except one string when the
// Host header has upper-case letters (records carry the host name in lower
// case, as Apache's %V).
//
// # Durability and acknowledgement
//
// Records stay in memory or in the journal until AckQuorum durable loggers
// acknowledged them on the ack group (protocol in internal/logwire);
// journal segments are deleted once every batch in them is acknowledged,
// the one being written included (the next batch starts a new segment), so
// a fully acknowledged journal takes no space (Stats.JournalBytes is 0) and
// a restart replays nothing.
//
// The Publisher retransmits only what a logger lacks. A logger misses
// batches only while it is out of the views, so what it lacks was sent
// before the Publisher saw it (re)join the ack group; a batch sent since
// is on its way, and sending it again would only make duplicates. It
// resends:
//
//   - for a hole a logger reports (Resend, bounded by the hole's end), the
//     batches of the hole sent before that logger joined, and the others
//     only if it asks again without progress for ResendAfter (2 s);
//   - after an AckSync (a logger starting, or back after a partition), the
//     batches past its committed positions sent before it joined;
//   - after a failed Send (bus outage), the batches not sent;
//   - when a logger keeps repeating an ack short of batches sent more than
//     ResendAfter ago, without progress for as long (a lost tail, which
//     nothing later reveals to the logger; Stats.Stalled), those batches.
//
// A member joining the ack group makes it resend nothing by itself, and a
// logger that is only behind makes progress and is sent nothing twice
// (resending to it would feed its backlog). Retransmissions are batches
// sent to the whole log group again, so the other loggers drop them as
// duplicates. After a restart the journal is replayed under its old
// epoch. The journal is bounded (MaxJournal, default 1 GiB) and is written
// without fsync: it survives a crash of the process, not of the machine.
//
// # Backpressure
//
// Memory for batches is bounded by MaxMemory (default 64 MiB); with a
// journal, batches move to disk and memory frees. When memory and journal
// are both full, Log drops the record and counts it (Stats.Dropped, and
// the next batch header's Dropped): the default. With Config.Block > 0,
// Log first waits up to Block for room. Dropped records get no sequence
// number, so loggers see no hole.
//
// # Concurrency
//
// Format is immutable. Middleware handlers, Publisher.Log and WriterSink.Log
// are safe for concurrent use. A Publisher owns three goroutines (flusher,
// journaler when Dir is set, ack receiver); Close stops them and waits;
// Shutdown drains first.
//
// # Performance
//
// Measured on a shared 2-core machine (load average 10-25 from other
// work, so wall-clock figures swing; CPU time per operation holds):
//
//	go test ./logpub -run '^$' -bench 'AppendLine|Publish|LogLatency' -count 5
//	cd internal/bench/logpub && go test -run '^$' -bench . -count 5
//
//	AppendLine combined+%T       225-295 cpu-ns/line, 0 allocs (target 300)
//	AppendLine common            130-190 cpu-ns/line, 0 allocs
//	Middleware overhead          logpub 355-395 vs gorilla/handlers 1840-2100
//	  (thread CPU ns, combined)  ratio 5.1-5.8 (target 4); logpub 0 allocs of
//	                             its own, gorilla 14 allocs / 990 B
//	Publish to bus/inproc        530k lines/s on a quieter run (target 500k),
//	  (logger draining + acking) 0.8-1.2 µs CPU per line all goroutines
//	                             included (0.83-1.36M lines per CPU-second),
//	                             with or without the journal
//	Log latency (request path)   p50 310 ns, p99 0.6-2.2 µs when the machine
//	                             is not saturated (target 2 µs)
//
// BenchmarkOverheadRatio alternates the handlers in rounds on one locked
// thread and divides thread CPU time, so the ratio is stable under noise.
//
// The whole log path in one process (2 Publishers with journals,
// AckQuorum 2, → 2 durable logsub Loggers with 100 ms fsync; 400,000
// combined lines, clock stopped when both loggers acknowledged all):
//
//	cd examples/spreadlogd && go test -run '^$' -bench Pipeline -benchtime 400000x -count 2 .
//
// (two runs each, load average 3-4, after logsub's commits stopped
// holding the Store's lock through fsync; before, at load average 8-20,
// inproc ran 210-235k lines/s and cluster 125-205k)
//
//	                 lines/s     CPU per line (all 4 parts)  lines per bus message
//	bus/inproc       409-447k    1.9-2.3 µs                  780-790
//	bus/cluster      314-403k    2.3-3.0 µs                  785-795
//
// Before ResendAfter, every repeated ack short of what was sent (a logger
// merely behind) made the Publisher resend from there: the same benchmark
// sent every line 2-3 times (replayed 430k-870k of 400k lines) and ran at
// 30k (inproc) and 21k (cluster) lines/s with 6.7 and 11.6 µs CPU per line.
// Where the CPU goes per line (pprof of the inproc case, 2.65 µs in all):
// Publisher.Log 0.8 µs (AppendLine 0.38, copying the record into the
// batch 0.35), the journal's pwrite 0.33 µs, each Logger 0.28 µs (decoding
// 0.11, writing 0.15), fsync under 0.1 µs, and the bus: bus/inproc copies
// each 256 KiB message per Send (0.43 µs per line); bus/cluster costs
// 0.6-0.9 µs per line more (it copies on encoding and per delivery).
// With ~790 lines per bus message, the bus's per-message costs are
// negligible: the lever left is bytes, not messages.
//
// # Testing
//
// Golden files (testdata/format.golden, go test -update) cover every
// directive; TestApacheDifferential runs Debian's apache2 on 127.0.0.1 with
// the same LogFormat, sends both servers the same awkward raw requests and
// compares the lines byte for byte (skipped without apache2, failed when
// PEERSCALE_REQUIRE_TOOLS=1). Publisher tests run on bus/inproc under
// testing/synctest with crash, partition and torn-journal cases; the wire
// and journal decoders are fuzzed.
package logpub
