package proxycache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"path"
	"strings"
)

// Reserved names. The escaping below writes '%' only as "%XX" with two
// upper-case hex digits, so no name derived from a URL can ever equal or end
// with one of these.
const (
	tmpDir      = "%tmp"   // in the root: files being written
	trashDir    = "%trash" // in the root: purged trees awaiting deletion
	stampName   = "%stamp" // in the root: since when purges may have been missed
	indexName   = "%_"     // an empty path segment ("/" or "/dir/")
	metaSuffix  = "%m"     // sidecar beside a body file
	hashedMark  = "%h"     // a name too long to keep, shortened with a hash
	maxSegment  = 200      // bytes of an escaped name kept before hashing
	maxRelPath  = 3000     // bytes of a relative path kept before hashing
	maxKeyLen   = 16 << 10 // longest cache key (host + request URI)
	upperHexSet = "0123456789ABCDEF"
)

var errBadName = errors.New("proxycache: name cannot be stored")

// safeByte reports the bytes kept as they are in file names.
func safeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == ',' || c == '=' || c == ':' || c == '@'
}

// escapeName maps any byte string to a file name that is non-empty, has no
// '/', does not start with '.', and contains '%' only as the start of an
// upper-case hex escape. Distinct inputs give distinct names (before
// shortening of long names, which adds a hash of the whole input).
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeByte(c) && !(i == 0 && c == '.') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHexSet[c>>4])
		b.WriteByte(upperHexSet[c&15])
	}
	if b.Len() == 0 {
		return indexName
	}
	return shorten(b.String(), s)
}

// shorten cuts an escaped name longer than maxSegment at an escape boundary
// and appends a hash of the original.
func shorten(esc, orig string) string {
	if len(esc) <= maxSegment {
		return esc
	}
	cut := maxSegment - 40
	for i := cut - 2; i < cut && i >= 0; i++ {
		if esc[i] == '%' {
			cut = i
			break
		}
	}
	sum := sha256.Sum256([]byte(orig))
	return esc[:cut] + hashedMark + hex.EncodeToString(sum[:16])
}

// objectPath maps a host and a request URI to the body file's path relative
// to the store root: <host>/<segment>/.../<last segment>[%3F<query>]. The
// result is a clean relative path that stays inside <host>, never names a
// reserved file, and is the same on every run.
func objectPath(host string, u *url.URL) (string, error) {
	if host == "" {
		return "", errBadName
	}
	segs := []string{escapeName(host)}
	p := u.EscapedPath()
	p = strings.TrimPrefix(p, "/")
	parts := strings.Split(p, "/")
	for i, seg := range parts {
		if dec, err := url.PathUnescape(seg); err == nil {
			seg = dec
		}
		if i == len(parts)-1 && (u.RawQuery != "" || u.ForceQuery) {
			seg += "?" + u.RawQuery
		}
		segs = append(segs, escapeName(seg))
	}
	rel := path.Join(segs...)
	if len(rel) > maxRelPath {
		sum := sha256.Sum256([]byte(rel))
		rel = path.Join(segs[0], hashedMark+hex.EncodeToString(sum[:]))
	}
	return rel, nil
}

// dirPath maps a host and a path prefix ending in '/' to the directory that
// holds every object under it, relative to the root.
func dirPath(host, escapedPrefix string) (string, bool) {
	if !strings.HasSuffix(escapedPrefix, "/") {
		return "", false
	}
	u, err := url.Parse(escapedPrefix + "x")
	if err != nil || u.RawQuery != "" || u.ForceQuery || u.Host != "" || u.Scheme != "" {
		return "", false
	}
	rel, err := objectPath(host, u)
	if err != nil || strings.Contains(rel, hashedMark) {
		return "", false
	}
	return path.Dir(rel), true
}
