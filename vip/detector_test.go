package vip

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestDefaultDetector(t *testing.T) {
	d := DefaultDetector()
	assert.Less(t, d.ProbeTimeout, d.ProbeInterval, "a direct probe times out within its interval")
	assert.Less(t, d.GossipInterval, d.ProbeInterval)
	// SuspicionMult 2: memberlist expects no confirmations (mult − 2), so
	// the suspicion timeout is fixed.
	assert.Equal(t, 2, d.SuspicionMult)
	// A failure is declared one failed probe plus the suspicion timeout
	// after the next probe of the member: with a probe due within one
	// interval, 0.6 s.
	detect := d.ProbeInterval + d.ProbeInterval + time.Duration(d.SuspicionMult)*d.ProbeInterval
	assert.LessOrEqual(t, detect, 600*time.Millisecond)
	assert.Less(t, d.SyncTimeout, 2*d.ProbeInterval)
}
