//go:build linux

package netfault_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/bustest"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/internal/netfault"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const port = 9000

// listen opens a TCP listener and a UDP socket on host's address, inside
// host's namespace.
func listen(t *testing.T, lab *netfault.Lab, host string) (net.Listener, net.PacketConn) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	require.NoError(t, lab.Do(host, func() error {
		addr := netip.AddrPortFrom(lab.Addr(host), port).String()
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", addr)
		return err
	}))
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, pc
}

// dialTCP dials host to's listener from host from with a short timeout.
func dialTCP(lab *netfault.Lab, from, to string) error {
	return lab.Do(from, func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		c, err := d.Dial("tcp", netip.AddrPortFrom(lab.Addr(to), port).String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// udpDelivered sends n datagrams from host from to pc (on host to) and
// returns how many arrived.
func udpDelivered(t *testing.T, lab *netfault.Lab, from, to string, pc net.PacketConn, n int) int {
	t.Helper()
	var c net.Conn
	require.NoError(t, lab.Do(from, func() error {
		var err error
		c, err = net.Dial("udp", netip.AddrPortFrom(lab.Addr(to), port).String())
		return err
	}))
	defer c.Close()
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		count := 0
		for {
			pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := pc.ReadFrom(buf); err != nil {
				got <- count
				return
			}
			count++
		}
	}()
	for i := range n {
		_, err := fmt.Fprintf(c, "datagram %d", i)
		require.NoError(t, err)
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // stay below the receive buffer
		}
	}
	return <-got
}

func TestCutTCP(t *testing.T) {
	leakcheck.Check(t)
	lab := netfault.New(t, "a", "b")
	_, pc := listen(t, lab, "b")
	require.NoError(t, dialTCP(lab, "a", "b"), "before the cut")
	require.Equal(t, 20, udpDelivered(t, lab, "a", "b", pc, 20), "UDP before the cut")

	lab.CutTCP([]string{"a"}, []string{"b"})
	err := dialTCP(lab, "a", "b")
	var ne net.Error
	require.ErrorAs(t, err, &ne, "a TCP dial across the cut must fail")
	assert.True(t, ne.Timeout(), "the dial must time out (silent drop), got %v", err)
	assert.Equal(t, 20, udpDelivered(t, lab, "a", "b", pc, 20), "UDP passes a TCP-only cut")
	assert.Positive(t, lab.Dropped("b"), "b's rule counted the SYNs")
	assert.Len(t, lab.Rules("a"), 1)

	lab.Heal()
	assert.Empty(t, lab.Rules("a"))
	assert.Zero(t, lab.Dropped("b"))
	require.NoError(t, dialTCP(lab, "a", "b"), "after Heal")
}

func TestCutPartition(t *testing.T) {
	leakcheck.Check(t)
	hosts := []string{"a", "b", "c", "d"}
	lab := netfault.New(t, hosts...)
	pcs := make(map[string]net.PacketConn)
	for _, h := range hosts {
		_, pcs[h] = listen(t, lab, h)
	}
	lab.Cut([]string{"a", "b"}, []string{"c", "d"})
	for _, from := range hosts {
		for _, to := range hosts {
			if from == to {
				continue
			}
			sameSide := (from < "c") == (to < "c")
			tcp := dialTCP(lab, from, to)
			udp := udpDelivered(t, lab, from, to, pcs[to], 5)
			if sameSide {
				assert.NoError(t, tcp, "%s -> %s TCP within a side", from, to)
				assert.Equal(t, 5, udp, "%s -> %s UDP within a side", from, to)
			} else {
				assert.Error(t, tcp, "%s -> %s TCP across the cut", from, to)
				assert.Zero(t, udp, "%s -> %s UDP across the cut", from, to)
			}
		}
	}
	lab.Heal()
	require.NoError(t, dialTCP(lab, "a", "d"))
	require.Equal(t, 5, udpDelivered(t, lab, "d", "a", pcs["a"], 5))
}

func TestLoss(t *testing.T) {
	leakcheck.Check(t)
	lab := netfault.New(t, "a", "b", "c")
	_, pcb := listen(t, lab, "b")
	_, pcc := listen(t, lab, "c")
	lab.Loss("a", "b", 10)
	const n = 2000
	got := udpDelivered(t, lab, "a", "b", pcb, n)
	// 10% of 2000 is 200 ± 13 (one standard deviation).
	assert.InDelta(t, n*9/10, got, 100, "datagrams a -> b under 10%% loss")
	assert.Equal(t, int64(n-got), lab.Dropped("b"), "b's rule counted every drop")
	assert.Equal(t, 100, udpDelivered(t, lab, "a", "c", pcc, 100), "a -> c has no loss")
	lab.Heal()
	assert.Equal(t, 100, udpDelivered(t, lab, "a", "b", pcb, 100), "no loss after Heal")
}

// TestCleanup checks that a lab's namespaces are gone when its test ends,
// even when it fails.
func TestCleanup(t *testing.T) {
	netfault.RequireRoot(t)
	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := netfault.New(t, "a", "b")
		names = []string{lab.NS("a"), lab.NS("b")}
		assert.Contains(t, netnsList(t), names[0])
	})
	list := netnsList(t)
	for _, n := range names {
		assert.NotContains(t, list, n)
	}
	assert.NotContains(t, list, strings.TrimSuffix(names[0], "-a")+"-sw")
}

