package logsub

import (
	"github.com/peerscale/peerscale/internal/logwire"
)

// eachRecord decodes a logwire batch message and calls fn with each of its
// records, without allocating per record: the strings and Line of the
// Record fn gets alias data and are valid only until fn returns (code that
// keeps one clones it). It returns the batch header, or the first decoding
// error (the records before it have been passed to fn) or fn's first error.
func eachRecord(data []byte, group string, fn func(*Record) error) (logwire.BatchHeader, error) {
	it, err := logwire.IterRecords(data)
	if err != nil {
		return it.Header, err
	}
	var w logwire.Record
	h := &it.Header
	r := Record{Group: group, Publisher: h.Publisher, Epoch: h.Epoch, Server: h.Publisher}
	for it.Next(&w) {
		r.Seq, r.Time, r.Duration, r.Status, r.Bytes = w.Seq, w.Time, w.Duration, w.Status, w.Bytes
		r.Vhost, r.Remote, r.User = w.VHost, w.Remote, w.User
		r.Method, r.URL, r.Proto = w.Method, w.URL, w.Proto
		r.Referer, r.UserAgent, r.Line = w.Referer, w.UserAgent, w.Line
		if err := fn(&r); err != nil {
			return it.Header, err
		}
	}
	return it.Header, it.Err()
}
