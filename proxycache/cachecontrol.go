package proxycache

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// directives is a parsed Cache-Control field (request or response).
// Durations are -1 when the directive is absent.
type directives struct {
	noStore, noCache, private, public  bool
	mustRevalidate, proxyRevalidate    bool
	mustUnderstand, onlyIfCached       bool
	maxAge, sMaxAge, minFresh          time.Duration
	maxStale                           time.Duration // -1 absent; maxStaleAny when given without a value
	staleWhileRevalidate, staleIfError time.Duration
}

const maxStaleAny = time.Duration(1<<63 - 1)

// maxDelta caps delta-seconds: RFC 9111 §1.2.2 says to treat larger values
// as 2^31.
const maxDelta = 1 << 31

func parseDirectives(h http.Header) directives {
	d := directives{maxAge: -1, sMaxAge: -1, minFresh: -1, maxStale: -1, staleWhileRevalidate: -1, staleIfError: -1}
	for _, line := range h.Values("Cache-Control") {
		for part := range strings.SplitSeq(line, ",") {
			name, val, hasVal := strings.Cut(strings.TrimSpace(part), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch name {
			case "no-store":
				d.noStore = true
			case "no-cache":
				d.noCache = true
			case "private":
				d.private = true
			case "public":
				d.public = true
			case "must-revalidate":
				d.mustRevalidate = true
			case "proxy-revalidate":
				d.proxyRevalidate = true
			case "must-understand":
				d.mustUnderstand = true
			case "only-if-cached":
				d.onlyIfCached = true
			case "max-age":
				d.maxAge = firstDelta(d.maxAge, val, hasVal)
			case "s-maxage":
				d.sMaxAge = firstDelta(d.sMaxAge, val, hasVal)
			case "min-fresh":
				d.minFresh = firstDelta(d.minFresh, val, hasVal)
			case "stale-while-revalidate":
				d.staleWhileRevalidate = firstDelta(d.staleWhileRevalidate, val, hasVal)
			case "stale-if-error":
				d.staleIfError = firstDelta(d.staleIfError, val, hasVal)
			case "max-stale":
				if !hasVal {
					d.maxStale = maxStaleAny
				} else {
					d.maxStale = firstDelta(d.maxStale, val, hasVal)
				}
			}
		}
	}
	return d
}

// firstDelta keeps the first valid occurrence of a delta-seconds directive.
// An invalid value yields 0 so that the response is treated as stale, the
// conservative reading of RFC 9111 §4.2.1.
func firstDelta(cur time.Duration, val string, hasVal bool) time.Duration {
	if cur >= 0 {
		return cur
	}
	if !hasVal || val == "" {
		return 0
	}
	for i := 0; i < len(val); i++ {
		if val[i] < '0' || val[i] > '9' {
			return 0
		}
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || n > maxDelta {
		n = maxDelta
	}
	return time.Duration(n) * time.Second
}

// pragmaNoCache reports the HTTP/1.0 "Pragma: no-cache" request form, honoured
// only when the request has no Cache-Control field.
func pragmaNoCache(h http.Header) bool {
	if len(h.Values("Cache-Control")) > 0 {
		return false
	}
	for _, v := range h.Values("Pragma") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "no-cache") {
				return true
			}
		}
	}
	return false
}
