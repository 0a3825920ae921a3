//go:build linux

package netfault

import (
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/peerscale/peerscale/bus"
)

// Prefetch is how many events of one group a member process hands to the
// parent before the parent's Recv consumed them.
const Prefetch = 64

// MemberSpec describes the member a process started by StartMember runs.
type MemberSpec struct {
	// Name is the member's name. Empty means the host's name.
	Name string
	// Addr is the address to bind. Empty means the host's address.
	Addr string
	// Seeds are addresses of members started before ("host:port").
	Seeds []string
	// Args are free for the constructor given to ServeMember.
	Args []string
}

// ServeMember is the body of the helper test that StartMember runs in a
// member process: it builds the member with newBus and serves the
// parent's calls until the parent closes it or exits. Run outside a
// member process (no PEERSCALE_NETFAULT_MEMBER), it skips t.
func ServeMember(t *testing.T, newBus func(MemberSpec) (bus.Bus, error)) {
	raw := os.Getenv(envMember)
	if raw == "" {
		t.Skip("netfault: helper that runs as a member process of the network fault tests")
	}
	var spec MemberSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatalf("netfault: %s: %v", envMember, err)
	}
	in, out := os.NewFile(3, "netfault-requests"), os.NewFile(4, "netfault-replies")
	if in == nil || out == nil {
		t.Fatal("netfault: member process started without its pipes")
	}
	defer in.Close()
	defer out.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	s := &server{ctx: ctx, enc: gob.NewEncoder(out), streams: make(map[uint64]*stream), cancels: make(map[uint64]context.CancelFunc)}
	b, err := newBus(spec)
	if err != nil {
		_ = s.send(reply{Kind: kindHello, Err: toWire(err)})
		t.Fatalf("netfault: member %s: %v", spec.Name, err)
	}
	s.b = b
	if err := s.send(reply{Kind: kindHello, Self: b.Self(), MaxSize: b.MaxMessageSize()}); err != nil {
		b.Close()
		t.Fatalf("netfault: hello: %v", err)
	}
	err = s.serve(gob.NewDecoder(in))
	// The parent is gone or done: end the calls in flight, close the Bus
	// if it was not, and wait for every handler and stream.
	stop()
	if cerr := b.Close(); cerr != nil && !errors.Is(cerr, bus.ErrClosed) {
		t.Errorf("netfault: close: %v", cerr)
	}
	s.wg.Wait()
	if err != nil && !errors.Is(err, io.EOF) {
		t.Errorf("netfault: reading requests: %v", err)
	}
}

type server struct {
	ctx context.Context // ends when the parent is gone
	b   bus.Bus

	encMu sync.Mutex
	enc   *gob.Encoder

	mu      sync.Mutex
	streams map[uint64]*stream
	cancels map[uint64]context.CancelFunc
	wg      sync.WaitGroup
}

// stream is a joined group whose events are forwarded to the parent.
type stream struct {
	g       bus.Group
	credits chan struct{}
	cancel  context.CancelFunc
}

func (s *server) send(r reply) error {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	return s.enc.Encode(&r)
}

func (s *server) serve(dec *gob.Decoder) error {
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return err
		}
		switch req.Op {
		case opCancel:
			s.mu.Lock()
			if cancel := s.cancels[req.Target]; cancel != nil {
				cancel()
			}
			s.mu.Unlock()
		case opCredit:
			s.mu.Lock()
			st := s.streams[req.Stream]
			s.mu.Unlock()
			for range req.N {
				if st == nil {
					break
				}
				select {
				case st.credits <- struct{}{}:
				default:
				}
			}
		default:
			ctx, cancel := context.WithCancel(s.ctx)
			s.mu.Lock()
			s.cancels[req.ID] = cancel
			s.mu.Unlock()
			s.wg.Go(func() {
				r := reply{Kind: kindReply, ID: req.ID}
				var err error
				switch req.Op {
				case opStats:
					r.JSON, err = s.stats()
				case opBatch:
					for _, data := range req.Batch {
						if err = s.b.Send(ctx, req.Group, req.Level, data); err != nil {
							break
						}
						r.N++
					}
				default:
					err = s.handle(ctx, req)
				}
				s.mu.Lock()
				delete(s.cancels, req.ID)
				s.mu.Unlock()
				cancel()
				r.Err = toWire(err)
				_ = s.send(r)
			})
		}
	}
}

func (s *server) handle(ctx context.Context, req request) error {
	switch req.Op {
	case opJoin:
		g, err := s.b.Join(ctx, req.Group)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(s.ctx)
		st := &stream{g: g, credits: make(chan struct{}, Prefetch), cancel: cancel}
		for range Prefetch {
			st.credits <- struct{}{}
		}
		s.mu.Lock()
		s.streams[req.ID] = st
		s.mu.Unlock()
		s.wg.Go(func() { s.forward(rctx, req.ID, st) })
		return nil
	case opLeave:
		s.mu.Lock()
		st := s.streams[req.Stream]
		s.mu.Unlock()
		if st == nil {
			return fmt.Errorf("netfault: no stream %d", req.Stream)
		}
		return st.g.Leave(ctx)
	case opSend:
		return s.b.Send(ctx, req.Group, req.Level, req.Data)
	case opClose:
		return s.b.Close()
	default:
		return fmt.Errorf("netfault: unknown operation %q", req.Op)
	}
}

// stats returns the JSON of the Bus's Stats method: a method without
// arguments and with one result, whatever its type.
func (s *server) stats() ([]byte, error) {
	m := reflect.ValueOf(s.b).MethodByName("Stats")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return nil, fmt.Errorf("netfault: %T has no Stats() method: %w", s.b, errors.ErrUnsupported)
	}
	return json.Marshal(m.Call(nil)[0].Interface())
}

// forward sends the events of one stream to the parent, one credit each,
// until Recv fails (Leave, Close) or the parent stops.
func (s *server) forward(ctx context.Context, id uint64, st *stream) {
	defer st.cancel()
	defer func() {
		s.mu.Lock()
		delete(s.streams, id)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-st.credits:
		case <-ctx.Done():
			return
		}
		ev, err := st.g.Recv(ctx)
		if err != nil {
			_ = s.send(reply{Kind: kindEnd, Stream: id, Err: toWire(err)})
			return
		}
		r := reply{Kind: kindEvent, Stream: id}
		switch ev := ev.(type) {
		case *bus.View:
			r.View = ev
		case *bus.Message:
			r.Msg = ev
		default:
			_ = s.send(reply{Kind: kindEnd, Stream: id, Err: toWire(fmt.Errorf("netfault: event of type %T", ev))})
			return
		}
		if err := s.send(r); err != nil {
			return
		}
	}
}
