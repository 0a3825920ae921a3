package proxycache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// hopHeaders are removed from forwarded requests and stored responses
// (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// lookupResult is what a request found in the store.
type lookupResult struct {
	key  string // the index's copy of the key
	rel  string
	m    *meta
	body []byte // in-memory copy of the body, or nil
	hot  bool   // hit before: worth a memory copy
}

func (c *Cache) serveCacheable(w http.ResponseWriter, r *http.Request, o *origin) {
	var kbuf [256]byte
	kb := appendKey(kbuf[:0], o.host, r.URL) // the key, without allocating on a hit
	if len(kb) > maxKeyLen {
		c.pass(w, r, o)
		return
	}
	reqCC := parseDirectives(r.Header)
	if pragmaNoCache(r.Header) {
		reqCC.noCache = true
	}
	auth := r.Header.Get("Authorization") != ""
	var old lookupResult
	reason := "uri-miss"
	suspect := false
	now := time.Now()
	if !auth {
		if e := c.store.lookup(kb, now); e.m != nil {
			if e.m.matches(r) {
				old = e
			} else {
				reason = "vary-miss"
			}
		}
	}
	if old.m != nil {
		key := old.key
		age := old.m.age(now)
		life := old.m.lifetime(c.cfg.HeuristicFraction)
		staleness := age - life
		suspect = old.m.ReqTime < c.store.floor.Load() // fetched before purges this member may have missed
		validate := reqCC.noCache || old.m.cc.noCache || suspect ||
			(reqCC.maxAge >= 0 && age > reqCC.maxAge) ||
			(reqCC.minFresh >= 0 && life-age < reqCC.minFresh)
		switch {
		case !validate && staleness < 0:
			if c.serveEntry(w, r, key, old, now, age, life, "hit") {
				c.st.hits.Add(1)
				return
			}
			old = lookupResult{}
		case !validate && !old.m.noStale() && reqCC.maxStale >= 0 && staleness <= reqCC.maxStale:
			if c.serveEntry(w, r, key, old, now, age, life, "hit") {
				c.st.stale.Add(1)
				return
			}
			old = lookupResult{}
		case !validate && !old.m.noStale() && old.m.cc.staleWhileRevalidate >= 0 && staleness <= old.m.cc.staleWhileRevalidate:
			if c.serveEntry(w, r, key, old, now, age, life, "hit; fwd=stale") {
				c.st.stale.Add(1)
				c.revalidateInBackground(r, o, key, old)
				return
			}
			old = lookupResult{}
		}
		if old.m != nil {
			reason = "stale"
			if validate && !suspect {
				reason = "request"
			}
		}
	}
	key := old.key
	if key == "" {
		key = string(kb)
	}
	if reqCC.onlyIfCached {
		w.Header().Set("Cache-Status", c.cfg.Name+"; fwd=miss; detail=only-if-cached")
		http.Error(w, "proxycache: not in cache", http.StatusGatewayTimeout)
		return
	}
	if old.m == nil {
		c.st.misses.Add(1)
	}
	collapse := !auth && !reqCC.noStore
	f, leader := c.startFill(r, o, key, old, collapse, r.Context().Done())
	if f == nil {
		c.pass(w, r, o)
		return
	}
	if !leader {
		c.st.coalesced.Add(1)
	}
	select {
	case <-f.done:
	case <-r.Context().Done():
		return
	}
	status := "fwd=" + reason
	if !leader {
		status += "; collapsed"
	}
	if f.m != nil && f.m.matches(r) {
		fs := status
		if f.status != 0 {
			fs += "; fwd-status=" + strconv.Itoa(f.status)
		}
		if f.stored {
			fs += "; stored"
		}
		res := lookupResult{key: key, rel: f.rel, m: f.m}
		now := time.Now()
		if c.serveEntry(w, r, key, res, now, f.m.age(now), f.m.lifetime(c.cfg.HeuristicFraction), fs) {
			return
		}
	}
	var resp *http.Response
	if leader && f.handsOff {
		select {
		case resp = <-f.handoff:
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	if resp != nil {
		defer resp.Body.Close()
	}
	failed := f.err != nil || (resp != nil && resp.StatusCode >= 500) || (!leader && f.status >= 500)
	if failed && old.m != nil && !old.m.noStale() && !suspect {
		sie := max(old.m.cc.staleIfError, reqCC.staleIfError)
		now := time.Now()
		age, life := old.m.age(now), old.m.lifetime(c.cfg.HeuristicFraction)
		if sie >= 0 && age-life <= sie && c.serveEntry(w, r, key, old, now, age, life, status+"; detail=stale-if-error") {
			c.st.stale.Add(1)
			return
		}
	}
	switch {
	case resp != nil:
		c.writeResponse(w, r, resp, status)
	case f.err != nil && leader:
		c.fail(w, r, f.err)
	default:
		// Not stored, private, purged meanwhile or meant for another
		// variant: this request fetches on its own.
		c.pass(w, r, o)
	}
}

// appendKey appends the cache key of u on host: the host, then the
// request URI as requestURI gives it.
func appendKey(b []byte, host string, u *url.URL) []byte {
	b = append(b, host...)
	p := u.EscapedPath()
	if p == "" || p[0] != '/' {
		b = append(b, '/')
	}
	b = append(b, p...)
	if u.RawQuery != "" || u.ForceQuery {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

// writeResponse relays an origin response that was not stored.
func (c *Cache) writeResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, status string) {
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	removeHop(h)
	h.Add("Cache-Status", c.cfg.Name+"; "+status+"; fwd-status="+strconv.Itoa(resp.StatusCode))
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, resp.Body)
	}
}

// serveEntry answers from a stored entry. It returns false, having written
// nothing, when the body file is missing or was replaced (the entry is
// dropped).
func (c *Cache) serveEntry(w http.ResponseWriter, r *http.Request, key string, e lookupResult, now time.Time, age, life time.Duration, status string) bool {
	var f *os.File
	if e.body != nil {
		// A body kept in memory is checked against its file at most once
		// a second: a body deleted or replaced by hand stops being served
		// within a second, and a hit costs no system call.
		ns := now.UnixNano()
		if last := e.m.checked.Load(); ns-last >= int64(time.Second) || ns < last {
			if !c.store.statBody(e.rel, e.m) {
				c.store.drop(key, e.m)
				return false
			}
			e.m.checked.Store(ns)
		}
	} else {
		var err error
		f, err = c.store.openBody(e.rel, e.m)
		if err != nil {
			c.store.drop(key, e.m)
			return false
		}
		defer f.Close()
		if e.hot && c.store.wantsMemory(e.m) {
			b := make([]byte, e.m.Size)
			if _, err := f.ReadAt(b, 0); err == nil {
				c.store.keepMemory(key, e.m, b)
				e.m.checked.Store(now.UnixNano())
				e.body = b
			}
		}
	}
	h := w.Header()
	secs := int64(age / time.Second)
	plain := e.m.Status == http.StatusOK && !rangeOrConditional(r.Header)
	if plain && status == "hit" {
		// The common hit: the whole header comes prepared per entry
		// (rebuilt when its Age or ttl changes, at most once a second).
		for k, vs := range c.hitHeader(e.m, secs, int64((life-age)/time.Second)) {
			h[k] = vs
		}
	} else {
		for k, vs := range e.m.Header {
			h[k] = vs
		}
		h.Set("Age", strconv.FormatInt(min(secs, maxDelta), 10))
		cs := c.cfg.Name + "; " + status
		if strings.HasPrefix(status, "hit") {
			cs += "; ttl=" + strconv.FormatInt(int64((life-age)/time.Second), 10)
		}
		h.Add("Cache-Status", cs)
	}
	switch {
	case plain:
		// Answered without http.ServeContent. A body from memory is
		// written at once (with the header when it fits the connection's
		// buffer). For a file the header is flushed first, so the whole
		// body goes out with sendfile(2): net/http would otherwise read
		// and write its first 512 bytes before switching to sendfile.
		if status != "hit" {
			h.Set("Content-Length", strconv.FormatInt(e.m.Size, 10))
			if _, ok := h["Content-Type"]; !ok {
				h["Content-Type"] = nil // no sniffing
			}
			h.Set("Accept-Ranges", "bytes")
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead && e.m.Size > 0 {
			if e.body != nil {
				_, _ = w.Write(e.body)
			} else {
				_ = http.NewResponseController(w).Flush()
				_, _ = io.CopyN(w, f, e.m.Size)
			}
		}
	case e.m.Status == http.StatusOK:
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = nil // no sniffing
		}
		http.ServeContent(w, r, "", e.m.lastMod, e.reader(f))
	default:
		if e.m.Status != http.StatusNoContent {
			h.Set("Content-Length", strconv.FormatInt(e.m.Size, 10))
		}
		w.WriteHeader(e.m.Status)
		if r.Method != http.MethodHead {
			_, _ = io.Copy(w, e.reader(f))
		}
	}
	if r.Method != http.MethodHead {
		c.st.bytesServed.Add(uint64(e.m.Size))
	}
	return true
}

// reader returns the body of an entry: its memory copy or the open file.
func (e *lookupResult) reader(f *os.File) io.ReadSeeker {
	if e.body != nil {
		return bytes.NewReader(e.body)
	}
	return f
}

// hitHead is the prepared header of a plain hit on one entry.
type hitHead struct {
	age, ttl int64
	header   http.Header // shared by every answer: never modified
}

// hitHeader returns the whole header of a plain fresh hit (status 200, no
// range, no precondition) on m with the given Age and ttl in seconds. The
// result is shared: callers copy its entries, never modify its values.
func (c *Cache) hitHeader(m *meta, age, ttl int64) http.Header {
	if hh := m.hit.Load(); hh != nil && hh.age == age && hh.ttl == ttl {
		return hh.header
	}
	h := make(http.Header, len(m.Header)+5)
	for k, vs := range m.Header {
		h[k] = vs[:len(vs):len(vs)] // an append elsewhere copies
	}
	h["Age"] = []string{strconv.FormatInt(min(age, maxDelta), 10)}
	h["Cache-Status"] = []string{c.cfg.Name + "; hit; ttl=" + strconv.FormatInt(ttl, 10)}
	h["Content-Length"] = []string{strconv.FormatInt(m.Size, 10)}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // no sniffing
	}
	h["Accept-Ranges"] = []string{"bytes"}
	m.hit.Store(&hitHead{age: age, ttl: ttl, header: h})
	return h
}

