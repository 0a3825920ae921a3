package logsub

import (
	"time"

	"github.com/peerscale/peerscale/internal/strftime"
)

// Strftime is a compiled strftime(3) format, read as glibc does in the C
// locale (the same rules as logpub's %{format}t: flags - _ 0 ^, E and O
// ignored). It names rotated files and rewrites timestamps. A Strftime is
// immutable and safe for concurrent use.
type Strftime struct {
	l *strftime.Layout
}

// CompileStrftime compiles a strftime format. Conversions it does not know
// are copied literally, as glibc does; compiling never fails.
func CompileStrftime(format string) *Strftime {
	return &Strftime{l: strftime.Compile(format)}
}

// String returns the source format.
func (s *Strftime) String() string { return s.l.String() }

// HasConversions reports whether the format contains any conversion other
// than %% (a file name pattern without one is a fixed name).
func (s *Strftime) HasConversions() bool { return s.l.HasConversions() }

// Format returns t formatted.
func (s *Strftime) Format(t time.Time) string { return s.l.Format(t) }

// Append appends t formatted to dst. It allocates nothing when dst has room.
func (s *Strftime) Append(dst []byte, t time.Time) []byte { return s.l.Append(dst, t) }
