package cluster

import (
	"bytes"
	"errors"
	"testing"

	"github.com/peerscale/peerscale/bus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	ma = bus.MemberID{Name: "a", Incarnation: 1}
	mb = bus.MemberID{Name: "b", Incarnation: 0xfeed}
)

func TestFrameRoundTrips(t *testing.T) {
	h := hello{Label: "prod", From: ma, To: mb, Sealed: true, FromEpoch: 7, ToEpoch: 9, LastRecv: 1 << 40, Credit: 4096}
	h.Nonce[3] = 5
	gh, err := decodeHello(h.encode())
	require.NoError(t, err)
	assert.Equal(t, h, gh)

	v := viewMsg{Group: "g", ID: bus.ViewID{Seq: 3, Coord: ma}, Members: []bus.MemberID{ma, mb}, Previous: []bus.ViewID{{Seq: 2, Coord: mb}}}
	gv, err := decodeView(v.append(nil))
	require.NoError(t, err)
	assert.Equal(t, v, gv)

	st := stateMsg{Joined: []string{"g", "h"}, Views: []viewMsg{v, v}}
	gs, err := decodeState(st.encode())
	require.NoError(t, err)
	assert.Equal(t, st, gs)

	m := meta{Incarnation: 42, Boot: -5, DataAddr: "127.0.0.1:7946"}
	gm, err := decodeMeta(m.encode())
	require.NoError(t, err)
	assert.Equal(t, m, gm)

	d, err := decodeData(encodeData(bus.FIFO, 12, "g", []byte("payload")))
	require.NoError(t, err)
	assert.Equal(t, dataMsg{Level: bus.FIFO, ViewSeq: 12, Group: "g", Payload: []byte("payload")}, d)

	g, seq, err := decodeStable(encodeStable("g", 77))
	require.NoError(t, err)
	assert.Equal(t, "g", g)
	assert.Equal(t, uint64(77), seq)

	var rec []byte
	rec = appendFrame(rec, fData, 5, []byte("x"))
	rec = appendFrame(rec, fAck, 0, []byte{1})
	var types []byte
	require.NoError(t, eachFrame(rec, func(typ byte, body []byte) error {
		types = append(types, typ)
		return nil
	}))
	assert.Equal(t, []byte{fData, fAck}, types)
}

func TestFrameRejects(t *testing.T) {
	cases := map[string]func() error{
		"hello magic":   func() error { _, err := decodeHello([]byte("XXXX\x01")); return err },
		"hello version": func() error { _, err := decodeHello([]byte("PSBL\x09")); return err },
		"hello trailing": func() error {
			h := hello{From: ma, To: mb, Credit: 1}
			_, err := decodeHello(append(h.encode(), 0))
			return err
		},
		"data level": func() error { _, err := decodeData(encodeData(9, 1, "g", nil)); return err },
		"data group": func() error { _, err := decodeData(encodeData(bus.FIFO, 1, "a b", nil)); return err },
		"view count": func() error {
			_, err := decodeView([]byte{1, 'g', 1, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
			return err
		},
		"state count":  func() error { _, err := decodeState([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); return err },
		"meta short":   func() error { _, err := decodeMeta([]byte{protoVersion, 1, 2}); return err },
		"frame length": func() error { return eachFrame([]byte{fData, 0x7f, 1}, func(byte, []byte) error { return nil }) },
		"stable extra": func() error { _, _, err := decodeStable(append(encodeStable("g", 1), 0)); return err },
	}
	for name, f := range cases {
		err := f()
		assert.Error(t, err, name)
		assert.True(t, errors.Is(err, errMalformed) || errors.Is(err, errVersion), "%s: %v", name, err)
	}
}

func FuzzFrames(f *testing.F) {
	var rec []byte
	rec = appendFrame(rec, fData, 1, encodeData(bus.FIFO, 1, "g", []byte("x")))
	rec = appendFrame(rec, fUnrel, 0, encodeData(bus.Unreliable, 1, "g", []byte("y")))
	rec = appendFrame(rec, fAck, 0, []byte{3})
	v := viewMsg{Group: "g", ID: bus.ViewID{Seq: 3, Coord: ma}, Members: []bus.MemberID{ma, mb}}
	rec = appendFrame(rec, fView, 2, v.append(nil))
	st := stateMsg{Joined: []string{"g"}, Views: []viewMsg{v}}
	rec = appendFrame(rec, fState, 3, st.encode())
	rec = appendFrame(rec, fStable, 4, encodeStable("g", 3))
	rec = appendFrame(rec, fCredit, 5, encodeCredit("g", 3))
	f.Add(rec)
	f.Add([]byte{fBye, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = eachFrame(in, func(typ byte, body []byte) error {
			if sequenced(typ) {
				d := dec{b: body}
				d.uvarint("seq")
				if d.err != nil {
					return d.err
				}
				body = d.b
			}
			switch typ {
			case fData, fUnrel:
				if m, err := decodeData(body); err == nil {
					again, err := decodeData(encodeData(m.Level, m.ViewSeq, m.Group, m.Payload))
					if err != nil || !bytes.Equal(again.Payload, m.Payload) || again.Group != m.Group {
						t.Fatalf("data round trip: %v", err)
					}
				}
			case fView:
				if v, err := decodeView(body); err == nil {
					if _, err := decodeView(v.append(nil)); err != nil {
						t.Fatalf("view round trip: %v", err)
					}
				}
			case fState:
				if s, err := decodeState(body); err == nil {
					if _, err := decodeState(s.encode()); err != nil {
						t.Fatalf("state round trip: %v", err)
					}
				}
			case fStable:
				decodeStable(body)
			case fCredit:
				if g, n, err := decodeCredit(body); err == nil {
					if g2, n2, err := decodeCredit(encodeCredit(g, n)); err != nil || g2 != g || n2 != n {
						t.Fatalf("credit round trip: %v", err)
					}
				}
			}
			return nil
		})
	})
}

func FuzzHello(f *testing.F) {
	h := hello{Label: "l", From: ma, To: mb, FromEpoch: 1, Credit: 1}
	f.Add(h.encode())
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := decodeHello(in)
		if err != nil {
			return
		}
		again, err := decodeHello(h.encode())
		require.NoError(t, err)
		require.Equal(t, h, again)
	})
}

func FuzzMeta(f *testing.F) {
	m := meta{Incarnation: 1, Boot: 2, DataAddr: "127.0.0.1:1"}
	f.Add(m.encode())
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decodeMeta(in)
		if err != nil {
			return
		}
		again, err := decodeMeta(m.encode())
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}
