package logpub

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordSink keeps a formatted line and a copy of the interesting fields
// of each entry.
type recordSink struct {
	f     *Format
	mu    sync.Mutex
	lines []string
	ents  []Entry
}

func (s *recordSink) Log(e *Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, string(s.f.AppendLine(nil, e)))
	c := *e
	c.Request = nil
	c.ResponseHeader = nil
	c.Notes = append([]Pair(nil), e.Notes...)
	c.Env = append([]Pair(nil), e.Env...)
	s.ents = append(s.ents, c)
}

func (s *recordSink) last(tb testing.TB) (string, Entry) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(tb, s.lines)
	return s.lines[len(s.lines)-1], s.ents[len(s.ents)-1]
}

func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(1500 * time.Millisecond)
		return t
	}
}

func serve(tb testing.TB, layout string, h http.HandlerFunc, r *http.Request) (string, Entry, *httptest.ResponseRecorder) {
	tb.Helper()
	s := &recordSink{f: MustCompile(layout)}
	mw := Middleware(s, HandlerConfig{ServerName: "srv", Location: time.UTC, Now: fakeClock()})
	rec := httptest.NewRecorder()
	mw(h).ServeHTTP(rec, r)
	line, e := s.last(tb)
	return line, e, rec
}

func TestMiddlewareFinalStatus(t *testing.T) {
	leakcheck.Check(t)
	s := &recordSink{f: MustCompile(`%>s %b %B %T %D %^FB %v "%u"`)}
	mw := Middleware(s, HandlerConfig{ServerName: "srv", Location: time.UTC, Now: fakeClock()})
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "not here")
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/x")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	srv.Client().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	assert.Equal(t, 404, resp.StatusCode)
	line, e := s.last(t)
	assert.Equal(t, `404 8 8 3 3000000 1500000 srv "-"`, line)
	assert.Equal(t, int64(8), e.BodyBytes)
}

func TestMiddlewareImplicitStatus(t *testing.T) {
	line, _, _ := serve(t, "%s %b", func(w http.ResponseWriter, r *http.Request) {}, httptest.NewRequest("HEAD", "/", nil))
	assert.Equal(t, "200 -", line)
	line, _, _ = serve(t, "%s %b", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusSwitchingProtocols)
	}, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, "101 -", line)
}

func TestMiddlewareBytesIn(t *testing.T) {
	body := strings.Repeat("x", 1000)
	r := httptest.NewRequest("POST", "/upload", strings.NewReader(body))
	line, e, _ := serve(t, "%I", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}, r)
	assert.Equal(t, int64(1000), e.RequestBodyBytes)
	// "POST /upload HTTP/1.1\r\n" + "Host: example.com\r\n" + "\r\n" + body
	assert.Equal(t, fmt.Sprint(23+19+2+1000), line)
}

func TestMiddlewareUserAndNotes(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth("alice \"x\"", "pw")
	line, _, _ := serve(t, "%u", func(w http.ResponseWriter, r *http.Request) {}, r)
	assert.Equal(t, `alice \"x\"`, line)

	line, _, _ = serve(t, "%u %{k}n %{E}e %f %R", func(w http.ResponseWriter, r *http.Request) {
		SetUser(w, "bob")
		SetNote(w, "k", "v")
		SetEnv(w, "E", "1")
		SetFilename(w, "/srv/www/index.html", "static")
	}, r)
	assert.Equal(t, "bob v 1 /srv/www/index.html static", line)

	line, _, _ = serve(t, "%u", func(w http.ResponseWriter, r *http.Request) { SetUser(w, "") }, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, `""`, line)
}

func TestMiddlewarePanic(t *testing.T) {
	s := &recordSink{f: MustCompile("%s %X")}
	h := Middleware(s, HandlerConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}))
	assert.PanicsWithValue(t, "boom", func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	})
	line, _ := s.last(t)
	assert.Equal(t, "500 X", line)
}

// flushRecorder is a ResponseWriter with ReadFrom that records its calls.
type readFromWriter struct {
	*httptest.ResponseRecorder
	readFrom int
}

func (w *readFromWriter) ReadFrom(r io.Reader) (int64, error) {
	w.readFrom++
	return io.Copy(w.ResponseRecorder.Body, r)
}

func TestMiddlewareKeepsInterfaces(t *testing.T) {
	s := &recordSink{f: MustCompile("%s %B")}
	mw := Middleware(s, HandlerConfig{})

	// io.ReaderFrom reaches the wrapped writer (sendfile for *os.File).
	rf := &readFromWriter{ResponseRecorder: httptest.NewRecorder()}
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(w, io.LimitReader(strings.NewReader("0123456789"), 100))
		assert.NoError(t, err)
	})).ServeHTTP(rf, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, 1, rf.readFrom)
	line, _ := s.last(t)
	assert.Equal(t, "200 10", line)

	// Flusher, directly and through ResponseController.
	rec := httptest.NewRecorder()
	mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		require.True(t, ok)
		f.Flush()
		assert.NoError(t, http.NewResponseController(w).Flush())
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.True(t, rec.Flushed)
}

