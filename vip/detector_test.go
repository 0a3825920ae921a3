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
	// Documented: declared failed 0.3–0.5 s after the fault (probe wait
	// of up to one interval, one failed probe, the suspicion timeout),
	// under 3 intervals of silence tolerated.
	detect := d.ProbeInterval + d.ProbeInterval + time.Duration(d.SuspicionMult)*d.ProbeInterval
	assert.LessOrEqual(t, detect, 600*time.Millisecond)
	assert.Less(t, d.SyncTimeout, 2*d.ProbeInterval)
}
