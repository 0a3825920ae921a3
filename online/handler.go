package online

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// NewHandler returns an HTTP handler answering from ix in JSON:
//
//	GET /count                  {"count": 1234}
//	GET /url?u=URL&limit=30     {"url": URL, "users": [{"user": ..., "time": RFC 3339}, ...]}, newest first
//	GET /user?u=USER            {"user": ..., "url": ..., "time": ...}, or 404 when not online
//
// limit defaults to 30 and must be from 1 to MaxOnURLLimit. Other methods
// get 405, unknown paths 404, bad parameters 400. Each request starts with
// ix.Expire, so answers are current.
func NewHandler(ix *Index) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		ix.Expire()
		writeJSON(w, http.StatusOK, map[string]int{"count": ix.Count()})
	})
	mux.HandleFunc("GET /url", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		url := q.Get("u")
		if url == "" {
			httpError(w, http.StatusBadRequest, "missing parameter u")
			return
		}
		limit := DefaultOnURLLimit
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > MaxOnURLLimit {
				httpError(w, http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(MaxOnURLLimit))
				return
			}
			limit = n
		}
		ix.Expire()
		vs := ix.OnURL(url, limit)
		users := make([]jsonVisit, len(vs))
		for i, v := range vs {
			users[i] = jsonVisit{User: v.User, Time: v.Time.UTC()}
		}
		writeJSON(w, http.StatusOK, struct {
			URL   string      `json:"url"`
			Users []jsonVisit `json:"users"`
		}{url, users})
	})
	mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("u")
		if user == "" {
			httpError(w, http.StatusBadRequest, "missing parameter u")
			return
		}
		ix.Expire()
		v, ok := ix.Lookup(user)
		if !ok {
			httpError(w, http.StatusNotFound, "user not online")
			return
		}
		writeJSON(w, http.StatusOK, jsonVisit{User: v.User, URL: v.URL, Time: v.Time.UTC()})
	})
	return mux
}

type jsonVisit struct {
	User string    `json:"user"`
	URL  string    `json:"url,omitempty"`
	Time time.Time `json:"time"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
