// Package logsub writes and watches the access logs that web servers
// publish on the bus (package logpub), after spreadlogd and mod_log_spread:
// durable loggers that each keep a full copy of the logs, and lossy live
// monitors.
//
// # Files
//
// A File is an append-only log that rotates by time (at multiples of an
// interval, named by a strftime(3) pattern of the period start, like
// Apache's rotatelogs) and by size (suffixes .1, .2, ...), always between
// two lines. Reopen reopens it after logrotate moved it away.
//
// # Store
//
// A Store routes records to Outputs, like the Log blocks of spreadlogd: a
// file per group or per virtual host ({vhost} in the pattern), or a pipe to
// a command; Match and Exclude regular expressions select lines;
// RewriteTimestamp replaces the first [...] of each line with the receive
// time so that a log merged from servers with skewed clocks stays in order.
//
// # Durability
//
// With StoreConfig.StateFile set, Commit fsyncs every file and then
// atomically replaces the state file with each file's synced offset and the
// sequence ranges, per publisher id and epoch, that those bytes hold. Only
// then does it return acknowledgements for publishers. On open, a Store
// truncates each file back to its committed offset and reloads the ranges,
// so records written after the last commit disappear and are accepted
// again when the publisher replays them, while records already held are
// dropped as duplicates: across a crash every acknowledged record is in the
// files exactly once.
package logsub
