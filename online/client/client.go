// Package client is a Go client for the who's-online server of package
// online (examples/onlined), speaking the Redis protocol (RESP2).
//
// It is a package of its own so that callers that only query a server do
// not link the index and server code, and it has no dependency outside the
// standard library and online's Visit type. Its generic Do and Pipeline also
// work against any RESP2 server (Redis included).
//
// # Usage
//
//	c, err := client.Dial(ctx, "127.0.0.1:7379", client.Config{})
//	...
//	defer c.Close()
//	ok, err := c.Hit(ctx, "alice", "/index.html", time.Now())
//	n, err := c.Count(ctx)
//	who, err := c.OnURL(ctx, "/index.html", 30)
//
// # Concurrency
//
// A Client is one connection; its methods are safe for concurrent use and
// run one at a time. Pipeline sends many commands in one write and reads
// their replies in one pass: use it (or several Clients) for throughput.
//
// # Errors
//
// An error reply from the server is an *Error and leaves the connection
// usable. An I/O error, a malformed reply or a ctx that ends mid-request
// closes the connection: later calls return ErrClosed.
package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/peerscale/peerscale/online"
)

// Errors returned by a Client.
var (
	// ErrClosed is returned after Close, or after an error that left the
	// connection unusable.
	ErrClosed = errors.New("client: closed")
	// ErrProtocol is wrapped by errors about malformed replies.
	ErrProtocol = errors.New("client: protocol error")
)

// Error is an error reply from the server ("-ERR ...").
type Error struct {
	Msg string
}

func (e *Error) Error() string { return "client: server error: " + e.Msg }

// DefaultMaxReplyBytes bounds one bulk string of a reply when
// Config.MaxReplyBytes is zero.
const DefaultMaxReplyBytes = 16 << 20

// maxArrayLen and maxDepth bound reply arrays.
const (
	maxArrayLen = 1 << 20
	maxDepth    = 8
)

// Config configures a Client. The zero value is valid; each field
// documents its default.
type Config struct {
	// MaxReplyBytes bounds one bulk string in a reply; a larger one is a
	// protocol error. Zero means DefaultMaxReplyBytes (16 MiB).
	MaxReplyBytes int
}

// Client is a connection to a RESP2 server. See the package documentation
// for its concurrency and error rules.
type Client struct {
	cfg Config

	mu  sync.Mutex
	c   net.Conn // nil once closed
	br  *bufio.Reader
	out []byte
}

// Dial connects to addr over TCP.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	return New(c, cfg), nil
}

// New returns a Client on an established connection, which it owns.
func New(c net.Conn, cfg Config) *Client {
	if cfg.MaxReplyBytes <= 0 {
		cfg.MaxReplyBytes = DefaultMaxReplyBytes
	}
	return &Client{cfg: cfg, c: c, br: bufio.NewReaderSize(c, 16<<10)}
}

// Close closes the connection. It is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return nil
	}
	err := c.c.Close()
	c.c = nil
	return err
}

// Do sends one command and returns its reply: int64, string, nil (a null
// bulk string or array), []any or *Error.
func (c *Client) Do(ctx context.Context, args ...string) (any, error) {
	r, err := c.Pipeline(ctx, [][]string{args})
	if err != nil {
		return nil, err
	}
	if e, ok := r[0].(*Error); ok {
		return nil, e
	}
	return r[0], nil
}

// Pipeline sends every command in one write and returns their replies in
// order. Error replies appear as *Error values in the result; err reports
// only failures of the connection.
func (c *Client) Pipeline(ctx context.Context, cmds [][]string) ([]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return nil, ErrClosed
	}
	c.out = c.out[:0]
	for _, args := range cmds {
		c.out = append(c.out, '*')
		c.out = strconv.AppendInt(c.out, int64(len(args)), 10)
		c.out = append(c.out, '\r', '\n')
		for _, a := range args {
			c.out = append(c.out, '$')
			c.out = strconv.AppendInt(c.out, int64(len(a)), 10)
			c.out = append(c.out, '\r', '\n')
			c.out = append(c.out, a...)
			c.out = append(c.out, '\r', '\n')
		}
	}
	// The connection's deadline is set only once ctx ends, so an I/O
	// timeout always reports ctx's error.
	c.c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	replies, err := c.roundTrip(len(cmds))
	if !stop() || ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		c.c.Close()
		c.c = nil
		return nil, err
	}
	return replies, nil
}

