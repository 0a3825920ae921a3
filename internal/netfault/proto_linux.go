//go:build linux

package netfault

import (
	"context"
	"errors"

	"github.com/peerscale/peerscale/bus"
)

// The parent and a member process talk gob over two pipes (fd 3 into the
// child, fd 4 out of it). Requests carry an id; each gets one reply with
// that id. Events of a joined group flow unasked, within a credit the
// parent replenishes as its Recv consumes them.

// envMember carries the JSON MemberSpec into a member process.
const envMember = "PEERSCALE_NETFAULT_MEMBER"

// Request operations.
const (
	opJoin   = "join"   // Group; the reply's ID names the stream
	opLeave  = "leave"  // Stream
	opSend   = "send"   // Group, Level, Data
	opBatch  = "batch"  // Group, Level, Batch: sent in order; reply N
	opCancel = "cancel" // Target: cancel that request's context
	opCredit = "credit" // Stream, N: the parent consumed N events
	opClose  = "close"  // close the Bus
	opStats  = "stats"  // the Bus's Stats() as JSON
)

type request struct {
	ID     uint64
	Op     string
	Group  string
	Level  bus.Level
	Data   []byte
	Batch  [][]byte
	Stream uint64
	Target uint64
	N      int
}

// Reply kinds.
const (
	kindHello = iota + 1 // Self, MaxSize or Err
	kindReply            // ID, Err
	kindEvent            // Stream, View or Msg
	kindEnd              // Stream, Err: the stream's Recv failed
)

type reply struct {
	Kind    int
	ID      uint64
	Err     *wireError
	Self    bus.MemberID
	MaxSize int
	Stream  uint64
	N       int
	JSON    []byte
	View    *bus.View
	Msg     *bus.Message
}

// wireError carries an error across the pipe, keeping the sentinel it
// wraps (Code indexes sentinels, from 1).
type wireError struct {
	Code int
	Msg  string
}

var sentinels = []error{
	bus.ErrClosed, bus.ErrTooLarge, bus.ErrBadLevel, bus.ErrUnsupportedLevel,
	bus.ErrBadGroup, bus.ErrAlreadyJoined, context.Canceled, context.DeadlineExceeded,
	errors.ErrUnsupported,
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Msg: err.Error()}
	for i, s := range sentinels {
		if errors.Is(err, s) {
			w.Code = i + 1
			break
		}
	}
	return w
}

// remoteError is an error returned in a member process.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func fromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	if w.Code >= 1 && w.Code <= len(sentinels) {
		s := sentinels[w.Code-1]
		if s.Error() == w.Msg {
			return s
		}
		return &remoteError{msg: w.Msg, sentinel: s}
	}
	return &remoteError{msg: w.Msg}
}
