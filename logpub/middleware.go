package logpub

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives one Entry per request. Log runs on the request path: it
// must not block on the network, and must not retain e (or anything it
// points to) after it returns. Sinks are called concurrently.
type Sink interface {
	Log(e *Entry)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(e *Entry)

// Log calls f(e).
func (f SinkFunc) Log(e *Entry) { f(e) }

// MultiSink returns a Sink that logs each entry to every sink in order, so
// a site can publish on the bus and write a local file too.
func MultiSink(sinks ...Sink) Sink {
	return multiSink(append([]Sink(nil), sinks...))
}

type multiSink []Sink

func (m multiSink) Log(e *Entry) {
	for _, k := range m {
		k.Log(e)
	}
}

func (m multiSink) logNeeds() needs {
	var n needs
	for _, k := range m {
		n = n.union(sinkNeeds(k))
	}
	return n
}

// needer is implemented by the sinks of this package: it tells which
// Entry fields their formats read, so the middleware collects only those.
type needer interface {
	logNeeds() needs
}

func sinkNeeds(s Sink) needs {
	if n, ok := s.(needer); ok {
		return n.logNeeds()
	}
	return needs{respHeader: true, keepAlives: true, firstByte: true, end: true}
}

// HandlerConfig configures Middleware. The zero value is valid; each field
// documents its default.
type HandlerConfig struct {
	// ServerName is the server's canonical name (%v). Empty means the host
	// name (os.Hostname).
	ServerName string
	// ServerPort is the canonical port (%p). Zero means the port the
	// request arrived on.
	ServerPort int
	// Location is the time zone times print in (%t). Nil means time.Local.
	Location *time.Location
	// User returns the user name %u prints and whether there is one; it
	// runs after the handler. Nil means the name passed to SetUser, or
	// else the user name of Basic authentication credentials.
	User func(r *http.Request) (string, bool)
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Middleware returns an http.Handler wrapper that logs every request to
// sink once the handler has returned: final status (1xx responses are
// not final), body bytes in and out, duration, user. The ResponseWriter
// the handler sees keeps http.Flusher, http.Hijacker and io.ReaderFrom
// (sendfile) working, and unwraps for http.ResponseController. When the
// handler panics, the request is logged (status 500 if none was written,
// %X "X") and the panic continues.
func Middleware(sink Sink, cfg HandlerConfig) func(http.Handler) http.Handler {
	if cfg.ServerName == "" {
		cfg.ServerName, _ = os.Hostname()
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &middleware{sink: sink, cfg: cfg, needs: sinkNeeds(sink)}
	m.pool.New = func() any { return new(responseWriter) }
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(next, w, r)
		})
	}
}

type middleware struct {
	sink  Sink
	cfg   HandlerConfig
	needs needs
	pool  sync.Pool
}

func (m *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	rw := m.pool.Get().(*responseWriter)
	rw.w = w
	rw.m = m
	rw.e.Request = r
	rw.e.Start = m.cfg.Now().In(m.cfg.Location)
	if r.Body != nil && r.Body != http.NoBody {
		rw.body.rc = r.Body
		r.Body = &rw.body
	}
	panicked := true
	defer func() {
		if panicked {
			p := recover()
			rw.e.Aborted = true
			if rw.e.Status == 0 {
				rw.e.Status = http.StatusInternalServerError
			}
			m.finish(rw, r)
			panic(p)
		}
	}()
	next.ServeHTTP(rw, r)
	panicked = false
	m.finish(rw, r)
}

func (m *middleware) finish(rw *responseWriter, r *http.Request) {
	e := &rw.e
	if m.needs.end {
		e.End = m.cfg.Now()
	} else {
		e.End = e.Start // no directive reads it: spare a clock read
	}
	if e.Status == 0 {
		e.Status = http.StatusOK // net/http sends 200 for a handler that wrote nothing
	}
	e.ResponseHeader = rw.w.Header()
	e.ServerName = m.cfg.ServerName
	e.ServerPort = m.cfg.ServerPort
	e.RequestBodyBytes = rw.body.n
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		e.LocalAddr = a.AddrPort()
	}
	if c, ok := r.Context().Value(connKey{}).(*connInfo); ok {
		e.KeepAlives = int(c.requests.Add(1)) - 1
	}
	if m.cfg.User != nil {
		e.User, e.HasUser = m.cfg.User(r)
	} else if !e.HasUser && len(r.Header["Authorization"]) > 0 {
		if u, _, ok := r.BasicAuth(); ok {
			e.User, e.HasUser = u, true
		}
	}
	m.sink.Log(e)
	if r.Body == &rw.body {
		r.Body = rw.body.rc
	}
	notes, env := rw.e.Notes[:0], rw.e.Env[:0]
	clear(rw.e.Notes)
	clear(rw.e.Env)
	*rw = responseWriter{}
	rw.e.Notes, rw.e.Env = notes, env
	m.pool.Put(rw)
}

