// Package strftime formats times with strftime(3) formats as glibc reads
// them in the C locale, without allocating.
//
// # Usage
//
// Compile a format once and append with it on every call:
//
//	l := strftime.Compile("%d/%b/%Y:%H:%M:%S %z")
//	buf = l.Append(buf[:0], time.Now())
//
// logpub uses it for Apache's %{format}t and logsub for rotatelogs-style
// file names and rewritten timestamps. AppendCLF is a fast path for
// Apache's %t, [02/Jan/2006:15:04:05 -0700].
//
// # Conversions
//
// Every conversion of glibc's strftime in the C locale: %a %A %b %B %c %C
// %d %D %e %F %g %G %h %H %I %j %k %l %m %M %n %p %P %r %R %s %S %t %T %u
// %U %V %w %W %x %X %y %Y %z %Z %%, with the flags - (no padding), _ (pad
// with spaces), 0 (pad with zeros) and ^ (upper case), and the E and O
// modifiers, which the C locale ignores. A conversion it does not know is
// copied literally, as glibc does, so compiling never fails. Years are
// printed without padding (glibc prints year 999 as "999").
//
// # Concurrency
//
// A *Layout is immutable and safe for concurrent use.
//
// # Testing
//
// The tests compare every conversion and flag with GNU date in the C locale
// around year and ISO-week edges (skipped when date is missing, failing
// instead when PEERSCALE_REQUIRE_TOOLS=1). Append allocates nothing when
// dst has room. go test ./internal/strftime -run '^$' -bench . -count 5 on a
// shared, loaded 2-core machine (wall time, medians):
//
//	BenchmarkAppend/AppendCLF  ~60-130 ns, 0 allocs
//	BenchmarkAppend/clf        ~200-480 ns ("[%d/%b/%Y:%H:%M:%S %z]"), 0 allocs
//	BenchmarkAppend/iso        ~230-540 ns ("%Y-%m-%dT%H:%M:%S%z"), 0 allocs
//	BenchmarkAppend/all        ~2.5-3.9 µs (every conversion and flag), 0 allocs
package strftime