// rangeOrConditional reports whether a request has a field that
// http.ServeContent must evaluate: a range or a precondition.
func rangeOrConditional(h http.Header) bool {
	for _, k := range [...]string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// fill is one origin fetch for a key, shared by the requests that wait
// for it. Its fields are written before done is closed.
type fill struct {
	done     chan struct{}
	handoff  chan *http.Response // the unstored response, for the leader only
	handsOff bool                // whether handoff will offer one
	m        *meta               // the stored (or revalidated) entry, nil if none
	rel      string
	stored   bool
	status   int   // origin status, 0 when the fetch failed
	err      error // transport or body failure
}

// startFill joins the fill under way for key or starts one. It returns nil
// when the Cache is closing.
func (c *Cache) startFill(r *http.Request, o *origin, key string, old lookupResult, collapse bool, leaderGone <-chan struct{}) (*fill, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, false
	}
	if collapse {
		if f := c.fills[key]; f != nil {
			return f, false
		}
	}
	f := &fill{done: make(chan struct{}), handoff: make(chan *http.Response)}
	if collapse {
		c.fills[key] = f
	}
	out, cancel := c.fillRequest(r, o, old.m)
	startSeq := c.store.seq()
	c.st.fills.Add(1)
	c.fillWG.Add(1)
	c.wg.Go(func() {
		defer c.fillWG.Done()
		defer cancel()
		c.runFill(f, out, key, old, startSeq, leaderGone, func() {
			if collapse {
				c.mu.Lock()
				if c.fills[key] == f {
					delete(c.fills, key)
				}
				c.mu.Unlock()
			}
		})
	})
	return f, true
}

