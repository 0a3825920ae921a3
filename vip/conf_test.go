package vip

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sampleConf = `# wackamole.conf
Spread = 4803
SpreadRetryInterval = 5s
Group = wack1
Control = /var/run/wack.it

mature = 5s
Balance {
  AcquisitionsPerRound = all
  interval = 4s
}
Arp-Cache = 90s

Prefer { eth1:198.19.0.11/32 }

VirtualInterfaces {
  { eth0:198.18.0.10/32 eth1:198.19.0.10/32 }
  { eth0:198.18.0.11/32 eth1:198.19.0.11/32 }
  eth0:2001:db8::10/128
}

Notify {
  eth0:198.18.0.1/32
  eth0:198.18.0.0/24 throttle 16
  arp-cache
}
`

func TestParseConfSample(t *testing.T) {
	c, err := ParseConf(strings.NewReader(sampleConf))
	require.NoError(t, err)
	assert.Equal(t, "4803", c.Spread)
	assert.Equal(t, 5*time.Second, c.SpreadRetryInterval)
	assert.Equal(t, "wack1", c.Group)
	assert.Equal(t, "/var/run/wack.it", c.Control)
	assert.Equal(t, 5*time.Second, c.Mature)
	assert.Equal(t, Balance{AcquisitionsPerRound: 0, Interval: 4 * time.Second}, c.Balance)
	assert.Equal(t, 90*time.Second, c.ARPCache)
	require.Len(t, c.VIFs, 3)
	assert.Equal(t, "eth0:198.18.0.10", c.VIFs[0].Name)
	assert.Equal(t, []Address{
		{Dev: "eth0", IP: netip.MustParseAddr("198.18.0.11")},
		{Dev: "eth1", IP: netip.MustParseAddr("198.19.0.11")},
	}, c.VIFs[1].Addrs)
	assert.Equal(t, netip.MustParseAddr("2001:db8::10"), c.VIFs[2].Addrs[0].IP)
	assert.Equal(t, []string{"eth0:198.18.0.11"}, c.Prefer)
	assert.Equal(t, []NotifyTarget{
		{Dev: "eth0", Prefix: netip.MustParsePrefix("198.18.0.1/32")},
		{Dev: "eth0", Prefix: netip.MustParsePrefix("198.18.0.0/24"), Throttle: 16},
	}, c.Notify)
	assert.True(t, c.NotifyARPCache)

	var buf bytes.Buffer
	require.NoError(t, c.Format(&buf))
	again, err := ParseConf(&buf)
	require.NoError(t, err)
	assert.Equal(t, c, again)
}

func TestParseConfErrors(t *testing.T) {
	for name, in := range map[string]string{
		"unknown keyword":   "Frobnicate = 1",
		"missing value":     "Group =",
		"bad duration":      "Mature = soon",
		"negative duration": "Mature = -1s",
		"bad balance":       "Balance { AcquisitionsPerRound = 0 }",
		"unclosed balance":  "Balance { Interval = 1s",
		"bad address":       "VirtualInterfaces { eth0:999.1.1.1 }",
		"no device":         "VirtualInterfaces { 198.18.0.1 }",
		"empty vif":         "VirtualInterfaces { { } }",
		"duplicate address": "VirtualInterfaces { eth0:198.18.0.1 eth1:198.18.0.1 }",
		"twice":             "VirtualInterfaces { eth0:198.18.0.1 } VirtualInterfaces { eth0:198.18.0.2 }",
		"prefer unknown":    "VirtualInterfaces { eth0:198.18.0.1 } Prefer eth0:198.18.0.2",
		"bad notify":        "Notify { 198.18.0.1 }",
		"bad throttle":      "Notify { eth0:198.18.0.1 throttle x }",
		"value is brace":    "Group = {",
	} {
		_, err := ParseConf(strings.NewReader(in))
		require.Error(t, err, name)
		assert.ErrorIs(t, err, ErrBadConfig, name)
		if name != "prefer unknown" && name != "duplicate address" {
			assert.Contains(t, err.Error(), "line 1", name)
		}
	}
	_, err := ParseConf(strings.NewReader(strings.Repeat("#", maxConfSize+1)))
	assert.ErrorIs(t, err, ErrBadConfig)
}

func FuzzParseConf(f *testing.F) {
	f.Add(sampleConf)
	f.Add("Prefer None\nVirtualInterfaces { eth0:198.18.0.1 }")
	f.Add("Balance { AcquisitionsPerRound = 2 interval = 1 }")
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseConf(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := c.Format(&buf); err != nil {
			t.Fatal(err)
		}
		again, err := ParseConf(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("reparsing %q: %v", buf.String(), err)
		}
		assert.Equal(t, c, again)
	})
}
