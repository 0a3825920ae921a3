package proxycache

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

func (c *Cache) originForHost(h string) *origin { return c.originFor(&http.Request{Host: h}) }

// servePurgeMethod handles "PURGE /path" (one URL) and "PURGE /dir/*" (a
// prefix) on the cache's own listener, behind Config.Authorize.
func (c *Cache) servePurgeMethod(w http.ResponseWriter, r *http.Request, o *origin) {
	if !c.cfg.Authorize(r) {
		http.Error(w, "proxycache: purge not authorized", http.StatusForbidden)
		return
	}
	t := purgeTarget{kind: purgeURL, host: o.host, path: requestURI(r.URL)}
	if p := r.URL.EscapedPath(); strings.HasSuffix(p, "*") && r.URL.RawQuery == "" {
		t = purgeTarget{kind: purgePrefix, host: o.host, path: strings.TrimSuffix(p, "*")}
	}
	if err := c.purge(r.Context(), t); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "purged", "kind": t.kind.String(), "path": t.path})
}

// PurgeRequest is the body of a POST to the admin handler's /purge: exactly
// one of URL, Prefix or All.
type PurgeRequest struct {
	URL    string `json:"url,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	All    bool   `json:"all,omitempty"`
}

// AdminHandler returns the admin API, behind Config.Authorize:
//
//	POST /purge   {"url": "http://host/path"} | {"prefix": "http://host/dir/"} | {"all": true}
//	GET  /stats   the Stats snapshot as JSON
//
// Mount it on an internal listener or under a path with http.StripPrefix.
func (c *Cache) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /purge", func(w http.ResponseWriter, r *http.Request) {
		var req PurgeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "proxycache: bad purge request: " + err.Error()})
			return
		}
		var err error
		switch {
		case req.URL != "" && req.Prefix == "" && !req.All:
			err = c.PurgeURL(r.Context(), req.URL)
		case req.Prefix != "" && req.URL == "" && !req.All:
			err = c.PurgePrefix(r.Context(), req.Prefix)
		case req.All && req.URL == "" && req.Prefix == "":
			err = c.PurgeAll(r.Context())
		default:
			err = ErrBadPurge
		}
		switch {
		case errors.Is(err, ErrBadPurge):
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, map[string]string{"status": "purged"})
		}
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Stats())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.cfg.Authorize(r) {
			http.Error(w, "proxycache: not authorized", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