func (c *Cache) revalidateInBackground(r *http.Request, o *origin, key string, old lookupResult) {
	gone := make(chan struct{})
	close(gone)
	c.startFill(r, o, key, old, true, gone)
}

// fillRequest builds the origin request of a fill from the client's: same
// target and end-to-end fields, without the client's conditionals and
// Range (the cache wants the whole representation), with the stored
// validators when revalidating.
func (c *Cache) fillRequest(r *http.Request, o *origin, old *meta) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.FillTimeout)
	u := *o.url
	u.Path, u.RawPath = joinPath(o.url, r.URL)
	u.RawQuery = r.URL.RawQuery
	u.ForceQuery = r.URL.ForceQuery
	u.Fragment, u.RawFragment = "", ""
	out := (&http.Request{
		Method:     http.MethodGet,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     r.Header.Clone(),
		Host:       o.url.Host,
	}).WithContext(ctx)
	if c.cfg.PreserveHost {
		out.Host = r.Host
	}
	removeHop(out.Header)
	for _, k := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"} {
		out.Header.Del(k)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := out.Header.Get("X-Forwarded-For"); prior != "" {
			ip = prior + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Host", r.Host)
	if r.TLS != nil {
		out.Header.Set("X-Forwarded-Proto", "https")
	} else {
		out.Header.Set("X-Forwarded-Proto", "http")
	}
	if old != nil {
		etag, lm := old.validators()
		if etag != "" {
			out.Header.Set("If-None-Match", etag)
		}
		if lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	return out, cancel
}

func joinPath(base, req *url.URL) (path, rawpath string) {
	if base.Path == "" || base.Path == "/" {
		return req.Path, req.RawPath
	}
	bp := strings.TrimSuffix(base.EscapedPath(), "/")
	rp := req.EscapedPath()
	if !strings.HasPrefix(rp, "/") {
		rp = "/" + rp
	}
	joined := bp + rp
	p, err := url.PathUnescape(joined)
	if err != nil {
		return strings.TrimSuffix(base.Path, "/") + req.Path, ""
	}
	if url.PathEscape(p) == joined {
		return p, ""
	}
	return p, joined
}

// runFill performs the origin fetch of f and stores the answer when it
// may. It hands an unstored answer to the leader (or closes it if the
// leader left) and releases the waiters.
func (c *Cache) runFill(f *fill, out *http.Request, key string, old lookupResult, startSeq uint64, leaderGone <-chan struct{}, unlist func()) {
	var resp *http.Response
	defer func() {
		unlist() // before done: a request arriving later starts a new fill
		f.handsOff = resp != nil
		close(f.done)
		if resp == nil {
			return
		}
		select {
		case f.handoff <- resp:
		case <-leaderGone:
			resp.Body.Close()
		case <-c.ctx.Done():
			resp.Body.Close()
		}
	}()
	if old.m != nil {
		c.st.revalidations.Add(1)
	}
	reqTime := time.Now()
	r, err := c.transport.RoundTrip(out)
	if err != nil {
		c.st.fillErrors.Add(1)
		f.err = err
		return
	}
	respTime := time.Now()
	f.status = r.StatusCode
	if r.StatusCode == http.StatusNotModified && old.m != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		r.Body.Close()
		c.st.notModified.Add(1)
		m := merge304(old.m, r, reqTime, respTime)
		if c.store.update(key, old.m, m, startSeq) == nil {
			f.m, f.rel, f.stored = m, old.rel, true
		}
		return
	}
	m := newMeta(key, out, r, reqTime, respTime)
	if !c.storable(out, r, m) {
		resp = r
		return
	}
	rel, err := objectPathForKey(key)
	if err != nil {
		resp = r
		return
	}
	tmp, err := c.store.tempFile()
	if err != nil {
		c.log.Error("cache store unusable", "err", err)
		resp = r
		return
	}
	n, err := io.Copy(tmp, io.LimitReader(r.Body, c.cfg.MaxObjectSize+1))
	r.Body.Close()
	if err == nil && (n > c.cfg.MaxObjectSize || (r.ContentLength >= 0 && n != r.ContentLength)) {
		err = fmt.Errorf("proxycache: body of %d bytes (declared %d, limit %d)", n, r.ContentLength, c.cfg.MaxObjectSize)
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = tmp.Stat()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		c.st.fillErrors.Add(1)
		c.log.Debug("fill not stored", "key", key, "err", err)
		return // everyone fetches on their own
	}
	m.Size = n
	m.Dev, m.Ino = fileID(fi)
	m.MTime = fi.ModTime().UnixNano()
	if err := c.store.commit(key, rel, m, tmp.Name(), startSeq); err != nil {
		if !errors.Is(err, errPurged) {
			c.log.Warn("fill not stored", "key", key, "err", err)
		}
		return
	}
	c.st.stored.Add(1)
	c.st.bytesFilled.Add(uint64(n))
	f.m, f.rel, f.stored = m, rel, true
}

