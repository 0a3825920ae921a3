package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/cluster"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain runs the real spreadlogd when the chaos test re-executes this
// binary as a logger process.
func TestMain(m *testing.M) {
	if args := os.Getenv("SPREADLOGD_CHILD_ARGS"); args != "" {
		ctx, stop := signalContext()
		defer stop()
		if err := run(ctx, strings.Split(args, "\x1f"), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// chaosPub publishes numbered records over bus/cluster and follows the
// logwire protocol: it retains every record until a durable ack covers it
// (its retained records outlive its restarts, like a journal) and
// retransmits on Resend, on AckSync and when a member joins the ack group.
type chaosPub struct {
	t  *testing.T
	id string

	mu       sync.Mutex
	b        *cluster.Bus
	epoch    uint64
	seq      uint64
	retained map[uint64][]string // lines by epoch, from retainedFrom[epoch]
	from     map[uint64]uint64
	created  []string
	kick     chan struct{} // coalesced retransmission requests
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func newChaosPub(t *testing.T, id string) *chaosPub {
	return &chaosPub{t: t, id: id, retained: map[uint64][]string{}, from: map[uint64]uint64{}, kick: make(chan struct{}, 1)}
}

func (p *chaosPub) start(seeds []string) {
	cfg := cluster.LANConfig()
	cfg.Seeds = seeds
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := cluster.New(p.id, cfg)
	require.NoError(p.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := b.Join(ctx, "www.ack")
	require.NoError(p.t, err)
	p.mu.Lock()
	p.b, p.cancel = b, cancel
	p.epoch++
	p.seq = 0
	p.from[p.epoch] = 1
	p.mu.Unlock()
	p.wg.Go(func() { p.ackLoop(ctx, g) })
	p.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.kick:
				p.resend(ctx, nil)
			}
		}
	})
}

// retransmit asks for a retransmission of everything retained; requests
// that arrive while one is under way are coalesced into one more.
func (p *chaosPub) retransmit() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *chaosPub) stop() {
	p.cancel()
	p.wg.Wait()
	p.b.Close()
}

func (p *chaosPub) publish(ctx context.Context, n int) {
	p.mu.Lock()
	first := p.seq + 1
	lines := make([]string, n)
	for i := range lines {
		p.seq++
		lines[i] = fmt.Sprintf(`127.0.0.1 - - [02/Jan/2000:12:00:00 +0000] "GET /%s/e%d/s%d HTTP/1.1" 200 %d "-" "chaos"`, p.id, p.epoch, p.seq, p.seq%9999)
	}
	p.retained[p.epoch] = append(p.retained[p.epoch], lines...)
	p.created = append(p.created, lines...)
	b, epoch := p.b, p.epoch
	p.mu.Unlock()
	p.send(ctx, b, epoch, first, lines)
}

func (p *chaosPub) send(ctx context.Context, b *cluster.Bus, epoch, first uint64, lines []string) {
	for len(lines) > 0 {
		n := min(len(lines), 200)
		msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: p.id, Epoch: epoch, FirstSeq: first, Count: uint32(n)})
		for _, l := range lines[:n] {
			msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, URL: "/", Line: []byte(l)})
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		b.Send(sctx, "www", bus.FIFO, msg) // a failed send is repaired by retransmission
		cancel()
		lines, first = lines[n:], first+uint64(n)
	}
}

func (p *chaosPub) ackLoop(ctx context.Context, g bus.Group) {
	for {
		ev, err := g.Recv(ctx)
		if err != nil {
			return
		}
		switch ev := ev.(type) {
		case *bus.View:
			if len(ev.Joined) > 0 {
				p.retransmit()
			}
		case *bus.Message:
			a, err := logwire.DecodeAck(ev.Data)
			if err != nil || a.Flags&logwire.AckDurable == 0 {
				continue
			}
			resend := false
			p.mu.Lock()
			for _, e := range a.Entries {
				if e.Publisher != p.id {
					continue
				}
				if from := p.from[e.Epoch]; e.Next > from {
					drop := min(e.Next-from, uint64(len(p.retained[e.Epoch])))
					p.retained[e.Epoch] = p.retained[e.Epoch][drop:]
					p.from[e.Epoch] = from + drop
				}
				resend = resend || e.Resend
			}
			p.mu.Unlock()
			if resend || a.Flags&logwire.AckSync != 0 {
				p.retransmit()
			}
		}
	}
}

// resend retransmits what is retained: everything, or the listed epochs from
// the given sequence numbers.
func (p *chaosPub) resend(ctx context.Context, only map[uint64]uint64) {
	type part struct {
		epoch, first uint64
		lines        []string
	}
	var parts []part
	p.mu.Lock()
	for ep, ls := range p.retained {
		from := p.from[ep]
		if only != nil {
			start, ok := only[ep]
			if !ok {
				continue
			}
			if start > from {
				skip := min(start-from, uint64(len(ls)))
				ls, from = ls[skip:], from+skip
			}
		}
		if len(ls) > 0 {
			parts = append(parts, part{ep, from, append([]string(nil), ls...)})
		}
	}
	b := p.b
	p.mu.Unlock()
	for _, pt := range parts {
		p.send(ctx, b, pt.epoch, pt.first, pt.lines)
	}
}