// responseWriter wraps the handler's ResponseWriter and holds the request's
// Entry, so a request costs no allocation.
type responseWriter struct {
	w    http.ResponseWriter
	m    *middleware
	e    Entry
	body countingBody
}

func (w *responseWriter) Header() http.Header { return w.w.Header() }

func (w *responseWriter) WriteHeader(code int) {
	if w.e.Status == 0 {
		if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
			w.e.Status = code
			w.firstByte()
		}
	}
	w.w.WriteHeader(code)
}

func (w *responseWriter) firstByte() {
	if w.e.FirstByte == 0 && w.m.needs.firstByte {
		w.e.FirstByte = max(w.m.cfg.Now().Sub(w.e.Start), time.Nanosecond)
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.e.Status == 0 {
		w.e.Status = http.StatusOK
		w.firstByte()
	}
	n, err := w.w.Write(p)
	w.e.BodyBytes += int64(n)
	if err != nil {
		w.e.Aborted = true // as Apache's c->aborted: the client is gone
	}
	return n, err
}

// ReadFrom keeps sendfile: it hands r to the wrapped writer's ReadFrom.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.e.Status == 0 {
		w.e.Status = http.StatusOK
		w.firstByte()
	}
	var n int64
	var err error
	if rf, ok := w.w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.w}, r)
	}
	w.e.BodyBytes += n
	if err != nil {
		w.e.Aborted = true
	}
	return n, err
}

// Flush flushes the wrapped writer, if it can.
func (w *responseWriter) Flush() {
	if w.e.Status == 0 {
		w.e.Status = http.StatusOK
		w.firstByte()
	}
	_ = http.NewResponseController(w.w).Flush()
}

// Hijack hijacks the wrapped writer's connection. The request is logged
// with the status written before (none: "-").
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.w).Hijack()
	if err == nil && w.e.Status == 0 {
		w.e.Status = -1
	}
	return c, rw, err
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.w }

type writerOnly struct{ io.Writer }

type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// find returns the middleware's writer under w, or nil.
func find(w http.ResponseWriter) *responseWriter {
	for w != nil {
		if rw, ok := w.(*responseWriter); ok {
			return rw
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// SetUser sets the authenticated user %u prints for the request served
// through w (Apache's r->user). It does nothing outside Middleware.
func SetUser(w http.ResponseWriter, user string) {
	if rw := find(w); rw != nil {
		rw.e.User, rw.e.HasUser = user, true
	}
}

// SetNote sets a note (%{key}n) for the request served through w.
func SetNote(w http.ResponseWriter, key, value string) {
	if rw := find(w); rw != nil {
		rw.e.Notes = append(rw.e.Notes, Pair{key, value})
	}
}

// SetEnv sets an environment variable (%{key}e) for the request served
// through w, as Apache's SetEnv and SetEnvIf do.
func SetEnv(w http.ResponseWriter, key, value string) {
	if rw := find(w); rw != nil {
		rw.e.Env = append(rw.e.Env, Pair{key, value})
	}
}

// SetFilename sets the file name (%f) and the handler name (%R) of the
// request served through w; empty strings leave a value unchanged.
func SetFilename(w http.ResponseWriter, filename, handler string) {
	if rw := find(w); rw != nil {
		if filename != "" {
			rw.e.Filename = filename
		}
		if handler != "" {
			rw.e.Handler = handler
		}
	}
}

type connKey struct{}

type connInfo struct{ requests atomic.Int64 }

// ConnContext is for http.Server.ConnContext: it counts the requests of
// each connection so that %k prints Apache's keep-alive count. Without it
// %k prints 0.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, new(connInfo))
}
