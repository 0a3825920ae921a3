package vip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// Wire limits: a peer's message beyond them is rejected as malformed.
const (
	wireVersion  = 1
	maxWireItems = 4096
)

// Message kinds.
const (
	kindState = "state"
	kindMoves = "moves"
)

// message is one announcement on the group, tagged with the view it was
// sent in. A "state" carries the sender's State (Initial for the one sent
// when the view was installed, the planner's input); "moves" carries the
// leader's reassignments, applied in order after the plan.
type message struct {
	Version int        `json:"v"`
	Kind    string     `json:"k"`
	View    bus.ViewID `json:"view"`
	Initial bool       `json:"init,omitempty"`
	State   *State     `json:"state,omitempty"`
	Moves   []Move     `json:"moves,omitempty"`
}

func encodeMessage(m *message) ([]byte, error) {
	m.Version = wireVersion
	return json.Marshal(m)
}

// decodeMessage parses and validates a peer's message. The error wraps
// ErrBadMessage.
func decodeMessage(data []byte) (*message, error) {
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if m.Version != wireVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadMessage, m.Version)
	}
	switch m.Kind {
	case kindState:
		if m.State == nil || len(m.Moves) > 0 {
			return nil, fmt.Errorf("%w: state message without state", ErrBadMessage)
		}
		s := m.State
		if len(s.Holdings) > maxWireItems || len(s.Prefer) > maxWireItems || len(s.Neighbors) > maxNeighbors {
			return nil, fmt.Errorf("%w: too many items", ErrBadMessage)
		}
		for _, h := range s.Holdings {
			if h.VIF == "" || len(h.VIF) > maxName || h.HeldFor < 0 || h.HeldFor > 100*365*24*time.Hour {
				return nil, fmt.Errorf("%w: bad holding %q", ErrBadMessage, h.VIF)
			}
		}
		for _, p := range s.Prefer {
			if p == "" || len(p) > maxName {
				return nil, fmt.Errorf("%w: bad preference %q", ErrBadMessage, p)
			}
		}
		for _, a := range s.Neighbors {
			if !a.IsValid() || a.Zone() != "" {
				return nil, fmt.Errorf("%w: bad neighbour %v", ErrBadMessage, a)
			}
		}
		if len(s.Digest) > 64 {
			return nil, fmt.Errorf("%w: bad digest", ErrBadMessage)
		}
	case kindMoves:
		if m.State != nil || len(m.Moves) == 0 || len(m.Moves) > maxWireItems {
			return nil, fmt.Errorf("%w: bad moves message", ErrBadMessage)
		}
		for _, mv := range m.Moves {
			if mv.VIF == "" || len(mv.VIF) > maxName || mv.To.IsZero() {
				return nil, fmt.Errorf("%w: bad move %q", ErrBadMessage, mv.VIF)
			}
		}
	default:
		return nil, fmt.Errorf("%w: kind %q", ErrBadMessage, m.Kind)
	}
	return &m, nil
}
