package proxycache

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// metaVersion is the sidecar format version.
const metaVersion = 1

// maxMetaSize bounds a sidecar file; larger ones are refused as corrupt.
const maxMetaSize = 256 << 10

// meta is what the sidecar file stores beside a body: the response head,
// the exchange times, and the identity (device, inode, size) of the body
// file it describes (and its modification time, since a deleted file's
// inode number is reused at once). A body whose identity differs is not
// this entry's body, whoever replaced it.
type meta struct {
	Version  int         `json:"v"`
	Key      string      `json:"key"`
	Status   int         `json:"status"`
	Header   http.Header `json:"header"`
	Vary     http.Header `json:"vary,omitempty"`
	AgeValue int64       `json:"age,omitempty"` // seconds, the origin's Age field
	ReqTime  int64       `json:"req"`           // unix nanoseconds
	RespTime int64       `json:"resp"`          // unix nanoseconds
	Size     int64       `json:"size"`
	Dev      uint64      `json:"dev"`
	Ino      uint64      `json:"ino"`
	MTime    int64       `json:"mtime"` // body modification time, unix nanoseconds

	// Parsed once by prepare: hits never parse the stored fields.
	cc       directives
	dateT    time.Time     // Date, or the response time
	initial  time.Duration // corrected initial age (RFC 9111 §4.2.3)
	expires  int8          // 0 no Expires, 1 parsed into expT, -1 invalid or repeated
	expT     time.Time
	lastMod  time.Time // zero when absent or invalid
	varyList []string  // field names listed by Vary
	etag, lm string    // validators

	// hit caches the header of a plain fresh hit for one (age, ttl) pair
	// (see Cache.hitHeader); checked is when the body file was last found
	// to be the one described (unix ns), for bodies served from memory.
	hit     atomic.Pointer[hitHead]
	checked atomic.Int64
}

// errBadMeta is wrapped by decodeMeta for every malformed sidecar.
var errBadMeta = errors.New("proxycache: malformed metadata")

func (m *meta) encode() ([]byte, error) {
	return json.Marshal(m)
}

// decodeMeta parses and validates a sidecar.
func decodeMeta(b []byte) (*meta, error) {
	if len(b) > maxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes", errBadMeta, len(b))
	}
	m := new(meta)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadMeta, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	m.prepare()
	return m, nil
}

func (m *meta) validate() error {
	switch {
	case m.Version != metaVersion:
		return fmt.Errorf("%w: version %d", errBadMeta, m.Version)
	case m.Key == "" || len(m.Key) > maxKeyLen:
		return fmt.Errorf("%w: key length %d", errBadMeta, len(m.Key))
	case m.Status < 200 || m.Status > 599:
		return fmt.Errorf("%w: status %d", errBadMeta, m.Status)
	case m.Size < 0 || m.AgeValue < 0 || m.ReqTime < 0 || m.RespTime < m.ReqTime:
		return fmt.Errorf("%w: negative size, age or times", errBadMeta)
	}
	for _, h := range []http.Header{m.Header, m.Vary} {
		for k, vs := range h {
			if !validFieldName(k) || k != http.CanonicalHeaderKey(k) {
				return fmt.Errorf("%w: field name %q", errBadMeta, k)
			}
			for _, v := range vs {
				if !validFieldValue(v) {
					return fmt.Errorf("%w: field %s value", errBadMeta, k)
				}
			}
		}
	}
	return nil
}

func (m *meta) prepare() {
	if m.Header == nil {
		m.Header = http.Header{}
	}
	if len(m.Vary) == 0 {
		m.Vary = nil
	}
	m.cc = parseDirectives(m.Header)
	m.dateT = m.respTime()
	if d, err := http.ParseTime(m.Header.Get("Date")); err == nil {
		m.dateT = d
	}
	apparent := max(0, m.respTime().Sub(m.dateT))
	corrected := time.Duration(m.AgeValue)*time.Second + m.respTime().Sub(m.reqTime())
	m.initial = max(apparent, corrected)
	m.expires = 0
	if vs := m.Header.Values("Expires"); len(vs) > 0 {
		m.expires = -1
		if exp, err := http.ParseTime(vs[0]); err == nil && len(vs) == 1 {
			m.expires, m.expT = 1, exp
		}
	}
	m.lastMod = time.Time{}
	if lm, err := http.ParseTime(m.Header.Get("Last-Modified")); err == nil {
		m.lastMod = lm
	}
	m.varyList = varyNames(m.Header)
	m.etag, m.lm = m.Header.Get("Etag"), m.Header.Get("Last-Modified")
}

// clone returns a copy of the stored fields of m, to be prepared again.
func (m *meta) clone() *meta {
	return &meta{Version: m.Version, Key: m.Key, Status: m.Status, Header: m.Header, Vary: m.Vary,
		AgeValue: m.AgeValue, ReqTime: m.ReqTime, RespTime: m.RespTime, Size: m.Size, Dev: m.Dev, Ino: m.Ino, MTime: m.MTime}
}

func (m *meta) reqTime() time.Time  { return time.Unix(0, m.ReqTime) }
func (m *meta) respTime() time.Time { return time.Unix(0, m.RespTime) }

// heuristicStatus lists the status codes defined as heuristically
// cacheable (RFC 9110 §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// lifetime is the freshness lifetime for a shared cache (RFC 9111 §4.2.1)
// and whether it was heuristic.
func (m *meta) lifetime(heuristic float64) time.Duration {
	if m.cc.sMaxAge >= 0 {
		return m.cc.sMaxAge
	}
	if m.cc.maxAge >= 0 {
		return m.cc.maxAge
	}
	if m.expires != 0 {
		if m.expires < 0 {
			return 0
		}
		return max(0, m.expT.Sub(m.dateT))
	}
	if !heuristicStatus(m.Status) && !m.cc.public {
		return 0
	}
	if !m.lastMod.IsZero() && m.lastMod.Before(m.dateT) {
		return time.Duration(float64(m.dateT.Sub(m.lastMod)) * heuristic).Truncate(time.Second)
	}
	return 0
}

// age is the current age (RFC 9111 §4.2.3).
func (m *meta) age(now time.Time) time.Duration {
	return m.initial + max(0, now.Sub(m.respTime()))
}

// noStale reports whether the entry must never be served stale.
func (m *meta) noStale() bool {
	return m.cc.mustRevalidate || m.cc.proxyRevalidate || m.cc.sMaxAge >= 0
}

// validators returns the conditional request fields for revalidation.
func (m *meta) validators() (etag, lastModified string) {
	return m.etag, m.lm
}

// matches reports whether the request selects this variant (RFC 9111 §4.1).
func (m *meta) matches(r *http.Request) bool {
	for _, name := range m.varyList {
		if name == "*" {
			return false
		}
		if normalizeField(r.Header.Values(name)) != normalizeField(m.Vary.Values(name)) {
			return false
		}
	}
	return true
}

// varyNames lists the canonical field names in the Vary fields of h.
func varyNames(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, http.CanonicalHeaderKey(f))
			}
		}
	}
	return out
}

func normalizeField(vs []string) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strings.Join(strings.Fields(v), " "))
	}
	return b.String()
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 || (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