func TestMiddlewareServer(t *testing.T) {
	leakcheck.Check(t)
	s := &recordSink{f: MustCompile("%k %X %A %{local}p %a %>s %B")}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		// ResponseController reaches the connection through Unwrap.
		assert.NoError(t, http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)))
		fmt.Fprint(w, "hello")
	})
	file := filepath.Join(t.TempDir(), "big.bin")
	require.NoError(t, os.WriteFile(file, bytes.Repeat([]byte("x"), 100_000), 0o644))
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		_, ok := w.(io.ReaderFrom)
		assert.True(t, ok, "io.ReaderFrom kept for sendfile")
		http.ServeFile(w, r, file)
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		require.NoError(t, err)
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = brw.Flush()
		_ = c.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: Middleware(s, HandlerConfig{})(mux), ConnContext: ConnContext}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })

	port := ln.Addr().(*net.TCPAddr).Port
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	br := bufio.NewReader(c)
	for i := range 3 {
		conn := ""
		if i == 2 {
			conn = "Connection: close\r\n"
		}
		_, err = fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: x\r\n%s\r\n", conn)
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "hello", string(b))
	}
	once := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := once.Get("http://" + ln.Addr().String() + "/file")
	require.NoError(t, err)
	n, _ := io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, int64(100_000), n)
	resp, err = once.Get("http://" + ln.Addr().String() + "/hijack")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "hi", string(b))

	// The hijacking handler closed the connection before it returned and
	// was logged.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.lines)
		s.mu.Unlock()
		if n >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.lines, 5)
	p := fmt.Sprint(port)
	assert.Equal(t, "0 + 127.0.0.1 "+p+" 127.0.0.1 200 5", s.lines[0])
	assert.Equal(t, "1 + 127.0.0.1 "+p+" 127.0.0.1 200 5", s.lines[1])
	assert.Equal(t, "1 - 127.0.0.1 "+p+" 127.0.0.1 200 5", s.lines[2], "Apache repeats the count on the closing request")
	// The client may read the whole file before its handler returns and
	// is logged: the last two lines come in either order.
	assert.ElementsMatch(t, []string{
		"0 - 127.0.0.1 " + p + " 127.0.0.1 200 100000", // bytes sent through ReadFrom
		"0 - 127.0.0.1 " + p + " 127.0.0.1 - 0",        // hijacked
	}, s.lines[3:])
}

func TestWriterSink(t *testing.T) {
	var buf bytes.Buffer
	ws := NewWriterSink(&buf, MustCompile(`%m %U%q %>s`))
	h := Middleware(ws, HandlerConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("DELETE", "/a/b?c", nil))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, "DELETE /a/b?c 204\nGET / 204\n", buf.String())
	assert.NoError(t, ws.Err())
}

func ExampleMiddleware() {
	var buf bytes.Buffer
	sink := NewWriterSink(&buf, MustCompile(`%m %U %>s %B`))
	h := Middleware(sink, HandlerConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/greet", nil))
	fmt.Print(buf.String())
	// Output:
	// GET /greet 200 5
}

type failingWriter struct{ discardWriter }

func (failingWriter) Write(p []byte) (int, error) { return 0, io.ErrClosedPipe }

func TestMiddlewareAbortedWrite(t *testing.T) {
	s := &recordSink{f: MustCompile("%X %>s %B")}
	h := Middleware(s, HandlerConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := w.Write([]byte("lost"))
		assert.ErrorIs(t, err, io.ErrClosedPipe)
	}))
	h.ServeHTTP(&failingWriter{discardWriter{h: http.Header{}}}, httptest.NewRequest("GET", "/", nil))
	line, _ := s.last(t)
	assert.Equal(t, "X 200 0", line)
}

func TestMiddlewareTrailers(t *testing.T) {
	line, _, _ := serve(t, "%{X-Sum}^ti|%{X-Done}^to|%{X-None}^to", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set(http.TrailerPrefix+"X-Done", "yes")
		fmt.Fprint(w, "ok")
	}, func() *http.Request {
		r := httptest.NewRequest("POST", "/", strings.NewReader("abc"))
		r.Trailer = http.Header{"X-Sum": {"42"}}
		return r
	}())
	assert.Equal(t, "42|yes|-", line)
}

func TestFileSinkReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	fs, err := OpenFileSink(path, MustCompile("%U %>s"))
	require.NoError(t, err)
	h := Middleware(fs, HandlerConfig{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/one", nil))
	require.NoError(t, os.Rename(path, path+".1"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/two", nil)) // still the old file
	require.NoError(t, fs.Reopen())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/three", nil))
	require.NoError(t, fs.Close())
	require.NoError(t, fs.Close())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/lost", nil))
	assert.ErrorIs(t, fs.Err(), ErrClosed)
	assert.ErrorIs(t, fs.Reopen(), ErrClosed)

	old, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	assert.Equal(t, "/one 200\n/two 200\n", string(old))
	cur, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "/three 200\n", string(cur))
}
