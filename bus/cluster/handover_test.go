package cluster

import (
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTakeOverUsesEarlyState checks that a state sent to the next
// coordinator before it saw the old one die is not lost: the take-over
// waits for nobody, instead of waiting SyncTimeout for a state already
// sent.
func TestTakeOverUsesEarlyState(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 1, func(_ int, c *Config) { c.SyncTimeout = time.Hour })
	b := bs[0]
	m := newManager(b)
	old := member{id: bus.MemberID{Name: "old", Incarnation: 1}, meta: meta{Incarnation: 1, Boot: b.meta.Boot - 1}}
	peer := member{id: bus.MemberID{Name: "peer", Incarnation: 1}, meta: meta{Incarnation: 1, Boot: b.meta.Boot + 1}}
	m.alive[old.id] = old
	m.alive[peer.id] = peer
	m.electCoordinator()
	require.Equal(t, old.id, m.coord, "the oldest member coordinates")

	// The peer saw the old coordinator die first and sent its state here.
	m.handle(event{kind: evState, id: peer.id, state: stateMsg{Joined: []string{"g"}}})
	m.handle(event{kind: evLeave, id: old.id})
	m.electCoordinator()

	require.True(t, m.isCoord())
	assert.Empty(t, m.syncWait, "take-over waits for a state it already has")
	assert.Equal(t, map[string]bool{"g": true}, m.wants[peer.id])
	assert.Empty(t, m.early)
}

// TestTakeOverIgnoresOldState checks that a state older than SyncTimeout
// is not taken as the answer to a take-over.
func TestTakeOverIgnoresOldState(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 1, nil)
	b := bs[0]
	m := newManager(b)
	old := member{id: bus.MemberID{Name: "old", Incarnation: 1}, meta: meta{Incarnation: 1, Boot: b.meta.Boot - 1}}
	peer := member{id: bus.MemberID{Name: "peer", Incarnation: 1}, meta: meta{Incarnation: 1, Boot: b.meta.Boot + 1}}
	m.alive[old.id] = old
	m.alive[peer.id] = peer
	m.electCoordinator()
	m.handle(event{kind: evState, id: peer.id, state: stateMsg{Joined: []string{"g"}}})
	es := m.early[peer.id]
	es.at = es.at.Add(-2 * b.cfg.SyncTimeout)
	m.early[peer.id] = es
	m.handle(event{kind: evLeave, id: old.id})
	m.electCoordinator()

	require.True(t, m.isCoord())
	assert.Equal(t, map[bus.MemberID]bool{peer.id: true}, m.syncWait)
}

// TestLinkBackCountsFromNow checks that a link memberlist reports alive
// again after a long absence is not at once unreachable: LinkTimeout
// counts from its return, so a healed partition does not keep the older
// side's coordinator out of the election.
func TestLinkBackCountsFromNow(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 1, nil)
	b := bs[0]
	l := b.linkFor(bus.MemberID{Name: "peer", Incarnation: 1}, "")
	require.NotNil(t, l)
	l.setDown(true)
	long := time.Now().Add(-time.Minute)
	l.idleFor(long) // the link was seen idle a minute ago
	st := stateMsg{}
	l.send(nil, fState, st.encode())
	l.mu.Lock()
	l.ackAt = long // and has waited for an acknowledgement since
	l.mu.Unlock()
	require.Greater(t, l.unreachableFor(time.Now()), 50*time.Second)

	l.setDown(false)
	assert.Less(t, l.unreachableFor(time.Now()), time.Second)
}