// objectPathForKey maps a cache key (host + request URI) to its body path.
func objectPathForKey(key string) (string, error) {
	host, uri, ok := strings.Cut(key, "/")
	if !ok {
		return "", errBadName
	}
	u, err := url.ParseRequestURI("/" + uri)
	if err != nil {
		return "", errBadName
	}
	return objectPath(host, u)
}

// newMeta builds the metadata of a response to be stored.
func newMeta(key string, req *http.Request, resp *http.Response, reqTime, respTime time.Time) *meta {
	h := resp.Header.Clone()
	removeHop(h)
	m := &meta{Version: metaVersion, Key: key, Status: resp.StatusCode, Header: h,
		ReqTime: reqTime.UnixNano(), RespTime: respTime.UnixNano()}
	m.AgeValue = parseAge(h.Values("Age"))
	h.Del("Age")
	h.Del("Cache-Status")
	for _, name := range varyNames(h) {
		if vs := req.Header.Values(name); len(vs) > 0 {
			if m.Vary == nil {
				m.Vary = http.Header{}
			}
			m.Vary[name] = vs
		}
	}
	m.prepare()
	return m
}

// merge304 applies a 304 to a stored entry (RFC 9111 §4.3.4). The 304
// answers the conditional request made with this entry's validators, so it
// updates this entry; the fields that describe the stored body (its
// validator, length, encoding, range and digest) are kept.
func merge304(old *meta, resp *http.Response, reqTime, respTime time.Time) *meta {
	m := old.clone()
	m.Header = old.Header.Clone()
	h := resp.Header.Clone()
	removeHop(h)
	for k, vs := range h {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Content-Md5", "Etag", "Age", "Cache-Status":
			continue
		}
		m.Header[k] = vs
	}
	m.AgeValue = parseAge(resp.Header.Values("Age"))
	m.ReqTime, m.RespTime = reqTime.UnixNano(), respTime.UnixNano()
	m.prepare()
	return m
}

