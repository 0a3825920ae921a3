//go:build linux

package netfault

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// StartTimeout bounds how long StartMember waits for the member process
// to build its Bus, and Close for the process to exit.
const StartTimeout = 30 * time.Second

// Member is a bus.Bus whose member runs in a child process inside a lab
// host's namespace: the test binary re-executed under "ip netns exec" with
// -test.run naming a helper test that calls ServeMember. Calls are
// forwarded to the child and their results returned, errors keeping the
// bus sentinels they wrap (errors.Is works).
//
// A Group returned by Join receives its events from the child, which
// reads up to Prefetch events ahead of Recv; otherwise every method
// behaves as the child's Bus does. Methods are safe for concurrent use.
type Member struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	self bus.MemberID
	max  int

	encMu sync.Mutex
	enc   *gob.Encoder
	reqW  *os.File

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan reply
	streams map[uint64]*remoteGroup
	hello   chan reply
	closed  bool // Close or Kill called
	killed  bool

	dead     chan struct{} // closed when the replies pipe ends
	exited   chan struct{} // closed when the process has exited
	exitErr  error
	stopOnce sync.Once
	closeErr error
}

// StartMember starts a member process in host's namespace, running the
// helper test named helper (a test function that calls ServeMember) with
// spec, and waits until its Bus is built. The member is closed when the
// test ends; t fails if the process exited with an error other than
// through Kill.
func (l *Lab) StartMember(t testing.TB, host, helper string, spec MemberSpec) *Member {
	t.Helper()
	return l.StartMembers(t, helper, map[string]MemberSpec{host: spec})[host]
}

