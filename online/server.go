package online

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by a Server's Shutdown after Close, and by an
// Ingest after it stopped.
var ErrClosed = errors.New("online: closed")

// Defaults of ServerConfig.
const (
	DefaultMaxConns        = 1024
	DefaultMaxRequestBytes = 64 << 10
	DefaultWriteTimeout    = 10 * time.Second
	// DefaultOnURLLimit is the number of users ONURL returns without LIMIT.
	DefaultOnURLLimit = 30
	// MaxOnURLLimit is the largest LIMIT ONURL accepts.
	MaxOnURLLimit = 10_000
)

// maxReplyBatch is the reply size at which a connection writes before the
// end of a read batch.
const maxReplyBatch = 64 << 10

// ServerConfig configures a Server. The zero value is valid; each field
// documents its default.
type ServerConfig struct {
	// MaxConns bounds concurrent connections; a connection beyond it gets
	// "-ERR max number of clients reached" and is closed. Zero means
	// DefaultMaxConns (1024).
	MaxConns int
	// MaxRequestBytes bounds the argument bytes of one request (and the
	// length of an inline request line, at most 16 KiB); a larger request
	// is a protocol error. Zero means DefaultMaxRequestBytes (64 KiB).
	MaxRequestBytes int
	// IdleTimeout closes a connection that sends nothing for this long.
	// Zero means no timeout.
	IdleTimeout time.Duration
	// WriteTimeout bounds the writes of replies: a client that does not
	// read its replies is disconnected after WriteTimeout/2 to
	// WriteTimeout. Zero means DefaultWriteTimeout (10 s).
	WriteTimeout time.Duration
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// ServerStats is a snapshot of a Server's counters.
type ServerStats struct {
	Conns          int    // open connections
	Accepted       uint64 // connections accepted
	Rejected       uint64 // connections refused over MaxConns
	Commands       uint64 // requests executed
	Writes         uint64 // reply writes (one per read batch normally)
	Errors         uint64 // requests answered with an error reply
	ProtocolErrors uint64 // connections closed for a malformed request
}

// Server answers the Redis protocol (RESP2) from an Index, so redis-cli,
// redis-benchmark and Redis client libraries work against it:
//
//	HIT user url [unix-ms]          :1 applied, :0 ignored (stale or older)
//	COUNT                           :users online
//	ONURL url [LIMIT n] [WITHTIMES] users newest first (n: default 30, max 10000),
//	                                with WITHTIMES flat pairs user, unix-ms
//	LAST user                       [url, unix-ms], or a null array
//	PING [message]                  +PONG or the message
//	ECHO message                    the message (redis-cli --pipe uses it)
//	INFO [section]                  users, URLs and counters, "key:value" lines
//	QUIT                            +OK, then the server closes the connection
//
// Command names are case-insensitive. A connection executes every request
// it has received, collecting the replies, and writes them once its input is
// drained: a pipelined batch costs one read and one write. Each batch
// starts with Index.Expire, so Count is current.
//
// A Server is safe for concurrent use. It owns one goroutine to accept and
// one per connection; Close and Shutdown wait for all of them.
type Server struct {
	ix      *Index
	ln      net.Listener
	cfg     ServerConfig
	log     *slog.Logger
	closing atomic.Bool
	closed  atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	once  sync.Once

	accepted, rejected, commands, writes, errs, protoErrs atomic.Uint64
}

// NewServer starts serving ix on ln. The Server owns ln and closes it on
// Shutdown or Close.
func NewServer(ix *Index, ln net.Listener, cfg ServerConfig) *Server {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		ix:    ix,
		ln:    ln,
		cfg:   cfg,
		log:   cfg.Logger.With("component", "online.server", "addr", ln.Addr().String()),
		conns: make(map[net.Conn]struct{}),
	}
	s.wg.Go(s.accept)
	return s
}

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

func (s *Server) accept() {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			s.log.Error("accept failed, no longer serving", "err", err)
			return
		}
		backoff = 0
		s.mu.Lock()
		switch {
		case s.closing.Load():
			s.mu.Unlock()
			c.Close()
			return
		case len(s.conns) >= s.cfg.MaxConns:
			s.mu.Unlock()
			s.rejected.Add(1)
			s.log.Warn("connection refused: too many clients", "remote", c.RemoteAddr().String())
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write([]byte("-ERR max number of clients reached\r\n"))
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.accepted.Add(1)
		s.wg.Go(func() { s.serve(c) })
		s.mu.Unlock()
	}
}

// conn is one client connection's state.
type conn struct {
	s      *Server
	c      net.Conn
	out    []byte
	visits []Visit
	quit   bool
	wdl    time.Time // the write deadline set on c
}