// storable applies RFC 9111 §3 for a shared cache.
func (c *Cache) storable(req *http.Request, resp *http.Response, m *meta) bool {
	code := resp.StatusCode
	if code < 200 || code == http.StatusPartialContent || code == http.StatusNotModified || code > 599 {
		return false
	}
	cc, reqCC := m.cc, parseDirectives(req.Header)
	understood := http.StatusText(code) != ""
	if cc.mustUnderstand && !understood {
		return false
	}
	if cc.noStore && !(cc.mustUnderstand && understood) {
		return false
	}
	if cc.private || reqCC.noStore {
		return false
	}
	if req.Header.Get("Authorization") != "" && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate {
		return false
	}
	for _, v := range varyNames(m.Header) {
		if v == "*" {
			return false
		}
	}
	if resp.ContentLength > c.cfg.MaxObjectSize {
		return false
	}
	explicit := cc.sMaxAge >= 0 || cc.maxAge >= 0 || len(m.Header.Values("Expires")) > 0
	if !explicit && !cc.public && !heuristicStatus(code) {
		return false
	}
	etag, lm := m.validators()
	if m.lifetime(c.cfg.HeuristicFraction) == 0 && etag == "" && lm == "" &&
		cc.staleIfError < 0 && cc.staleWhileRevalidate < 0 {
		return false // stale on arrival and nothing to revalidate with
	}
	return true
}

// parseAge reads the Age field: absent is 0; anything but one non-negative
// integer makes the response stale, the safe reading of a corrupt Age.
func parseAge(vs []string) int64 {
	if len(vs) == 0 {
		return 0
	}
	a := strings.TrimSpace(vs[0])
	if len(vs) > 1 || a == "" {
		return maxDelta
	}
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			return maxDelta
		}
	}
	n, err := strconv.ParseInt(a, 10, 64)
	if err != nil || n > maxDelta {
		return maxDelta
	}
	return n
}
