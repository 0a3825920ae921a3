package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/bus"
)

func TestWireRoundTrip(t *testing.T) {
	a, b := mid("a"), mid("b")
	msgs := []*message{
		{Kind: kindState, View: bus.ViewID{Seq: 3, Coord: a}, Initial: true, State: &State{
			Member: a, Digest: "abc", Mature: true, Prefer: []string{"x"},
			Holdings:  []Holding{{VIF: "x", HeldFor: 1500 * time.Millisecond}},
			Neighbors: []netip.Addr{netip.MustParseAddr("198.18.0.7"), netip.MustParseAddr("2001:2::7")},
		}},
		{Kind: kindMoves, View: bus.ViewID{Seq: 4, Coord: b}, Moves: []Move{{VIF: "x", From: a, To: b}, {VIF: "y", To: a}}},
	}
	for _, m := range msgs {
		data, err := encodeMessage(m)
		require.NoError(t, err)
		got, err := decodeMessage(data)
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
}

func TestWireRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      "\x00\x01",
		"version":       `{"v":2,"k":"state","state":{}}`,
		"kind":          `{"v":1,"k":"purge"}`,
		"empty state":   `{"v":1,"k":"state"}`,
		"empty moves":   `{"v":1,"k":"moves"}`,
		"move to zero":  `{"v":1,"k":"moves","moves":[{"VIF":"x"}]}`,
		"negative age":  `{"v":1,"k":"state","state":{"Holdings":[{"VIF":"x","HeldFor":-1}]}}`,
		"empty holding": `{"v":1,"k":"state","state":{"Holdings":[{"VIF":""}]}}`,
		"bad neighbour": `{"v":1,"k":"state","state":{"Neighbors":[""]}}`,
	} {
		_, err := decodeMessage([]byte(in))
		assert.ErrorIs(t, err, ErrBadMessage, name)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"v":1,"k":"state","view":{"Seq":1},"init":true,"state":{"Member":{"Name":"a","Incarnation":1},"Digest":"d","Mature":true,"Holdings":[{"VIF":"x","HeldFor":5}]}}`))
	f.Add([]byte(`{"v":1,"k":"moves","view":{"Seq":2},"moves":[{"VIF":"x","To":{"Name":"b","Incarnation":2}}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		again, err := encodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMessage(again)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", again, err)
		}
		assert.Equal(t, m, m2)
	})
}

func BenchmarkDecodeMessage(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("holdings=%d", n), func(b *testing.B) {
			s := &State{Member: mid("a"), Digest: "0123456789abcdef", Mature: true}
			for i := range n {
				s.Holdings = append(s.Holdings, Holding{VIF: fmt.Sprintf("eth0:198.18.%d.%d", i/256, i%256), HeldFor: time.Duration(i) * time.Second})
			}
			data, err := encodeMessage(&message{Kind: kindState, View: bus.ViewID{Seq: 9, Coord: mid("a")}, Initial: true, State: s})
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeMessage(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes/msg")
		})
	}
}
