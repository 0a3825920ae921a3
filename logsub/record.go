package logsub

import "time"

// Record is one access-log record as loggers and monitors consume it: the
// structured fields monitors read and the formatted line loggers write.
type Record struct {
	// Group is the bus group the record arrived on.
	Group string
	// Publisher, Epoch and Seq identify the record: Seq increases by one
	// per record within one epoch of one publisher. Loggers drop a record
	// whose identity they already wrote.
	Publisher string
	Epoch     uint64
	Seq       uint64

	// Time is when the request started, as the web server saw it.
	Time time.Time
	// Server identifies the web server that served the request (the
	// publisher id for records from the bus).
	Server string
	// Vhost is the virtual host (the canonical server name).
	Vhost string
	// Remote is the client address; User the authenticated user.
	Remote, User string
	// Method, URL and Proto come from the request line.
	Method, URL, Proto string
	// Status is the final status; Bytes the response body size.
	Status int
	Bytes  int64
	// Duration is how long the request took.
	Duration time.Duration
	// Referer and UserAgent are the request headers ("" when absent).
	Referer, UserAgent string
	// Line is the formatted log line, without a newline.
	Line []byte
}
