package cluster

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// sniffConn copies what is written on a connection.
type sniffConn struct {
	net.Conn
	mu  *sync.Mutex
	out *bytes.Buffer
}

func (c sniffConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestKeyEncryptsLinks checks that with a key the members talk, and the
// payload never appears in clear on a data connection.
func TestKeyEncryptsLinks(t *testing.T) {
	leakcheck.Check(t)
	var mu sync.Mutex
	var wire bytes.Buffer
	bs := startN(t, 3, func(i int, c *Config) {
		c.Key = testKey
		c.Label = "secure"
		c.wrapConn = func(nc net.Conn) net.Conn { return sniffConn{nc, &mu, &wire} }
	})
	// A group name long enough that ciphertext cannot contain it by chance.
	group := "group-name-that-must-not-appear-in-clear"
	gs := joinAll(t, bs, group)
	secret := []byte("attack at dawn, attack at dawn!")
	require.NoError(t, bs[0].Send(ctxT(t, 10*time.Second), group, bus.FIFO, append(payload(0, 8), secret...)))
	for _, g := range gs {
		for {
			ev, err := g.Recv(ctxT(t, 10*time.Second))
			require.NoError(t, err)
			if m, ok := ev.(*bus.Message); ok {
				assert.True(t, bytes.Contains(m.Data, secret))
				break
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, wire.Len())
	assert.False(t, bytes.Contains(wire.Bytes(), secret), "payload sent in clear")
	assert.False(t, bytes.Contains(wire.Bytes(), []byte(group)), "group name sent in clear")
}

// TestWrongKeyOrLabelCannotJoin checks that memberlist keeps out members
// with another key or label.
func TestWrongKeyOrLabelCannotJoin(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 1, func(i int, c *Config) { c.Key = testKey; c.Label = "prod" })
	for name, tweak := range map[string]func(*Config){
		"no key":      func(c *Config) { c.Label = "prod" },
		"other key":   func(c *Config) { c.Key = bytes.Repeat([]byte{8}, 32); c.Label = "prod" },
		"other label": func(c *Config) { c.Key = testKey; c.Label = "test" },
	} {
		cfg := testConfig(5)
		cfg.Seeds = []string{bs[0].GossipAddr()}
		cfg.RejoinInterval = -1
		cfg.SyncTimeout = 100 * time.Millisecond
		cfg.DialTimeout = 200 * time.Millisecond
		tweak(&cfg)
		o, err := New("intruder", cfg)
		require.NoError(t, err, name)
		assert.Equal(t, 1, o.ml.NumMembers(), name)
		assert.Equal(t, 1, bs[0].ml.NumMembers(), name)
		require.NoError(t, o.Close())
	}
}

// TestForgedLinkRefused dials a member's data port without the key,
// claiming to be a member: the link is refused, nothing is delivered.
func TestForgedLinkRefused(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 2, func(i int, c *Config) { c.Key = testKey })
	gs := joinAll(t, bs, "g")
	// The higher id is the acceptor: forge the lower one's hello.
	victim, spoofed := bs[0], bs[1]
	if victim.Self().Compare(spoofed.Self()) < 0 {
		victim, spoofed = spoofed, victim
		gs[0], gs[1] = gs[1], gs[0]
	}
	before := victim.Stats().BadFrames
	for _, sealed := range []bool{true, false} {
		c, err := net.Dial("tcp", victim.meta.DataAddr)
		require.NoError(t, err)
		w := wire.NewWriter(c, 4096)
		h := hello{From: spoofed.Self(), To: victim.Self(), Sealed: sealed, FromEpoch: 99, Credit: 10}
		require.NoError(t, w.Write(h.encode()))
		// A data frame in a record sealed with a wrong key, or in clear.
		var rec []byte
		rec = appendFrame(rec, fData, 1, encodeData(bus.FIFO, 1<<20, "g", []byte("forged")))
		if sealed {
			k, _, err := wire.Keys(bytes.Repeat([]byte{9}, 32), []byte("x"))
			require.NoError(t, err)
			w.Write(nil)
			w.Seal(k)
		}
		w.Write(rec)
		w.Flush()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Read(make([]byte, 1<<16))
		for err == nil {
			_, err = c.Read(make([]byte, 1<<16))
		}
		c.Close()
	}
	waitFor(t, 10*time.Second, func() bool { return victim.Stats().BadFrames >= before+2 }, "both forged links counted")
	// The real link still works and the forged message never arrives.
	require.NoError(t, spoofed.Send(ctxT(t, 10*time.Second), "g", bus.FIFO, payload(0, 8)))
	for {
		ev, err := gs[0].Recv(ctxT(t, 10*time.Second))
		require.NoError(t, err)
		if m, ok := ev.(*bus.Message); ok {
			assert.Equal(t, payload(0, 8), m.Data)
			break
		}
	}
}

// TestMalformedFrameClosesLink sends malformed frames on links from a known
// peer: each link is closed with a logged reason, the others go on.
func TestMalformedFrameClosesLink(t *testing.T) {
	leakcheck.Check(t)
	bs := startN(t, 2, nil)
	gs := joinAll(t, bs, "g")
	acceptor, dialer := bs[0], bs[1]
	// A member the acceptor knows and does not dial (smaller id).
	fake := bus.MemberID{Name: "0fake", Incarnation: 1}
	require.NotNil(t, acceptor.linkFor(fake, ""))
	before := acceptor.Stats().BadFrames
	for _, rec := range [][]byte{
		{fData, 3, 1, 2},                 // truncated data frame
		{0x42, 0},                        // unknown frame type
		{fAck, 2, 0xff, 0x7f},            // ack beyond anything sent
		{fData, 2, 5, 0},                 // sequence gap
		bytes.Repeat([]byte{0xff}, 1000), // garbage
	} {
		c, err := net.Dial("tcp", acceptor.meta.DataAddr)
		require.NoError(t, err)
		w := wire.NewWriter(c, 4096)
		h := hello{From: fake, To: acceptor.Self(), FromEpoch: 12345, Credit: 10}
		require.NoError(t, w.Write(h.encode()))
		require.NoError(t, w.Write(rec))
		require.NoError(t, w.Flush())
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1<<16)
		for err == nil {
			_, err = c.Read(buf)
		}
		c.Close()
	}
	waitFor(t, 10*time.Second, func() bool { return acceptor.Stats().BadFrames >= before+5 }, "malformed frames counted")
	// An oversized record header is refused before reading its body.
	c, err := net.Dial("tcp", acceptor.meta.DataAddr)
	require.NoError(t, err)
	c.Write([]byte{0x7f, 0xff, 0xff, 0xff})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 16))
	assert.Error(t, err)
	c.Close()
	// The genuine links are untouched.
	require.NoError(t, dialer.Send(ctxT(t, 20*time.Second), "g", bus.FIFO, payload(0, 8)))
	for {
		ev, err := gs[0].Recv(ctxT(t, 20*time.Second))
		require.NoError(t, err)
		if m, ok := ev.(*bus.Message); ok && m.Sender == dialer.Self() {
			break
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New("a", Config{Key: []byte("short")})
	assert.ErrorIs(t, err, ErrBadKey)
	_, err = New("", Config{})
	assert.Error(t, err)
}
