package online_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/peerscale/peerscale/online"
	"github.com/peerscale/peerscale/online/client"
)

var t0 = time.UnixMilli(1_800_000_000_000)

// startServer serves a fresh index whose clock reads *now.
func startServer(t *testing.T, now *time.Time, cfg online.ServerConfig) (*online.Index, *online.Server) {
	t.Helper()
	ix := online.NewIndex(online.Config{Window: time.Minute, Now: func() time.Time { return *now }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := online.NewServer(ix, ln, cfg)
	t.Cleanup(func() { srv.Close() })
	return ix, srv
}

func dialRaw(t *testing.T, srv *online.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readReplies reads n replies as raw text (one line each, plus the body
// of bulk strings and the elements of arrays).
func readReplies(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for range n {
		out = append(out, readRaw(t, r))
	}
	return out
}

func readRaw(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	switch line[0] {
	case '$':
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		require.NoError(t, err)
		if n < 0 {
			return line
		}
		b := make([]byte, n+2)
		_, err = io.ReadFull(r, b)
		require.NoError(t, err)
		return line + string(b)
	case '*':
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		require.NoError(t, err)
		for range n {
			line += readRaw(t, r)
		}
	}
	return line
}

func TestServerCommands(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	c, r := dialRaw(t, srv)
	ms := strconv.FormatInt(t0.UnixMilli(), 10)
	steps := []struct{ in, want string }{
		{"PING\r\n", "+PONG\r\n"},
		{"*2\r\n$4\r\nping\r\n$2\r\nhi\r\n", "$2\r\nhi\r\n"},
		{"*4\r\n$3\r\nHIT\r\n$5\r\nalice\r\n$2\r\n/a\r\n$13\r\n" + ms + "\r\n", ":1\r\n"},
		{"hit bob /a " + strconv.FormatInt(t0.UnixMilli()+5, 10) + "\r\n", ":1\r\n"},
		{"HIT carol /b\r\n", ":1\r\n"}, // the server's clock
		{"HIT alice /old " + strconv.FormatInt(t0.UnixMilli()-1, 10) + "\r\n", ":0\r\n"},
		{"COUNT\r\n", ":3\r\n"},
		{"ONURL /a\r\n", "*2\r\n$3\r\nbob\r\n$5\r\nalice\r\n"},
		{"ONURL /a LIMIT 1 WITHTIMES\r\n", "*2\r\n$3\r\nbob\r\n:" + strconv.FormatInt(t0.UnixMilli()+5, 10) + "\r\n"},
		{"ONURL /nobody\r\n", "*0\r\n"},
		{"LAST alice\r\n", "*2\r\n$2\r\n/a\r\n:" + ms + "\r\n"},
		{"LAST nobody\r\n", "*-1\r\n"},
		{"COUNT extra\r\n", "-ERR wrong number of arguments for 'count' command\r\n"},
		{"HIT a\r\n", "-ERR wrong number of arguments for 'hit' command\r\n"},
		{"HIT a /x soon\r\n", "-ERR value is not an integer or out of range\r\n"},
		{"HIT a /x 99999999999999999999\r\n", "-ERR value is not an integer or out of range\r\n"},
		{"ONURL /a LIMIT 0\r\n", "-ERR LIMIT must be an integer from 1 to 10000\r\n"},
		{"ONURL /a SORT\r\n", "-ERR syntax error\r\n"},
		{"FLUSHALL now\r\n", "-ERR unknown command 'FLUSHALL', with args beginning with: 'now' \r\n"},
		{"\r\n*0\r\nPING\r\n", "+PONG\r\n"}, // empty requests are skipped
	}
	for _, s := range steps {
		_, err := io.WriteString(c, s.in)
		require.NoError(t, err)
		assert.Equal(t, s.want, readRaw(t, r), "reply to %q", s.in)
	}
	_, err := io.WriteString(c, "INFO\r\n")
	require.NoError(t, err)
	info := readRaw(t, r)
	assert.Contains(t, info, "users:3\r\n")
	assert.Contains(t, info, "hits_out_of_order:1\r\n")
	_, err = io.WriteString(c, "QUIT\r\n")
	require.NoError(t, err)
	assert.Equal(t, "+OK\r\n", readRaw(t, r))
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "connection closed after QUIT")
	st := srv.Stats()
	assert.Equal(t, uint64(7), st.Errors)
	assert.Zero(t, st.ProtocolErrors)
}

func TestServerExpiresBeforeEachBatch(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	c, r := dialRaw(t, srv)
	fmt.Fprintf(c, "HIT a /x %d\r\nHIT b /x %d\r\nCOUNT\r\n", t0.UnixMilli(), t0.UnixMilli()+30_000)
	assert.Equal(t, []string{":1\r\n", ":1\r\n", ":2\r\n"}, readReplies(t, r, 3))
	now = t0.Add(time.Minute) // a's hit is now exactly one window old
	fmt.Fprintf(c, "COUNT\r\nONURL /x\r\n")
	assert.Equal(t, []string{":1\r\n", "*1\r\n$1\r\nb\r\n"}, readReplies(t, r, 2))
}

func TestServerPipelineOneWritePerBatch(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	c, r := dialRaw(t, srv)
	var req []byte
	const n = 200
	for i := range n {
		req = fmt.Appendf(req, "*4\r\n$3\r\nHIT\r\n$%d\r\nu%d\r\n$2\r\n/p\r\n$13\r\n%d\r\n",
			len(strconv.Itoa(i))+1, i, t0.UnixMilli()+int64(i))
	}
	req = append(req, "*1\r\n$5\r\nCOUNT\r\n"...)
	require.Less(t, len(req), 16<<10, "the batch fits one read")
	before := srv.Stats().Writes
	_, err := c.Write(req)
	require.NoError(t, err)
	got := readReplies(t, r, n+1)
	for i := range n {
		require.Equal(t, ":1\r\n", got[i], "reply %d", i)
	}
	assert.Equal(t, ":200\r\n", got[n])
	// Loopback may split the batch into a few reads, never into 201.
	assert.LessOrEqual(t, srv.Stats().Writes-before, uint64(3))
	assert.Equal(t, uint64(n+1), srv.Stats().Commands)
}

func TestServerMalformedRequestsCloseTheConnection(t *testing.T) {
	leakcheck.Check(t)
	cases := map[string]struct{ in, want string }{
		"bad multibulk length": {"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		"too many arguments":   {"*1000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
		"negative bulk":        {"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		"bulk too large":       {"*1\r\n$70000\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
		"not a bulk":           {"*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':5'\r\n"},
		"missing CRLF":         {"*1\r\n$4\r\nPINGXY", "-ERR Protocol error: bulk string not terminated by CRLF\r\n"},
		"inline too long":      {strings.Repeat("A", 20<<10), "-ERR Protocol error: too big inline request\r\n"},
	}
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, r := dialRaw(t, srv)
			_, err := io.WriteString(c, "PING\r\n"+tc.in)
			require.NoError(t, err)
			assert.Equal(t, []string{"+PONG\r\n", tc.want}, readReplies(t, r, 2))
			_, err = r.ReadByte()
			assert.ErrorIs(t, err, io.EOF, "connection closed")
		})
	}
	assert.Equal(t, uint64(len(cases)), srv.Stats().ProtocolErrors)
}

func TestServerMaxConns(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{MaxConns: 1})
	c1, r1 := dialRaw(t, srv)
	_, err := io.WriteString(c1, "PING\r\n")
	require.NoError(t, err)
	assert.Equal(t, "+PONG\r\n", readRaw(t, r1))
	_, r2 := dialRaw(t, srv)
	assert.Equal(t, "-ERR max number of clients reached\r\n", readRaw(t, r2))
	assert.Equal(t, uint64(1), srv.Stats().Rejected)
	c1.Close()
	// The slot frees once the server notices the close.
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Conns != 0 {
		require.True(t, time.Now().Before(deadline), "connection not released")
		time.Sleep(time.Millisecond)
	}
	c3, r3 := dialRaw(t, srv)
	_, err = io.WriteString(c3, "PING\r\n")
	require.NoError(t, err)
	assert.Equal(t, "+PONG\r\n", readRaw(t, r3))
}

func TestServerShutdownAndClose(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	c, r := dialRaw(t, srv)
	_, err := io.WriteString(c, "PING\r\n")
	require.NoError(t, err)
	assert.Equal(t, "+PONG\r\n", readRaw(t, r))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx), "an idle connection does not hold Shutdown")
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
	_, err = net.Dial("tcp", srv.Addr().String())
	assert.Error(t, err, "listener closed")
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close(), "Close is idempotent")
	assert.ErrorIs(t, srv.Shutdown(ctx), online.ErrClosed)
}

