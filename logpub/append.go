package logpub

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/peerscale/peerscale/internal/strftime"
)

// AppendLine appends the line for e to dst, without a trailing newline, and
// returns the extended buffer. It does not allocate when dst has room.
func (f *Format) AppendLine(dst []byte, e *Entry) []byte {
	r := e.Request
	for i := range f.ops {
		o := &f.ops[i]
		if o.kind == opLiteral {
			if len(o.conds) == 0 || o.show(e.Status) {
				dst = append(dst, o.arg...)
			} else {
				dst = append(dst, '-')
			}
			continue
		}
		if !o.show(e.Status) {
			dst = append(dst, '-')
			continue
		}
		dst = f.appendOp(dst, o, e, r)
	}
	return dst
}

func (f *Format) appendOp(dst []byte, o *op, e *Entry, r *http.Request) []byte {
	switch o.kind {
	case opRemoteIP, opRemoteHost:
		if r == nil {
			return append(dst, '-')
		}
		host, _ := splitHostPort(r.RemoteAddr)
		return appendOrDash(dst, host)
	case opLocalIP:
		if !e.LocalAddr.IsValid() {
			return append(dst, '-')
		}
		return e.LocalAddr.Addr().AppendTo(dst)
	case opBodyCLF:
		if e.BodyBytes <= 0 {
			return append(dst, '-')
		}
		return strconv.AppendInt(dst, e.BodyBytes, 10)
	case opBody:
		return strconv.AppendInt(dst, max(e.BodyBytes, 0), 10)
	case opCookie:
		if r == nil {
			return append(dst, '-')
		}
		return appendCookie(dst, r.Header["Cookie"], o.arg)
	case opMicros:
		return strconv.AppendInt(dst, e.Duration().Microseconds(), 10)
	case opEnv:
		return appendPair(dst, e.Env, o.arg)
	case opNote:
		return appendPair(dst, e.Notes, o.arg)
	case opFilename:
		return appendEscapedOrDash(dst, e.Filename)
	case opHandler:
		return appendEscapedOrDash(dst, e.Handler)
	case opLogID:
		return appendEscapedOrDash(dst, e.LogID)
	case opProto:
		if r == nil {
			return append(dst, '-')
		}
		return appendEscaped(dst, r.Proto)
	case opHeaderIn:
		if r == nil {
			return append(dst, '-')
		}
		if o.key == "Host" {
			if r.Host == "" {
				return append(dst, '-')
			}
			return appendEscaped(dst, r.Host)
		}
		return appendJoined(dst, lookupHeader(r.Header, o.key, o.arg))
	case opHeaderOut:
		return appendHeaderOut(dst, e.ResponseHeader, o)
	case opTrailerIn:
		if r == nil {
			return append(dst, '-')
		}
		return appendJoined(dst, lookupHeader(r.Trailer, o.key, o.arg))
	case opTrailerOut:
		vs := lookupHeader(e.ResponseHeader, http.TrailerPrefix+o.key, "")
		return appendJoined(dst, vs)
	case opKeepAlives:
		// Apache counts a request as a keep-alive once its response keeps
		// the connection open and prints that count minus one, so the
		// request that closes a connection repeats its predecessor's number.
		k := e.KeepAlives
		if k > 0 && connStatus(e) != '+' {
			k--
		}
		return strconv.AppendInt(dst, int64(k), 10)
	case opLogname:
		return append(dst, '-')
	case opMethod:
		if r == nil {
			return append(dst, '-')
		}
		return appendEscaped(dst, r.Method)
	case opPortCanonical:
		if e.ServerPort > 0 {
			return strconv.AppendInt(dst, int64(e.ServerPort), 10)
		}
		return appendLocalPort(dst, e)
	case opPortLocal:
		return appendLocalPort(dst, e)
	case opPortRemote:
		if r == nil {
			return append(dst, '-')
		}
		_, port := splitHostPort(r.RemoteAddr)
		return appendOrDash(dst, port)
	case opPid:
		return strconv.AppendInt(dst, int64(os.Getpid()), 10)
	case opTid:
		return strconv.AppendUint(dst, threadID(), 10)
	case opHexTid:
		return strconv.AppendUint(dst, threadID(), 16)
	case opQuery:
		if r == nil || r.URL == nil {
			return dst
		}
		if r.URL.RawQuery == "" && !r.URL.ForceQuery {
			return dst
		}
		dst = append(dst, '?')
		return appendEscaped(dst, r.URL.RawQuery)
	case opRequestLine:
		if r == nil {
			return append(dst, '-')
		}
		dst = appendEscaped(dst, r.Method)
		dst = append(dst, ' ')
		dst = appendRequestURI(dst, r.RequestURI)
		if r.Proto != "" {
			dst = append(dst, ' ')
			dst = appendEscaped(dst, r.Proto)
		}
		return dst
	case opStatus:
		if e.Status <= 0 {
			return append(dst, '-')
		}
		return strconv.AppendInt(dst, int64(e.Status), 10)
	case opTimeCLF:
		return strftime.AppendCLF(dst, f.when(o, e))
	case opTimeSec:
		return strconv.AppendInt(dst, f.when(o, e).Unix(), 10)
	case opTimeMsec:
		return strconv.AppendInt(dst, f.when(o, e).UnixMilli(), 10)
	case opTimeUsec:
		return strconv.AppendInt(dst, f.when(o, e).UnixMicro(), 10)
	case opTimeMsecFrac:
		return appendPadded(dst, int64(f.when(o, e).Nanosecond()/1e6), 3)
	case opTimeUsecFrac:
		return appendPadded(dst, int64(f.when(o, e).Nanosecond()/1e3), 6)
	case opTimeStrftime:
		return o.tfmt.Append(dst, f.when(o, e))
	case opDurSec:
		return strconv.AppendInt(dst, int64(e.Duration()/time.Second), 10)
	case opDurMsec:
		return strconv.AppendInt(dst, e.Duration().Milliseconds(), 10)
	case opDurUsec:
		return strconv.AppendInt(dst, e.Duration().Microseconds(), 10)
	case opUser:
		if !e.HasUser {
			return append(dst, '-')
		}
		if e.User == "" {
			return append(dst, '"', '"')
		}
		return appendEscaped(dst, e.User)
	case opPath:
		if r == nil || r.URL == nil {
			return append(dst, '-')
		}
		return appendNormalizedPath(dst, r.URL.Path)
	case opServerName:
		return appendEscapedOrDash(dst, e.ServerName)
	case opHostName:
		if r != nil && r.Host != "" {
			return appendHostName(dst, r.Host)
		}
		return appendEscapedOrDash(dst, e.ServerName)
	case opConnStatus:
		return append(dst, connStatus(e))
	case opBytesIn:
		return strconv.AppendInt(dst, e.bytesIn(), 10)
	case opBytesOut:
		return strconv.AppendInt(dst, e.bytesOut(), 10)
	case opBytesBoth:
		return strconv.AppendInt(dst, e.bytesIn()+e.bytesOut(), 10)
	case opFirstByte:
		if e.FirstByte <= 0 {
			return append(dst, '-')
		}
		return strconv.AppendInt(dst, e.FirstByte.Microseconds(), 10)
	}
	return append(dst, '-')
}

