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

	dt, err := decodeData(encodeTotal(bus.Agreed, 12, 99, flagOpen, "g", []byte("p")))
	require.NoError(t, err)
	assert.Equal(t, dataMsg{Level: bus.Agreed, ViewSeq: 12, Seq: 99, Flags: flagOpen, Group: "g", Payload: []byte("p")}, dt)

	vo := v
	vo.Ord, vo.Reset = 77, true
	gvo, err := decodeView(vo.append(nil))
	require.NoError(t, err)
	assert.Equal(t, vo, gvo)

	sto := stateMsg{Joined: []string{"g"}, Orders: []orderState{{Group: "g", Recv: 9, Stable: 3, High: []senderSeq{{ma, 4}, {mb, 5}}, View: bus.ViewID{Seq: 2, Coord: ma}, Members: []bus.MemberID{ma, mb}}}}
	gso, err := decodeState(sto.encode())
	require.NoError(t, err)
	assert.Equal(t, sto, gso)

	o := orderMsg{Group: "g", First: 10, Stable: 8, Tokens: []token{{ma, 1}, {mb, 2}}}
	gof, err := decodeOrder(o.encode())
	require.NoError(t, err)
	assert.Equal(t, o, gof)

	from, fd, err := decodeFwd(encodeFwd(mb, encodeTotal(bus.Causal, 1, 2, 0, "g", []byte("x"))))
	require.NoError(t, err)
	assert.Equal(t, mb, from)
	assert.Equal(t, uint64(2), fd.Seq)

	pg, pos, err := decodeProgress(encodeProgress("g", 5, 6), 2)
	require.NoError(t, err)
	assert.Equal(t, "g", pg)
	assert.Equal(t, []uint64{5, 6}, pos)

	es := []flushEntry{
		{Ord: 1, Token: token{ma, 1}},
		{Ord: 2, Token: token{mb, 7}, Level: bus.Agreed, Payload: []byte("pay")},
		{Ord: 3, View: &vo},
	}
	fg, ges, err := decodeFlush(encodeFlush("g", es))
	require.NoError(t, err)
	assert.Equal(t, "g", fg)
	assert.Equal(t, es, ges)

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
		"data flags":   func() error { _, err := decodeData(encodeTotal(bus.Agreed, 1, 1, 0x80, "g", nil)); return err },
		"order zero": func() error {
			o := orderMsg{Group: "g", Tokens: []token{{ma, 1}}}
			_, err := decodeOrder(o.encode())
			return err
		},
		"order count": func() error { _, err := decodeOrder([]byte{1, 'g', 1, 0, 0xff, 0xff, 0x0f}); return err },
		"fwd level":   func() error { _, _, err := decodeFwd(encodeFwd(ma, encodeData(bus.FIFO, 1, "g", nil))); return err },
		"flush kind":  func() error { _, _, err := decodeFlush([]byte{1, 'g', 1, 1, 9}); return err },
		"flush level": func() error {
			_, _, err := decodeFlush(encodeFlush("g", []flushEntry{{Ord: 1, Token: token{ma, 1}, Level: bus.FIFO, Payload: []byte("x")}}))
			return err
		},
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
	rec = appendFrame(rec, fData, 6, encodeTotal(bus.Agreed, 1, 3, flagOpen, "g", []byte("z")))
	o := orderMsg{Group: "g", First: 4, Stable: 2, Tokens: []token{{ma, 3}}}
	rec = appendFrame(rec, fOrder, 7, o.encode())
	rec = appendFrame(rec, fFwd, 8, encodeFwd(ma, encodeTotal(bus.Agreed, 1, 3, 0, "g", []byte("z"))))
	rec = appendFrame(rec, fProgress, 9, encodeProgress("g", 4))
	rec = appendFrame(rec, fFlushReq, 10, encodeProgress("g", 1, 4))
	vo := v
	vo.Ord = 3
	rec = appendFrame(rec, fFlush, 11, encodeFlush("g", []flushEntry{{Ord: 3, View: &vo}, {Ord: 4, Token: token{ma, 3}, Level: bus.Agreed, Payload: []byte("z")}}))
	f.Add(rec)
	f.Add([]byte{fBye, 0})
	f.Add(appendFrame(nil, fPing, 12, nil))
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
					again, err := decodeData(encodeTotal(m.Level, m.ViewSeq, m.Seq, m.Flags, m.Group, m.Payload))
					if err != nil || !bytes.Equal(again.Payload, m.Payload) || again.Group != m.Group || again.Seq != m.Seq {
						t.Fatalf("data round trip: %v", err)
					}
				}
			case fOrder:
				if o, err := decodeOrder(body); err == nil {
					again, err := decodeOrder(o.encode())
					if err != nil || len(again.Tokens) != len(o.Tokens) {
						t.Fatalf("order round trip: %v", err)
					}
				}
			case fFwd:
				if from, m, err := decodeFwd(body); err == nil {
					if f2, _, err := decodeFwd(encodeFwd(from, encodeTotal(m.Level, m.ViewSeq, m.Seq, m.Flags, m.Group, m.Payload))); err != nil || f2 != from {
						t.Fatalf("forward round trip: %v", err)
					}
				}
			case fProgress, fFlushReq:
				n := 1
				if typ == fFlushReq {
					n = 2
				}
				if g, pos, err := decodeProgress(body, n); err == nil {
					if _, again, err := decodeProgress(encodeProgress(g, pos...), n); err != nil || len(again) != n {
						t.Fatalf("progress round trip: %v", err)
					}
				}
			case fFlush:
				if g, es, err := decodeFlush(body); err == nil {
					if _, again, err := decodeFlush(encodeFlush(g, es)); err != nil || len(again) != len(es) {
						t.Fatalf("flush round trip: %v", err)
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