func netnsList(t *testing.T) string {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out)
}

// TestHelperMember is the member process of TestMember: one inproc
// member (no network) so that only the process plumbing is tested.
func TestHelperMember(t *testing.T) {
	netfault.ServeMember(t, func(spec netfault.MemberSpec) (bus.Bus, error) {
		if len(spec.Args) > 0 && spec.Args[0] == "fail" {
			return nil, errors.New("refused by the test")
		}
		hub := inproc.New(inproc.Config{MaxMessageSize: 1024, QueueLen: 64})
		b, err := hub.NewMember(spec.Name)
		if len(spec.Args) > 0 && spec.Args[0] == "stats" {
			return statsBus{b, hub}, err
		}
		return b, err
	})
}

// statsBus adds its hub's Stats to an inproc member.
type statsBus struct {
	bus.Bus
	hub *inproc.Hub
}

func (s statsBus) Stats() inproc.Stats { return s.hub.Stats() }

func TestMember(t *testing.T) {
	leakcheck.Check(t)
	lab := netfault.New(t, "a")
	m := lab.StartMember(t, "a", "TestHelperMember", netfault.MemberSpec{Name: "alpha"})
	assert.Equal(t, "alpha", m.Self().Name)
	assert.Equal(t, 1024, m.MaxMessageSize())
	assert.Positive(t, m.Pid())

	ctx := t.Context()
	g, err := m.Join(ctx, "g")
	require.NoError(t, err)
	_, err = m.Join(ctx, "g")
	assert.ErrorIs(t, err, bus.ErrAlreadyJoined)
	assert.ErrorIs(t, m.Send(ctx, "g", bus.FIFO, make([]byte, 1025)), bus.ErrTooLarge)

	rec := bustest.Record(t, m.Self(), g)
	var fifo bustest.FIFO
	rec.AddCheck(bustest.CheckMessages(fifo.Check))
	const n = 500 // several times Prefetch: credit flows back
	for i := range uint64(n / 2) {
		require.NoError(t, g.Send(ctx, bus.FIFO, bustest.Payload("t", i, 100)))
	}
	var batch [][]byte
	for i := range uint64(n / 2) {
		batch = append(batch, bustest.Payload("t", n/2+i, 100))
	}
	sent, err := m.SendBatch(ctx, "g", bus.FIFO, batch)
	require.NoError(t, err)
	assert.Equal(t, n/2, sent)
	sent, err = m.SendBatch(ctx, "g", bus.FIFO, [][]byte{bustest.Payload("t", n, 100), make([]byte, 2000), bustest.Payload("t", n+1, 100)})
	assert.ErrorIs(t, err, bus.ErrTooLarge)
	assert.Equal(t, 1, sent, "a batch stops at its first error")
	rec.Wait(t, "every message", func(evs []bus.Event) bool { return len(evs) == n+2 })
	assert.Equal(t, uint64(n+1), fifo.Next(m.Self(), "t"))
	var st inproc.Stats
	assert.ErrorIs(t, m.Stats(ctx, &st), errors.ErrUnsupported, "an inproc member has no Stats method")

	// A Send blocked in the child ends with the parent's context.
	blocked, err := m.Join(ctx, "blocked") // never read
	require.NoError(t, err)
	var sendErr error
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i := range uint64(1 << 16) {
		short, c := context.WithTimeout(sctx, 200*time.Millisecond)
		sendErr = m.Send(short, "blocked", bus.Reliable, bustest.Payload("b", i, 10))
		c()
		if sendErr != nil {
			break
		}
	}
	assert.ErrorIs(t, sendErr, context.DeadlineExceeded)
	require.NoError(t, blocked.Leave(ctx))
	_, err = blocked.Recv(ctx)
	assert.ErrorIs(t, err, bus.ErrClosed)

	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "Close is idempotent")
	assert.ErrorIs(t, rec.WaitDone(t), bus.ErrClosed)
	assert.ErrorIs(t, m.Send(ctx, "g", bus.FIFO, nil), bus.ErrClosed)
}