// appendRequestURI appends the request target with a password in an
// absolute URI replaced by XXXXXXXX, as Apache's %r prints it.
func appendRequestURI(dst []byte, uri string) []byte {
	if i := strings.Index(uri, "://"); i > 0 && !strings.HasPrefix(uri, "/") {
		auth := uri[i+3:]
		if j := strings.IndexAny(auth, "/?#"); j >= 0 {
			auth = auth[:j]
		}
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			if colon := strings.IndexByte(auth[:at], ':'); colon >= 0 {
				pw := i + 3 + colon + 1
				dst = appendEscaped(dst, uri[:pw])
				dst = append(dst, "XXXXXXXX"...)
				return appendEscaped(dst, uri[i+3+at:])
			}
		}
	}
	return appendEscaped(dst, uri)
}

func (f *Format) when(o *op, e *Entry) time.Time {
	if o.end && !e.End.IsZero() {
		return e.End.In(e.Start.Location())
	}
	return e.Start
}

func appendLocalPort(dst []byte, e *Entry) []byte {
	if !e.LocalAddr.IsValid() {
		return append(dst, '-')
	}
	return strconv.AppendUint(dst, uint64(e.LocalAddr.Port()), 10)
}

// connStatus is %X: 'X' when the client went away, '-' when the connection
// closes after this response, '+' when it may be kept alive.
func connStatus(e *Entry) byte {
	if e.Aborted {
		return 'X'
	}
	r := e.Request
	if r == nil || r.Close { // net/http sets Close for HTTP/1.0 without keep-alive
		return '-'
	}
	if vs := e.ResponseHeader["Connection"]; len(vs) > 0 {
		for _, v := range vs {
			if strings.EqualFold(strings.TrimSpace(v), "close") {
				return '-'
			}
		}
	}
	return '+'
}

