//go:build linux

package netfault

import (
	"fmt"
	"strings"
	"testing"

	"github.com/peerscale/peerscale/bus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const snmpSample = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 120
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 12 6 2 0 3 4410 4521 37 0 5 0
Udp: InDatagrams NoPorts InErrors OutDatagrams
Udp: 99 1 0 98
`

func TestSnmpField(t *testing.T) {
	for _, tc := range []struct {
		proto, name string
		want        int64
		err         bool
	}{
		{"Tcp", "RetransSegs", 37, false},
		{"Tcp", "MaxConn", -1, false},
		{"Udp", "InDatagrams", 99, false},
		{"Ip", "InReceives", 120, false},
		{"Tcp", "Missing", 0, true},
		{"Icmp", "InMsgs", 0, true},
	} {
		t.Run(tc.proto+"."+tc.name, func(t *testing.T) {
			got, err := snmpField([]byte(snmpSample), tc.proto, tc.name)
			if tc.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := snmpField([]byte("Tcp: RetransSegs\nTcp:\n"), "Tcp", "RetransSegs")
	assert.Error(t, err, "a values line shorter than its names")
}

// FuzzSnmpField parses arbitrary text without panicking, and reads back a
// counter written in the /proc/net/snmp layout.
func FuzzSnmpField(f *testing.F) {
	f.Add([]byte(snmpSample), "RetransSegs", int64(37))
	f.Add([]byte("Tcp: a\nTcp: x\n"), "b", int64(-5))
	f.Fuzz(func(t *testing.T, text []byte, name string, v int64) {
		_, _ = snmpField(text, "Tcp", name)
		if name == "" || strings.ContainsAny(name, " \t\n\r\v\f\u0085\u00a0") || strings.ContainsFunc(name, func(r rune) bool { return r > 0x7f }) {
			return
		}
		doc := fmt.Sprintf("Ip: X\nIp: 1\nTcp: A %s B\nTcp: 7 %d 9\n", name, v)
		got, err := snmpField([]byte(doc), "Tcp", name)
		if name == "A" || name == "B" || name == "Tcp:" {
			return // the first column of that name wins
		}
		require.NoError(t, err)
		assert.Equal(t, v, got)
	})
}

func TestWireErrors(t *testing.T) {
	for _, s := range sentinels {
		assert.Equal(t, s, fromWire(toWire(s)), "a sentinel comes back as itself")
		wrapped := fmt.Errorf("cluster: send: %w", s)
		back := fromWire(toWire(wrapped))
		assert.ErrorIs(t, back, s)
		assert.Equal(t, wrapped.Error(), back.Error())
	}
	assert.ErrorIs(t, fromWire(toWire(bus.ErrUnsupportedLevel)), bus.ErrUnsupportedLevel)
	other := fromWire(toWire(fmt.Errorf("disk full")))
	assert.EqualError(t, other, "disk full")
	assert.NoError(t, fromWire(toWire(nil)))
}
