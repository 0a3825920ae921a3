package logsub

import "errors"

// Errors returned by the package. Callers test them with errors.Is.
var (
	// ErrClosed is returned by calls on a closed File, Sink or Logger.
	ErrClosed = errors.New("logsub: closed")
	// ErrConfig reports an invalid configuration.
	ErrConfig = errors.New("logsub: bad config")
	// ErrBadLine is returned for a line that cannot be written as one line.
	ErrBadLine = errors.New("logsub: bad line")
	// ErrBadState reports a committed-state file that cannot be read.
	ErrBadState = errors.New("logsub: bad state file")
)