// splitHostPort splits "host:port" or "[v6]:port" without allocating.
func splitHostPort(s string) (host, port string) {
	if s == "" {
		return "", ""
	}
	if s[0] == '[' {
		if end := strings.IndexByte(s, ']'); end > 0 {
			host = s[1:end]
			if end+1 < len(s) && s[end+1] == ':' {
				port = s[end+2:]
			}
			return host, port
		}
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.IndexByte(s[:i], ':') >= 0 {
		return s, "" // no port, or a bare IPv6 address
	}
	return s[:i], s[i+1:]
}

// appendHostName is Apache's %V: the Host header's name, lower-cased,
// without its port or a trailing dot.
func appendHostName(dst []byte, host string) []byte {
	if len(host) > 0 && host[0] == '[' {
		if end := strings.IndexByte(host, ']'); end > 0 {
			host = host[:end+1]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = appendEscapedByte(dst, c)
	}
	return dst
}

func lookupHeader(h http.Header, key, raw string) []string {
	if h == nil {
		return nil
	}
	if vs, ok := h[key]; ok {
		return vs
	}
	if raw == "" {
		return nil
	}
	for k, vs := range h {
		if strings.EqualFold(k, raw) {
			return vs
		}
	}
	return nil
}

// appendJoined appends the values joined with ", " as Apache merges a
// repeated header, or "-" when there is none.
func appendJoined(dst []byte, vs []string) []byte {
	if len(vs) == 0 {
		return append(dst, '-')
	}
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		dst = appendEscaped(dst, v)
	}
	return dst
}

// appendHeaderOut is %{VAR}o: Content-Type without parameters, every
// Set-Cookie joined with ", ", otherwise the first value.
func appendHeaderOut(dst []byte, h http.Header, o *op) []byte {
	vs := lookupHeader(h, o.key, o.arg)
	if len(vs) == 0 {
		return append(dst, '-')
	}
	switch o.key {
	case "Set-Cookie":
		return appendJoined(dst, vs)
	case "Content-Type":
		v := vs[0]
		if i := strings.IndexByte(v, ';'); i >= 0 {
			v = strings.TrimRight(v[:i], " \t\n\r\v\f")
		}
		return appendEscaped(dst, v)
	}
	return appendEscaped(dst, vs[0])
}

func appendPair(dst []byte, ps []Pair, key string) []byte {
	v, ok := lookupPair(ps, key)
	if !ok {
		return append(dst, '-')
	}
	return appendEscaped(dst, v)
}

func appendOrDash(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return append(dst, s...)
}

func appendEscapedOrDash(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return appendEscaped(dst, s)
}

// appendCookie is %{NAME}C, with Apache's parsing of the merged Cookie
// header: ';'-separated pairs, names compared without case, blanks around
// names and values trimmed, the value after the first '='.
func appendCookie(dst []byte, hdr []string, name string) []byte {
	var cookies string
	switch len(hdr) {
	case 0:
		return append(dst, '-')
	case 1:
		cookies = hdr[0]
	default:
		cookies = strings.Join(hdr, ", ")
	}
	if v, ok := findCookie(cookies, name); ok {
		return appendEscaped(dst, v)
	}
	return append(dst, '-')
}

func findCookie(cookies, name string) (string, bool) {
	for len(cookies) > 0 {
		for len(cookies) > 0 && cookies[0] == ';' {
			cookies = cookies[1:]
		}
		if cookies == "" {
			break
		}
		tok := cookies
		trim := true
		if i := strings.IndexByte(cookies, ';'); i >= 0 {
			tok, cookies = cookies[:i], cookies[i+1:]
			// Apache trims the value's trailing blanks except when this
			// ';' ends the header.
			trim = cookies != ""
		} else {
			cookies = ""
		}
		nv := strings.TrimLeft(tok, "=")
		eq := strings.IndexByte(nv, '=')
		if eq < 0 || eq == len(nv)-1 {
			continue
		}
		n, v := nv[:eq], nv[eq+1:]
		n = strings.TrimRight(strings.TrimLeft(n, " \t"), " \t\n\r\v\f")
		if !strings.EqualFold(n, name) {
			continue
		}
		v = strings.TrimLeft(v, " \t")
		if trim {
			v = strings.TrimRight(v, " \t\n\r\v\f")
		}
		return v, true
	}
	return "", false
}

// appendNormalizedPath appends the decoded path with Apache's
// normalisation: "." and ".." segments resolved and runs of '/' merged.
func appendNormalizedPath(dst []byte, p string) []byte {
	if p == "" {
		return dst
	}
	if !needsNormalize(p) {
		return appendEscaped(dst, p)
	}
	start := len(dst)
	abs := p[0] == '/'
	if abs {
		dst = append(dst, '/')
	}
	root := len(dst)
	for len(p) > 0 {
		for len(p) > 0 && p[0] == '/' {
			p = p[1:]
		}
		seg := p
		trailing := false
		if i := strings.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i:]
			trailing = true
		} else {
			p = ""
		}
		switch seg {
		case "":
		case ".":
		case "..":
			// Drop the last segment written.
			j := len(dst) - 1
			if j >= root && dst[j] == '/' {
				j--
			}
			for j >= root && dst[j] != '/' {
				j--
			}
			dst = dst[:j+1]
			if len(dst) < root {
				dst = dst[:root]
			}
		default:
			if n := len(dst); n > root && dst[n-1] != '/' {
				dst = append(dst, '/')
			}
			dst = appendEscaped(dst, seg)
			if trailing && len(p) <= 1 {
				dst = append(dst, '/')
			}
			continue
		}
		if trailing || seg == "." || seg == ".." {
			if n := len(dst); n > start && dst[n-1] != '/' {
				dst = append(dst, '/')
			}
		}
	}
	if len(dst) == start {
		dst = append(dst, '/')
	}
	return dst
}

