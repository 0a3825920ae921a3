package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Errors returned by every implementation. Callers test them with errors.Is.
var (
	// ErrClosed is returned by every call on a Bus after Close, and by a
	// Group's Recv and Send after Leave (or after its Bus was closed or crashed).
	ErrClosed = errors.New("bus: closed")
	// ErrTooLarge is returned by Send when the payload exceeds MaxMessageSize.
	ErrTooLarge = errors.New("bus: message too large")
	// ErrBadLevel is returned by Send for a Level that is not one of the
	// declared constants.
	ErrBadLevel = errors.New("bus: invalid delivery level")
	// ErrUnsupportedLevel is returned by Send for a valid Level that an
	// implementation does not provide (it wraps errors.ErrUnsupported).
	ErrUnsupportedLevel = fmt.Errorf("bus: delivery level not supported: %w", errors.ErrUnsupported)
	// ErrBadGroup is returned for a group name that ValidateGroup rejects.
	ErrBadGroup = errors.New("bus: invalid group name")
	// ErrAlreadyJoined is returned by Join when the Bus is already a member of
	// the group. One Bus is one member: join again only after Leave.
	ErrAlreadyJoined = errors.New("bus: already joined")
)

// Level is a delivery service level. Each level includes the guarantees of
// the levels before it, except that Unreliable promises nothing.
type Level uint8

const (
	// Unreliable messages may be lost, duplicated or reordered; Send never
	// blocks on a slow receiver (a full queue drops the message).
	Unreliable Level = iota + 1
	// Reliable messages reach, exactly once, every member that stays in the
	// view in which they were sent; no order is promised.
	Reliable
	// FIFO is Reliable plus per-sender order: the messages of one sender are
	// delivered in the order it sent them, without gaps or duplicates.
	FIFO
	// Causal is provided as Agreed, as in Spread.
	Causal
	// Agreed is FIFO plus one total order that is identical at every member,
	// with views delivered at the same point of that order.
	Agreed
	// Safe is Agreed plus stability: a message is delivered only once every
	// member of the view has it. Implementations may return
	// ErrUnsupportedLevel for it.
	Safe
)

var levelNames = [...]string{"", "unreliable", "reliable", "fifo", "causal", "agreed", "safe"}

// Valid reports whether l is one of the declared levels.
func (l Level) Valid() bool { return l >= Unreliable && l <= Safe }

// Ordered reports whether l promises at least FIFO order.
func (l Level) Ordered() bool { return l >= FIFO && l.Valid() }

// Total reports whether l promises a total order (Causal, Agreed or Safe).
func (l Level) Total() bool { return l >= Causal && l.Valid() }

// String returns the lower-case name of the level.
func (l Level) String() string {
	if l.Valid() {
		return levelNames[l]
	}
	return "level(" + strconv.Itoa(int(l)) + ")"
}

// ParseLevel parses the name printed by Level.String.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if i > 0 && n == s {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrBadLevel, s)
}

// MaxGroupName is the longest group name accepted, in bytes.
const MaxGroupName = 128

// ValidateGroup reports whether name can name a group: 1 to MaxGroupName
// bytes of printable ASCII without spaces. Implementations call it in Join
// and Send; the error wraps ErrBadGroup.
func ValidateGroup(name string) error {
	if name == "" || len(name) > MaxGroupName {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrBadGroup, len(name), MaxGroupName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: byte %#x at %d", ErrBadGroup, c, i)
		}
	}
	return nil
}

// Bus is one member of a group-messaging system: one process incarnation
// that may join groups and send to any group.
//
// All methods are safe for concurrent use.
type Bus interface {
	// Self returns this member's identity, unique per incarnation.
	Self() MemberID
	// Join makes this member a member of group and returns the handle that
	// receives the group's stream. The first event of the stream is a View
	// that contains this member. Joining a group twice without Leave returns
	// ErrAlreadyJoined.
	Join(ctx context.Context, group string) (Group, error)
	// Send multicasts a copy of data to the members of group at level. The
	// sender need not be a member (open groups). Send returns once the
	// message is accepted for delivery; for levels above Unreliable it blocks
	// while a member's receive queue is full, until ctx ends (backpressure).
	// The caller may reuse data after Send returns.
	Send(ctx context.Context, group string, level Level, data []byte) error
	// MaxMessageSize is the largest payload Send accepts.
	MaxMessageSize() int
	// Close leaves every group at once and releases all resources; the
	// other members see this member leave. Close is idempotent and waits for
	// every goroutine the Bus started. Afterwards every method returns
	// ErrClosed.
	Close() error
}

// Group is a Bus's membership of one group and the single ordered stream of
// that group's events (messages and views interleaved), like SP_receive.
//
// Recv must be called by one goroutine at a time; Send and Leave are safe for
// concurrent use.
type Group interface {
	// Name returns the group name.
	Name() string
	// Recv returns the next event: a *Message or a *View. It blocks until
	// one is available or ctx ends. After Leave, or after the Bus closed, it
	// returns ErrClosed (events not yet received are discarded).
	Recv(ctx context.Context) (Event, error)
	// Send is Bus.Send to this group.
	Send(ctx context.Context, level Level, data []byte) error
	// Leave removes this member from the group; the other members see a
	// view without it. Leave is idempotent.
	Leave(ctx context.Context) error
}

// Event is what Group.Recv returns: a *Message or a *View. Use a type switch.
type Event interface {
	isEvent()
}

// Message is a data message as delivered to one member.
type Message struct {
	// Group is the group the message was sent to.
	Group string
	// Sender is the member that sent it (a member of the group or not).
	Sender MemberID
	// Level is the level it was sent at.
	Level Level
	// View is the id of the view in which it is delivered.
	View ViewID
	// Data is the payload. It may be shared with other receivers in the
	// same process: treat it as read-only.
	Data []byte
}

func (*Message) isEvent() {}

func (m *Message) String() string {
	return fmt.Sprintf("message %s from %s at %s in %s (%d bytes)", m.Group, m.Sender, m.Level, m.View, len(m.Data))
}