// StartMembers starts one member process per host of specs, all at once,
// as StartMember does, and waits until every one is up.
func (l *Lab) StartMembers(t testing.TB, helper string, specs map[string]MemberSpec) map[string]*Member {
	t.Helper()
	out := make(map[string]*Member, len(specs))
	var errs []error
	for _, h := range l.hosts {
		spec, ok := specs[h]
		if !ok {
			continue
		}
		m, err := l.launch(t, h, helper, spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[h] = m
	}
	for _, m := range out {
		if err := m.awaitHello(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(specs) > len(out)+len(errs) {
		errs = append(errs, fmt.Errorf("netfault: StartMembers: hosts not in the lab: %v", specs))
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// launch starts the process of one member.
func (l *Lab) launch(t testing.TB, host, helper string, spec MemberSpec) (*Member, error) {
	if spec.Name == "" {
		spec.Name = host
	}
	if spec.Addr == "" {
		spec.Addr = l.Addr(host).String()
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("netfault: test binary: %w", err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, err
	}
	cmd := l.Command(host, exe, "-test.run=^"+regexp.QuoteMeta(helper)+"$", "-test.count=1", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), envMember+"="+string(raw))
	cmd.ExtraFiles = []*os.File{reqR, repW}
	out := &lineLogger{t: t, prefix: spec.Name}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	reqR.Close()
	repW.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		return nil, fmt.Errorf("netfault: start member %s: %w", spec.Name, err)
	}
	m := &Member{
		t: t, name: spec.Name, cmd: cmd,
		enc: gob.NewEncoder(reqW), reqW: reqW,
		pending: make(map[uint64]chan reply),
		streams: make(map[uint64]*remoteGroup),
		hello:   make(chan reply, 1),
		dead:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	go func() {
		m.exitErr = cmd.Wait()
		out.stop()
		close(m.exited)
	}()
	go m.read(gob.NewDecoder(repR), repR)
	t.Cleanup(func() {
		m.Close()
		m.mu.Lock()
		killed := m.killed
		m.mu.Unlock()
		if m.exitErr != nil && !killed {
			t.Errorf("netfault: member %s exited: %v", m.name, m.exitErr)
		}
	})
	return m, nil
}

// awaitHello waits until the member's Bus is built.
func (m *Member) awaitHello() error {
	select {
	case h := <-m.hello:
		if h.Err != nil {
			return fmt.Errorf("netfault: member %s: %w", m.name, fromWire(h.Err))
		}
		m.self, m.max = h.Self, h.MaxSize
		return nil
	case <-m.dead:
		return fmt.Errorf("netfault: member %s exited before it was up", m.name)
	case <-time.After(StartTimeout):
		return fmt.Errorf("netfault: member %s not up after %v", m.name, StartTimeout)
	}
}

// read dispatches the child's replies until the pipe ends.
func (m *Member) read(dec *gob.Decoder, r *os.File) {
	defer r.Close()
	defer func() {
		m.mu.Lock()
		for id, c := range m.pending {
			c <- reply{Kind: kindReply, ID: id, Err: toWire(bus.ErrClosed)}
			delete(m.pending, id)
		}
		streams := m.streams
		m.streams = make(map[uint64]*remoteGroup)
		m.mu.Unlock()
		for _, g := range streams {
			g.end(bus.ErrClosed)
		}
		close(m.dead)
	}()
	for {
		var r reply
		if err := dec.Decode(&r); err != nil {
			return
		}
		switch r.Kind {
		case kindHello:
			m.hello <- r
		case kindReply:
			m.mu.Lock()
			c := m.pending[r.ID]
			delete(m.pending, r.ID)
			m.mu.Unlock()
			if c != nil {
				c <- r
			}
		case kindEvent, kindEnd:
			m.mu.Lock()
			g := m.streams[r.Stream]
			if r.Kind == kindEnd {
				delete(m.streams, r.Stream)
			}
			m.mu.Unlock()
			if g == nil {
				continue
			}
			if r.Kind == kindEnd {
				g.end(fromWire(r.Err))
			} else if r.View != nil {
				g.push(r.View)
			} else if r.Msg != nil {
				g.push(r.Msg)
			}
		}
	}
}

func (m *Member) write(req request) error {
	m.encMu.Lock()
	defer m.encMu.Unlock()
	if err := m.enc.Encode(&req); err != nil {
		return fmt.Errorf("netfault: member %s: %w (%v)", m.name, bus.ErrClosed, err)
	}
	return nil
}

// call sends req and waits for its reply. When ctx ends first it asks the
// child to cancel the call and still waits for the child's answer, so the
// result is the child's.
func (m *Member) call(ctx context.Context, req request, register func(id uint64)) error {
	_, err := m.callReply(ctx, req, register)
	return err
}

func (m *Member) callReply(ctx context.Context, req request, register func(id uint64)) (reply, error) {
	c := make(chan reply, 1)
	m.mu.Lock()
	if m.closed && req.Op != opClose {
		m.mu.Unlock()
		return reply{}, bus.ErrClosed
	}
	select {
	case <-m.dead:
		m.mu.Unlock()
		return reply{}, bus.ErrClosed
	default:
	}
	m.nextID++
	req.ID = m.nextID
	m.pending[req.ID] = c
	if register != nil {
		register(req.ID)
	}
	m.mu.Unlock()
	if err := m.write(req); err != nil {
		m.mu.Lock()
		delete(m.pending, req.ID)
		m.mu.Unlock()
		return reply{}, err
	}
	select {
	case r := <-c:
		return r, fromWire(r.Err)
	case <-ctx.Done():
	}
	if err := m.write(request{Op: opCancel, Target: req.ID}); err != nil {
		return reply{}, err
	}
	r := <-c
	err := fromWire(r.Err)
	if errors.Is(err, context.Canceled) {
		return r, ctx.Err() // canceled on our behalf: the caller's reason
	}
	return r, err
}

// Stats calls the Stats method of the member's Bus (whatever its result
// type) and decodes the JSON of its result into v, a pointer to that type.
// It returns an error wrapping errors.ErrUnsupported when the Bus has no
// such method.
func (m *Member) Stats(ctx context.Context, v any) error {
	r, err := m.callReply(ctx, request{Op: opStats}, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(r.JSON, v)
}

// Name returns the member's name.
func (m *Member) Name() string { return m.name }

// Pid returns the member process's id.
func (m *Member) Pid() int { return m.cmd.Process.Pid }

// Self is bus.Bus.Self.
func (m *Member) Self() bus.MemberID { return m.self }

// MaxMessageSize is bus.Bus.MaxMessageSize.
func (m *Member) MaxMessageSize() int { return m.max }

// Send is bus.Bus.Send in the member process.
func (m *Member) Send(ctx context.Context, group string, level bus.Level, data []byte) error {
	return m.call(ctx, request{Op: opSend, Group: group, Level: level, Data: data}, nil)
}

// SendBatch sends each of batch in order, as as many Sends in the
// member process but in one round trip to it, and returns how many were
// sent before an error.
func (m *Member) SendBatch(ctx context.Context, group string, level bus.Level, batch [][]byte) (int, error) {
	r, err := m.callReply(ctx, request{Op: opBatch, Group: group, Level: level, Batch: batch}, nil)
	return r.N, err
}

// Join is bus.Bus.Join in the member process.
func (m *Member) Join(ctx context.Context, group string) (bus.Group, error) {
	g := &remoteGroup{m: m, name: group, changed: make(chan struct{})}
	err := m.call(ctx, request{Op: opJoin, Group: group}, func(id uint64) {
		g.id = id
		m.streams[id] = g
	})
	if err != nil {
		m.mu.Lock()
		delete(m.streams, g.id)
		m.mu.Unlock()
		return nil, err
	}
	return g, nil
}

// Close closes the member's Bus, ends the process and waits for it. It
// is idempotent and returns the child's Close error.
func (m *Member) Close() error {
	m.stop(false)
	return m.closeErr
}

// Kill ends the member process with SIGKILL, like a crash, and waits for
// it: the other members see the crash only through their failure
// detection.
func (m *Member) Kill() {
	m.stop(true)
}

func (m *Member) stop(kill bool) {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.killed = kill
		m.mu.Unlock()
		if kill {
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
			err := m.call(ctx, request{Op: opClose}, nil)
			cancel()
			if err != nil && !errors.Is(err, bus.ErrClosed) {
				m.closeErr = err
			}
		}
		m.encMu.Lock()
		m.reqW.Close() // the child returns from ServeMember and exits
		m.encMu.Unlock()
		select {
		case <-m.exited:
		case <-time.After(StartTimeout):
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
			<-m.exited
			if m.closeErr == nil {
				m.closeErr = fmt.Errorf("netfault: member %s did not exit within %v", m.name, StartTimeout)
			}
		}
		<-m.dead
	})
}

// remoteGroup is a Group of a Member: the events the child forwards.
type remoteGroup struct {
	m    *Member
	name string
	id   uint64

	mu       sync.Mutex
	queue    []bus.Event
	consumed int
	err      error // the stream's end, once queue is drained
	left     bool
	changed  chan struct{}
}

func (g *remoteGroup) push(ev bus.Event) {
	g.mu.Lock()
	g.queue = append(g.queue, ev)
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *remoteGroup) end(err error) {
	if err == nil {
		err = bus.ErrClosed
	}
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

func (g *remoteGroup) Name() string { return g.name }

func (g *remoteGroup) Recv(ctx context.Context) (bus.Event, error) {
	for {
		g.mu.Lock()
		if g.left {
			g.mu.Unlock()
			return nil, bus.ErrClosed
		}
		if len(g.queue) > 0 {
			ev := g.queue[0]
			g.queue[0] = nil
			g.queue = g.queue[1:]
			g.consumed++
			credit := 0
			if g.consumed >= Prefetch/4 {
				credit, g.consumed = g.consumed, 0
			}
			g.mu.Unlock()
			if credit > 0 {
				_ = g.m.write(request{Op: opCredit, Stream: g.id, N: credit})
			}
			return ev, nil
		}
		if g.err != nil {
			err := g.err
			g.mu.Unlock()
			return nil, err
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *remoteGroup) Send(ctx context.Context, level bus.Level, data []byte) error {
	return g.m.Send(ctx, g.name, level, data)
}

func (g *remoteGroup) Leave(ctx context.Context) error {
	g.mu.Lock()
	if g.left {
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	err := g.m.call(ctx, request{Op: opLeave, Stream: g.id}, nil)
	if err != nil && !errors.Is(err, bus.ErrClosed) {
		return err
	}
	g.mu.Lock()
	g.left = true
	g.queue = nil
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
	return nil
}

// lineLogger logs a process's output to t line by line until stopped.
type lineLogger struct {
	t      testing.TB
	prefix string

	mu      sync.Mutex
	buf     []byte
	stopped bool
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineLogger) log(line []byte) {
	if s := string(bytes.TrimSpace(line)); s != "" && s != "PASS" {
		w.t.Logf("%s: %s", w.prefix, s)
	}
}

func (w *lineLogger) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.log(w.buf)
		w.buf = nil
	}
	w.stopped = true
}

var (
	_ bus.Bus   = (*Member)(nil)
	_ bus.Group = (*remoteGroup)(nil)
)