func TestMemberKill(t *testing.T) {
	leakcheck.Check(t)
	lab := netfault.New(t, "a")
	m := lab.StartMember(t, "a", "TestHelperMember", netfault.MemberSpec{Args: []string{"stats"}})
	assert.Equal(t, "a", m.Self().Name, "the name defaults to the host's")
	g, err := m.Join(t.Context(), "g")
	require.NoError(t, err)
	require.NoError(t, m.Send(t.Context(), "g", bus.FIFO, bustest.Payload("t", 0, 10)))
	var st inproc.Stats
	require.NoError(t, m.Stats(t.Context(), &st))
	assert.Equal(t, inproc.Stats{Members: 1, Groups: 1, Views: 1, Sent: 1, Delivered: 1}, st)
	rec := bustest.Record(t, m.Self(), g)
	rec.Wait(t, "the view and the message", func(evs []bus.Event) bool { return len(evs) == 2 })
	m.Kill()
	assert.ErrorIs(t, rec.WaitDone(t), bus.ErrClosed)
	_, err = m.Join(t.Context(), "h")
	assert.ErrorIs(t, err, bus.ErrClosed)
}

func TestMemberStartError(t *testing.T) {
	lab := netfault.New(t, "a")
	// A constructor error is returned by the child; StartMember reports
	// it through t. Run it in a subtest that is expected to fail.
	ok := t.Run("start", func(t *testing.T) {
		ft := &fatalRecorder{TB: t}
		func() {
			defer func() { _ = recover() }()
			lab.StartMember(ft, "a", "TestHelperMember", netfault.MemberSpec{Args: []string{"fail"}})
		}()
		assert.Contains(t, ft.msg, "refused by the test")
	})
	assert.True(t, ok)
}

// fatalRecorder records Fatal instead of failing, and ignores the
// member's exit error that its cleanup reports.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(f)
}

func (f *fatalRecorder) Errorf(format string, args ...any) {
	f.TB.Logf("(expected) "+format, args...)
}

func (f *fatalRecorder) Helper() {}

func TestTCPRetransmits(t *testing.T) {
	leakcheck.Check(t)
	lab := netfault.New(t, "a", "b")
	assert.Zero(t, lab.TCPRetransmits("a"))
	lab.CutTCP([]string{"a"}, []string{"b"})
	require.Error(t, lab.Do("a", func() error {
		d := net.Dialer{Timeout: 1500 * time.Millisecond}
		_, err := d.Dial("tcp", netip.AddrPortFrom(lab.Addr("b"), port).String())
		return err
	}))
	assert.Positive(t, lab.TCPRetransmits("a"), "the dropped SYN was sent again (after 1 s)")
}