func TestServerIdleTimeout(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{IdleTimeout: 50 * time.Millisecond})
	_, r := dialRaw(t, srv)
	_, err := r.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "idle connection closed")
}

func TestClientAgainstServer(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	ctx := t.Context()
	c, err := client.Dial(ctx, srv.Addr().String(), client.Config{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Ping(ctx))
	ok, err := c.Hit(ctx, "alice", "/a", t0)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = c.Hit(ctx, "alice", "/b", t0.Add(-time.Second))
	require.NoError(t, err)
	assert.False(t, ok, "older hit ignored")
	_, err = c.Hit(ctx, "bob", "/a", t0.Add(time.Second))
	require.NoError(t, err)
	n, err := c.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	who, err := c.OnURL(ctx, "/a", 0)
	require.NoError(t, err)
	assert.Equal(t, []online.Visit{
		{User: "bob", URL: "/a", Time: t0.Add(time.Second)},
		{User: "alice", URL: "/a", Time: t0},
	}, who)
	v, ok, err := c.Last(ctx, "alice")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, online.Visit{User: "alice", URL: "/a", Time: t0}, v)
	_, ok, err = c.Last(ctx, "nobody")
	require.NoError(t, err)
	assert.False(t, ok)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	assert.Contains(t, info, "users:2")

	_, err = c.Do(ctx, "NOPE")
	var se *client.Error
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Msg, "unknown command")
	replies, err := c.Pipeline(ctx, [][]string{{"COUNT"}, {"NOPE"}, {"PING"}})
	require.NoError(t, err, "error replies do not fail the pipeline")
	require.Len(t, replies, 3)
	assert.Equal(t, int64(2), replies[0])
	assert.IsType(t, &client.Error{}, replies[1])
	assert.Equal(t, "PONG", replies[2])

	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.Ping(ctx), client.ErrClosed)
}