func (s *Server) serve(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	br := bufio.NewReaderSize(c, min(16<<10, s.cfg.MaxRequestBytes+64))
	rr := newReqReader(br, s.cfg.MaxRequestBytes)
	cn := &conn{s: s, c: c, out: make([]byte, 0, 4096)}
	for {
		batchStart := br.Buffered() == 0
		if batchStart {
			if !cn.flush() {
				return
			}
			if s.cfg.IdleTimeout > 0 {
				c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			}
			if s.closing.Load() {
				return
			}
		}
		args, err := rr.next()
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				s.protoErrs.Add(1)
				s.log.Debug("protocol error", "remote", c.RemoteAddr().String(), "err", err)
				cn.out = appendError(cn.out, "ERR Protocol error: "+protoDetail(err))
				cn.flush()
				drainBeforeClose(c)
				return
			}
			cn.flush()
			return
		}
		if len(args) == 0 {
			continue
		}
		if batchStart {
			s.ix.Expire()
		}
		s.commands.Add(1)
		cn.exec(args)
		if cn.quit {
			cn.flush()
			return
		}
		if len(cn.out) >= maxReplyBatch && !cn.flush() {
			return
		}
	}
}

// drainBeforeClose half-closes c and discards what the client still sends
// (bounded in bytes and time), so that closing does not reset the
// connection and destroy the error reply before the client reads it.
func drainBeforeClose(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

func protoDetail(err error) string {
	msg := err.Error()
	if i := len(ErrProtocol.Error()) + 2; len(msg) > i {
		return msg[i:]
	}
	return msg
}

// flush writes the collected replies; it reports false when the connection
// failed.
func (cn *conn) flush() bool {
	if len(cn.out) == 0 {
		return true
	}
	// Renew the write deadline only when less than half of WriteTimeout
	// is left: moving a timer on every batch costs more than the batch.
	if now := time.Now(); cn.wdl.Sub(now) < cn.s.cfg.WriteTimeout/2 {
		cn.wdl = now.Add(cn.s.cfg.WriteTimeout)
		cn.c.SetWriteDeadline(cn.wdl)
	}
	_, err := cn.c.Write(cn.out)
	cn.s.writes.Add(1)
	if cap(cn.out) > 4*maxReplyBatch {
		cn.out = make([]byte, 0, 4096)
	}
	cn.out = cn.out[:0]
	return err == nil
}

func (cn *conn) err(msg string) {
	cn.s.errs.Add(1)
	cn.out = appendError(cn.out, msg)
}

func (cn *conn) arity(name string) {
	cn.err("ERR wrong number of arguments for '" + name + "' command")
}

func isCmd(arg []byte, name string) bool {
	return len(arg) == len(name) && bytes.EqualFold(arg, []byte(name))
}

func (cn *conn) exec(args [][]byte) {
	ix := cn.s.ix
	cmd := args[0]
	switch {
	case isCmd(cmd, "HIT"):
		if len(args) != 3 && len(args) != 4 {
			cn.arity("hit")
			return
		}
		if len(args[1]) == 0 || len(args[2]) == 0 {
			cn.err("ERR empty user or url")
			return
		}
		var ms int64
		if len(args) == 4 {
			n, ok := parseInt64(args[3])
			if !ok {
				cn.err("ERR value is not an integer or out of range")
				return
			}
			ms = n
		} else {
			ms = ix.now().UnixMilli()
		}
		applied := int64(0)
		if ix.HitBytes(args[1], args[2], ms) {
			applied = 1
		}
		cn.out = appendInt(cn.out, applied)
	case isCmd(cmd, "COUNT"):
		if len(args) != 1 {
			cn.arity("count")
			return
		}
		cn.out = appendInt(cn.out, int64(ix.Count()))
	case isCmd(cmd, "ONURL"):
		cn.onURL(args)
	case isCmd(cmd, "LAST"):
		if len(args) != 2 {
			cn.arity("last")
			return
		}
		url, ms, ok := ix.lookupBytes(args[1])
		if !ok {
			cn.out = append(cn.out, "*-1\r\n"...)
			return
		}
		cn.out = appendArrayLen(cn.out, 2)
		cn.out = appendBulkString(cn.out, url)
		cn.out = appendInt(cn.out, ms)
	case isCmd(cmd, "PING"):
		switch len(args) {
		case 1:
			cn.out = append(cn.out, "+PONG\r\n"...)
		case 2:
			cn.out = appendBulk(cn.out, args[1])
		default:
			cn.arity("ping")
		}
	case isCmd(cmd, "ECHO"):
		if len(args) != 2 {
			cn.arity("echo")
			return
		}
		cn.out = appendBulk(cn.out, args[1])
	case isCmd(cmd, "INFO"):
		cn.out = appendBulk(cn.out, cn.s.info())
	case isCmd(cmd, "QUIT"):
		cn.out = append(cn.out, "+OK\r\n"...)
		cn.quit = true
	case isCmd(cmd, "COMMAND"):
		// redis-cli asks for command docs when it starts: none here.
		cn.out = append(cn.out, "*0\r\n"...)
	default:
		var b []byte
		b = append(b, "ERR unknown command '"...)
		b = append(b, printable(cmd)...)
		b = append(b, "', with args beginning with: "...)
		for _, a := range args[1:min(len(args), 4)] {
			b = append(b, '\'')
			b = append(b, printable(a)...)
			b = append(b, "' "...)
		}
		cn.err(string(b))
	}
}

func (cn *conn) onURL(args [][]byte) {
	if len(args) < 2 {
		cn.arity("onurl")
		return
	}
	limit, withTimes := DefaultOnURLLimit, false
	for i := 2; i < len(args); i++ {
		switch {
		case isCmd(args[i], "LIMIT") && i+1 < len(args):
			n, ok := parseInt64(args[i+1])
			if !ok || n < 1 || n > MaxOnURLLimit {
				cn.err("ERR LIMIT must be an integer from 1 to " + strconv.Itoa(MaxOnURLLimit))
				return
			}
			limit = int(n)
			i++
		case isCmd(args[i], "WITHTIMES"):
			withTimes = true
		default:
			cn.err("ERR syntax error")
			return
		}
	}
	cn.visits = cn.s.ix.appendOnURLBytes(cn.visits[:0], args[1], limit)
	if withTimes {
		cn.out = appendArrayLen(cn.out, 2*len(cn.visits))
	} else {
		cn.out = appendArrayLen(cn.out, len(cn.visits))
	}
	for _, v := range cn.visits {
		cn.out = appendBulkString(cn.out, v.User)
		if withTimes {
			cn.out = appendInt(cn.out, v.Time.UnixMilli())
		}
	}
	clear(cn.visits)
}

// parseInt64 parses a decimal integer with an optional minus sign.
func parseInt64(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<63-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if !neg && n > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

func (s *Server) info() []byte {
	ist := s.ix.Stats()
	sst := s.Stats()
	var b []byte
	kv := func(k string, v uint64) {
		b = append(b, k...)
		b = append(b, ':')
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '\r', '\n')
	}
	b = append(b, "# Online\r\n"...)
	kv("window_ms", uint64(s.ix.window))
	kv("users", uint64(ist.Users))
	kv("urls", uint64(ist.URLs))
	kv("hits", ist.Hits)
	kv("hits_stale", ist.Stale)
	kv("hits_out_of_order", ist.OutOfOrder)
	kv("expired", ist.Expired)
	kv("evicted", ist.Evicted)
	b = append(b, "\r\n# Server\r\n"...)
	kv("connected_clients", uint64(sst.Conns))
	kv("total_connections_received", sst.Accepted)
	kv("rejected_connections", sst.Rejected)
	kv("total_commands_processed", sst.Commands)
	kv("reply_writes", sst.Writes)
	kv("error_replies", sst.Errors)
	kv("protocol_errors", sst.ProtocolErrors)
	return b
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	return ServerStats{
		Conns:          n,
		Accepted:       s.accepted.Load(),
		Rejected:       s.rejected.Load(),
		Commands:       s.commands.Load(),
		Writes:         s.writes.Load(),
		Errors:         s.errs.Load(),
		ProtocolErrors: s.protoErrs.Load(),
	}
}

// stop stops accepting; with force it also closes every connection,
// otherwise it wakes connections blocked reading so they exit after their
// current batch.
func (s *Server) stop(force bool) {
	s.mu.Lock()
	s.closing.Store(true)
	s.once.Do(func() { s.ln.Close() })
	for c := range s.conns {
		if force {
			c.Close()
		} else {
			c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
}

// Shutdown stops accepting connections, lets every connection finish the
// batch it is executing and write its replies, closes them, and waits for
// every goroutine. If ctx ends first, it closes what is left as Close does
// and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.stop(false)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.stop(true)
		<-done
		return ctx.Err()
	}
}

// Close closes the listener and every connection at once and waits for
// every goroutine. It is idempotent; Shutdown after Close returns
// ErrClosed.
func (s *Server) Close() error {
	s.closed.Store(true)
	s.stop(true)
	s.wg.Wait()
	return nil
}