func (c *Client) roundTrip(n int) ([]any, error) {
	if _, err := c.c.Write(c.out); err != nil {
		return nil, fmt.Errorf("client: write: %w", err)
	}
	replies := make([]any, 0, n)
	for range n {
		r, err := readReply(c.br, c.cfg.MaxReplyBytes, 0)
		if err != nil {
			return nil, fmt.Errorf("client: read: %w", err)
		}
		replies = append(replies, r)
	}
	return replies, nil
}

func typeErr(cmd string, r any) error {
	return fmt.Errorf("%w: %s: unexpected reply %T", ErrProtocol, cmd, r)
}

// Hit records that user loaded url at t. It reports whether the server
// applied the hit (false: older than the user's last hit, or expired).
func (c *Client) Hit(ctx context.Context, user, url string, t time.Time) (bool, error) {
	r, err := c.Do(ctx, "HIT", user, url, strconv.FormatInt(t.UnixMilli(), 10))
	if err != nil {
		return false, err
	}
	n, ok := r.(int64)
	if !ok {
		return false, typeErr("HIT", r)
	}
	return n == 1, nil
}

// Count returns the number of users online.
func (c *Client) Count(ctx context.Context) (int, error) {
	r, err := c.Do(ctx, "COUNT")
	if err != nil {
		return 0, err
	}
	n, ok := r.(int64)
	if !ok {
		return 0, typeErr("COUNT", r)
	}
	return int(n), nil
}

// OnURL returns up to limit users last seen on url, newest first (limit
// <= 0: the server's default, 30).
func (c *Client) OnURL(ctx context.Context, url string, limit int) ([]online.Visit, error) {
	args := []string{"ONURL", url, "WITHTIMES"}
	if limit > 0 {
		args = append(args, "LIMIT", strconv.Itoa(limit))
	}
	r, err := c.Do(ctx, args...)
	if err != nil {
		return nil, err
	}
	a, ok := r.([]any)
	if !ok || len(a)%2 != 0 {
		return nil, typeErr("ONURL", r)
	}
	out := make([]online.Visit, 0, len(a)/2)
	for i := 0; i < len(a); i += 2 {
		u, ok1 := a[i].(string)
		ms, ok2 := a[i+1].(int64)
		if !ok1 || !ok2 {
			return nil, typeErr("ONURL", r)
		}
		out = append(out, online.Visit{User: u, URL: url, Time: time.UnixMilli(ms)})
	}
	return out, nil
}

// Last returns user's last hit, if the user is online.
func (c *Client) Last(ctx context.Context, user string) (online.Visit, bool, error) {
	r, err := c.Do(ctx, "LAST", user)
	if err != nil || r == nil {
		return online.Visit{}, false, err
	}
	a, ok := r.([]any)
	if !ok || len(a) != 2 {
		return online.Visit{}, false, typeErr("LAST", r)
	}
	url, ok1 := a[0].(string)
	ms, ok2 := a[1].(int64)
	if !ok1 || !ok2 {
		return online.Visit{}, false, typeErr("LAST", r)
	}
	return online.Visit{User: user, URL: url, Time: time.UnixMilli(ms)}, true, nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	r, err := c.Do(ctx, "PING")
	if err != nil {
		return err
	}
	if r != "PONG" {
		return typeErr("PING", r)
	}
	return nil
}

// Info returns the server's INFO text.
func (c *Client) Info(ctx context.Context) (string, error) {
	r, err := c.Do(ctx, "INFO")
	if err != nil {
		return "", err
	}
	s, ok := r.(string)
	if !ok {
		return "", typeErr("INFO", r)
	}
	return s, nil
}
