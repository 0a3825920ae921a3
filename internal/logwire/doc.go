// Package logwire is the wire format of peerscale's log bus: the batches of
// access-log records that logpub publishers send to a log group, and the
// acknowledgements that logsub loggers send back. Both sides import it;
// nothing else should.
//
// # Messages
//
// Every message starts with two bytes: its encoding version and a Kind
// (KindBatch or KindAck). Batches are version 1 (Version); acks are written
// in version 2 (AckVersion), which adds End to resend entries, and read in
// versions 1 and 2, so publishers are upgraded before loggers. Integers in
// fixed-size fields are big-endian;
// "uvarint"/"varint" are encoding/binary's; a string is a uvarint length
// then its bytes.
//
//	batch  version kind=1  epoch u64  firstSeq u64  dropped u64  count u32
//	       publisher string  record×count
//	record length u32 (of what follows)  time varint (Unix ns, 0 = unknown)
//	       duration uvarint (ns)  status uvarint  bytes varint
//	       vhost remote user method url proto referer userAgent  string×8
//	       line (uvarint length + bytes)  [later fields: skipped by readers]
//	ack    version=2 kind=2  flags u8  logger string  n uvarint
//	       (publisher string  epoch uvarint  next uvarint  resend u8
//	       [end uvarint, when resend = 1])×n
//	       (version 1: the same without end)
//
// A record carries the structured fields subscribers use without parsing
// text (monitors, who's-online) and the formatted line loggers write as is.
// Decoders check every length against the bytes at hand, so a message
// never makes a reader allocate more than its own size; a reader drops a
// message that fails to decode and counts it.
//
// # Reading batches
//
// DecodeBatch returns a Batch whose records own their strings. RecordIter
// (IterRecords) reads the records one at a time into a caller's Record
// whose strings and Line alias the message: nothing is allocated per
// record, which is what loggers and monitors use. Both share one record
// decoder. go test ./internal/logwire -run '^$' -bench Decode -count 5
// (100-record batches of combined lines, shared 2-core machine, medians):
//
//	BenchmarkDecode/RecordIter   ~75-150 ns/record, 0.01 allocs/record (the publisher id, once per batch)
//	BenchmarkDecode/DecodeBatch  ~740-1150 ns/record, 7 allocs/record (6-8× RecordIter in the same run)
//
// # Streams and sequence numbers
//
// A publisher has a stable id (Publisher) and an Epoch that changes each
// time it starts. Within an epoch its records are numbered 1, 2, 3, ...
// without gaps; a batch holds consecutive numbers from FirstSeq. A record
// is identified by (Publisher, Epoch, Seq): loggers deduplicate on it, so
// a publisher may send a record again at any time. Batches are sent to
// the log group at bus.FIFO, so a logger that stays in the view sees each
// stream in order; a record dropped by the publisher because its memory
// and journal were full gets no number (Dropped counts them).
//
// # Acknowledgement protocol
//
// Publishers join the ack group (by default the log group's name with
// ".ack" appended); loggers send acks to it, and also join it so that
// publishers see them arrive in the ack group's views.
//
//   - After each fsync a durable logger sends an Ack with AckDurable and,
//     for every stream that received records since its previous ack
//     (duplicates included, so that retransmitted batches are answered),
//     Next: all records with Seq < Next are on stable storage. Acks are
//     cumulative and idempotent; one message covers all publishers. An
//     Ack names its logger with a stable name: a publisher counts one name
//     once towards its quorum, whatever the logger's incarnation.
//   - A publisher keeps every record in memory or in its local journal
//     until enough durable loggers (its quorum, by default one) have
//     acknowledged it; then it frees the memory and deletes journal
//     segments whose records are all acknowledged. Acks without
//     AckDurable (from monitors, say) never release anything.
//   - A logger that sees a gap in a stream (a batch whose FirstSeq is past
//     the next number it expects, or a new epoch starting after 1) sends an
//     AckEntry with Resend for that stream, Next at the hole and End at the
//     first record it holds above it: the publisher retransmits the batches
//     holding records in [Next, End) that it still has, and nothing past
//     them (End 0, and version 1 acks: everything from Next). A logger
//     misses records only while it is out of the views, so a publisher
//     resends at once the batches it sent before it saw the logger (re)join
//     the ack group; a batch sent since is on its way, and is resent only
//     if the logger repeats the request without progress on the stream for
//     a while (logpub's ResendAfter). A logger repeats a Resend every
//     GapTimeout/4 while the hole lasts.
//   - When a logger starts, and after each view change of the log group or
//     of the ack group that merges or adds members (a publisher starting,
//     the logger back from a partition), it sends an Ack with AckSync
//     naming every stream it holds, at its last commit (with Resend and End
//     for a stream with a hole). A publisher retransmits what that logger
//     lacks among the batches it sent before it saw the logger join the
//     ack group (from Next for listed streams, up to End for those with a
//     hole, everything retained for the others): batches sent since reach
//     the logger anyway, and a hole among them is repaired by Resend. AckSync
//     positions are repeated like other acks, so a publisher that missed
//     the AckSync sees a stuck logger and repairs its tail (below).
//   - A publisher that keeps receiving the same Next for a stream, without
//     progress for a while (logpub's ResendAfter), while it sent batches
//     past it longer ago than that, retransmits those: a tail the logger
//     lost and nothing later reveals to it. A logger that is merely behind
//     makes progress and is sent nothing twice.
//   - A publisher resumes from the first unsent batch after a failed Send
//     (bus outage). Its journal is replayed after a restart, under the old
//     epoch's numbers.
//
// Retransmissions go to the whole log group, so every logger but the one
// that asked sees them as duplicates: loggers remember, per stream, the
// ranges of Seq written and skip records already held.
package logwire