func (p *chaosPub) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ls := range p.retained {
		n += len(ls)
	}
	return n
}

// logger is a spreadlogd child process.
type logger struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startLogger(t *testing.T, args ...string) *logger {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPREADLOGD_CHILD_ARGS="+strings.Join(args, "\x1f"))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	l := &logger{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = io.Discard
	if path := os.Getenv("SPREADLOGD_CHILD_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		cmd.Stderr = f
	}
	require.NoError(t, cmd.Start())
	copied := make(chan struct{})
	go func() {
		io.Copy(l.out, bufio.NewReader(stdout))
		close(copied)
	}()
	go func() {
		<-copied
		l.done <- cmd.Wait()
	}()
	eventually(t, "the logger process to start", func() bool { return strings.Contains(l.out.String(), "logging www") })
	return l
}

// TestChaosSIGKILL runs spreadlogd as a separate process over bus/cluster on
// loopback while two publishers send at a high rate: the logger is killed
// with SIGKILL and restarted three times, one publisher is restarted (new
// epoch, retained records kept), the logger process is stopped (SIGSTOP)
// for 3 s, and at the end every record is in the files exactly once, with
// no holes.
func TestChaosSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	dir := t.TempDir()
	conf := filepath.Join(dir, "spreadlogd.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
Name = logger-a
StateFile = %q
FsyncInterval = 50ms
Log {
    Group = www
    File = %q
    RotateSize = 256K
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "access.%Y%m%d"))), 0o644))

	pubs := []*chaosPub{newChaosPub(t, "web1"), newChaosPub(t, "web2")}
	pubs[0].start(nil)
	seeds := []string{pubs[0].b.GossipAddr()}
	pubs[1].start(seeds)
	defer func() {
		for _, p := range pubs {
			p.stop()
		}
	}()
	// The publishers here run bus/cluster's LAN profile: the logger does
	// too, so that its SIGKILLed incarnations leave the views within ~1 s.
	args := []string{"-config", conf, "-seeds", seeds[0], "-name", "logger-a", "-bus-profile", "lan"}

	var stopPub = make(chan struct{})
	var wg sync.WaitGroup
	var pubMu sync.RWMutex // held for writing while a publisher restarts
	for _, p := range pubs {
		wg.Go(func() {
			for {
				select {
				case <-stopPub:
					return
				default:
				}
				pubMu.RLock()
				p.publish(ctx, 40)
				pubMu.RUnlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	l := startLogger(t, args...)
	for kill := range 3 {
		time.Sleep(time.Duration(700+rng.IntN(1500)) * time.Millisecond)
		require.NoError(t, l.cmd.Process.Signal(syscall.SIGKILL))
		<-l.done
		t.Logf("kill %d: logger killed", kill+1)
		if kill == 1 {
			pubMu.Lock()
			pubs[1].stop()
			pubs[1].start(seeds)
			pubMu.Unlock()
			t.Logf("publisher web2 restarted")
		}
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		l = startLogger(t, args...)
	}
	// The logger's process (and so its bus member) stops for a while.
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, l.cmd.Process.Signal(syscall.SIGSTOP))
	time.Sleep(3 * time.Second)
	require.NoError(t, l.cmd.Process.Signal(syscall.SIGCONT))
	t.Logf("logger stopped for 3 s and continued")
	time.Sleep(time.Second)
	close(stopPub)
	wg.Wait()
	created := len(pubs[0].created) + len(pubs[1].created)
	deadline := time.Now().Add(120 * time.Second)
	for pubs[0].pending()+pubs[1].pending() > 0 {
		if time.Now().After(deadline) {
			out := l.out.String()
			t.Fatalf("records never acknowledged: %d of %d (web1 %d, web2 %d); rerun with SPREADLOGD_CHILD_LOG=file for the logger's log; its output:\n%s",
				pubs[0].pending()+pubs[1].pending(), created, pubs[0].pending(), pubs[1].pending(), out[max(0, len(out)-2000):])
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, l.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, <-l.done)

	files, err := filepath.Glob(filepath.Join(dir, "access.*"))
	require.NoError(t, err)
	count := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		require.True(t, len(data) == 0 || data[len(data)-1] == '\n', "%s ends on a line boundary", f)
		for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if line != "" {
				count[line]++
			}
		}
	}
	bad := 0
	for _, p := range pubs {
		for _, line := range p.created {
			if n := count[line]; n != 1 && bad < 10 {
				t.Errorf("%s written %d times", line, n)
				bad++
			}
			delete(count, line)
		}
	}
	assert.Empty(t, count, "lines nobody published")
	t.Logf("audited %d records from 2 publishers in %d files across 3 SIGKILLs; last logger: %s",
		created, len(files), strings.TrimSpace(l.out.String()[strings.LastIndex(l.out.String(), "spreadlogd: stopped"):]))
}
