package online_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/online"
)

func TestHandler(t *testing.T) {
	now := t0
	ix := online.NewIndex(online.Config{Window: time.Minute, Now: func() time.Time { return now }})
	ix.Hit("alice", "/a b", t0)
	ix.Hit("bob", "/a b", t0.Add(time.Second))
	ix.Hit("carol", "/c", t0.Add(2*time.Second))
	srv := httptest.NewServer(online.NewHandler(ix))
	defer srv.Close()
	get := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/count", 200, `{"count":3}`},
		{"GET", "/url?u=%2Fa+b&limit=1", 200, `{"url":"/a b","users":[{"user":"bob","time":"2027-01-15T08:00:01Z"}]}`},
		{"GET", "/url?u=/a%20b", 200, `{"url":"/a b","users":[{"user":"bob","time":"2027-01-15T08:00:01Z"},{"user":"alice","time":"2027-01-15T08:00:00Z"}]}`},
		{"GET", "/url?u=/none", 200, `{"url":"/none","users":[]}`},
		{"GET", "/url?u=/c&limit=0", 400, `{"error":"limit must be an integer from 1 to 10000"}`},
		{"GET", "/url", 400, `{"error":"missing parameter u"}`},
		{"GET", "/user?u=carol", 200, `{"user":"carol","url":"/c","time":"2027-01-15T08:00:02Z"}`},
		{"GET", "/user?u=dave", 404, `{"error":"user not online"}`},
		{"POST", "/count", 405, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, c := range cases {
		code, body := get(c.method, c.path)
		assert.Equal(t, c.code, code, "%s %s", c.method, c.path)
		if c.body != "" {
			assert.JSONEq(t, c.body, body, "%s %s", c.method, c.path)
		}
	}
	now = t0.Add(time.Minute + time.Second) // alice and bob expire
	code, body := get("GET", "/count")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"count":1}`, body)
}