func needsNormalize(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i+1 < len(p) {
			switch p[i+1] {
			case '/':
				return true
			case '.':
				rest := p[i+2:]
				if rest == "" || rest[0] == '/' || (rest[0] == '.' && (len(rest) == 1 || rest[1] == '/')) {
					return true
				}
			}
		}
	}
	return false
}

// appendEscaped appends s with Apache's ap_escape_logitem escaping: '"'
// and '\' and the bytes outside 0x20..0x7e as \" \\ \b \n \r \t \v or
// \xhh (lower-case hex).
func appendEscaped(dst []byte, s string) []byte {
	i := 0
	for j := 0; j < len(s); j++ {
		c := s[j]
		if !mustEscape[c] {
			continue
		}
		dst = append(dst, s[i:j]...)
		dst = appendEscapedByte(dst, c)
		i = j + 1
	}
	return append(dst, s[i:]...)
}

const hexDigits = "0123456789abcdef"

// mustEscape marks the bytes ap_escape_logitem escapes.
var mustEscape = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\'
	}
	return t
}()

func appendEscapedByte(dst []byte, c byte) []byte {
	if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
		return append(dst, c)
	}
	switch c {
	case '\b':
		return append(dst, '\\', 'b')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\v':
		return append(dst, '\\', 'v')
	case '\\', '"':
		return append(dst, '\\', c)
	}
	return append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], v, 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}
