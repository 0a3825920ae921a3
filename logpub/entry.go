package logpub

import (
	"net/http"
	"net/netip"
	"time"
)

// Pair is one name/value item of Entry.Notes or Entry.Env.
type Pair struct {
	Key, Value string
}

// Entry is one request/response exchange as a Format reads it. The
// middleware fills one per request; code that logs without the middleware
// fills the fields it has. Zero fields print as Apache prints absent values.
//
// A Format only reads an Entry; sinks must not retain it after Log returns.
type Entry struct {
	// Request is the request as received. Required.
	Request *http.Request
	// ResponseHeader is the header map of the response as the handler
	// wrote it (%{VAR}o, %{VAR}^to). Nil means none.
	ResponseHeader http.Header
	// Status is the final status (1xx responses excluded); 0 prints "-".
	Status int
	// Start is when the request started (%t); End when the response was
	// complete (%{end:...}t). Durations (%D, %T) are End minus Start. Times
	// print in Start's location.
	Start, End time.Time
	// FirstByte is the time from Start to the first byte of the response
	// (%^FB); zero prints "-".
	FirstByte time.Duration
	// BodyBytes counts the response body bytes (%B, %b).
	BodyBytes int64
	// RequestBodyBytes counts the request body bytes the handler read.
	RequestBodyBytes int64
	// BytesIn and BytesOut count the bytes received and sent including
	// the request line, status line and headers (%I, %O, %S). Zero means
	// an estimate: the request line and headers as received plus
	// RequestBodyBytes, and a status line and ResponseHeader plus
	// BodyBytes (net/http does not expose the wire bytes).
	BytesIn, BytesOut int64
	// User is the authenticated user (%u) when HasUser is set; an empty
	// User with HasUser prints "" as Apache does.
	User    string
	HasUser bool
	// ServerName is the server's canonical name (%v, and %V without a Host
	// header); empty prints "-".
	ServerName string
	// ServerPort is the canonical port (%p); zero means the local port.
	ServerPort int
	// LocalAddr is the address the request arrived on (%A, %{local}p).
	LocalAddr netip.AddrPort
	// KeepAlives is the number of requests served on the connection
	// before this one (%k).
	KeepAlives int
	// Aborted reports that the response could not be completed: a write
	// failed (the client went away) or the handler panicked (%X prints "X").
	Aborted bool
	// Filename (%f), Handler (%R) and LogID (%L) print "-" when empty.
	Filename, Handler, LogID string
	// Notes (%{VAR}n) and Env (%{VAR}e) are looked up by exact key.
	Notes, Env []Pair
}

// Duration returns End minus Start, or zero when either is unset.
func (e *Entry) Duration() time.Duration {
	if e.Start.IsZero() || e.End.IsZero() {
		return 0
	}
	return e.End.Sub(e.Start)
}

func lookupPair(ps []Pair, key string) (string, bool) {
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i].Key == key {
			return ps[i].Value, true
		}
	}
	return "", false
}

func (e *Entry) bytesIn() int64 {
	if e.BytesIn != 0 || e.Request == nil {
		return e.BytesIn
	}
	r := e.Request
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	n += headerBytes(r.Header) + 2
	return int64(n) + e.RequestBodyBytes
}

func (e *Entry) bytesOut() int64 {
	if e.BytesOut != 0 {
		return e.BytesOut
	}
	status := e.Status
	if status <= 0 {
		status = 200
	}
	n := len("HTTP/1.1 200 ") + len(http.StatusText(status)) + 2
	return int64(n+headerBytes(e.ResponseHeader)+2) + max(e.BodyBytes, 0)
}

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}