func TestClientContextEndsRequest(t *testing.T) {
	leakcheck.Check(t)
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := client.Dial(t.Context(), ln.Addr().String(), client.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = c.Ping(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, c.Ping(t.Context()), client.ErrClosed, "connection dropped after a cancelled request")
	c.Close()
	ln.Close()
	<-done
}

// TestRedisCLI drives the server with Debian's redis-cli.
func TestRedisCLI(t *testing.T) {
	leakcheck.Check(t)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
			t.Fatal("redis-cli not found (Debian package redis-tools) and PEERSCALE_REQUIRE_TOOLS=1")
		}
		t.Skip("redis-cli not found: install the Debian package redis-tools")
	}
	now := t0
	_, srv := startServer(t, &now, online.ServerConfig{})
	host, port, err := net.SplitHostPort(srv.Addr().String())
	require.NoError(t, err)
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append([]string{"-h", host, "-p", port}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	ms := t0.UnixMilli()
	assert.Equal(t, "PONG\n", run("", "PING"))
	assert.Equal(t, "1\n", run("", "HIT", "alice", "/a", strconv.FormatInt(ms, 10)))
	// --pipe sends a file of commands as one pipelined stream.
	var pipe strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&pipe, "*4\r\n$3\r\nHIT\r\n$%d\r\nu%d\r\n$2\r\n/b\r\n$13\r\n%d\r\n", len(strconv.Itoa(i))+1, i, ms+int64(i))
	}
	out := run(pipe.String(), "--pipe")
	assert.Contains(t, out, "errors: 0, replies: 1000")
	assert.Equal(t, "1001\n", run("", "COUNT"))
	assert.Equal(t, "u999\nu998\n", run("", "ONURL", "/b", "LIMIT", "2"))
	assert.Equal(t, "/a\n"+strconv.FormatInt(ms, 10)+"\n", run("", "LAST", "alice"))
	assert.Contains(t, run("", "FOO"), "ERR unknown command 'FOO'")
	assert.Contains(t, run("", "INFO"), "users:1001")
}

func TestServerConcurrentClients(t *testing.T) {
	leakcheck.Check(t)
	now := t0
	ix, srv := startServer(t, &now, online.ServerConfig{})
	ctx := t.Context()
	const clients, per = 4, 300
	errc := make(chan error, clients)
	for w := range clients {
		go func() {
			c, err := client.Dial(ctx, srv.Addr().String(), client.Config{})
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			var cmds [][]string
			for i := range per {
				cmds = append(cmds, []string{"HIT", fmt.Sprintf("w%d-%d", w, i), "/p" + strconv.Itoa(i%7), strconv.FormatInt(t0.UnixMilli()+int64(i), 10)})
				cmds = append(cmds, []string{"ONURL", "/p" + strconv.Itoa(i%7), "LIMIT", "5"})
			}
			for start := 0; start < len(cmds); start += 16 {
				rs, err := c.Pipeline(ctx, cmds[start:min(start+16, len(cmds))])
				if err != nil {
					errc <- err
					return
				}
				for _, r := range rs {
					if e, ok := r.(*client.Error); ok {
						errc <- e
						return
					}
				}
			}
			errc <- nil
		}()
	}
	for range clients {
		require.NoError(t, <-errc)
	}
	assert.Equal(t, clients*per, ix.Count())
	require.NoError(t, srv.Close())
}
