package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
)

// startRun runs the command and returns the addresses it prints.
func startRun(t *testing.T, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, pw)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	addrs := map[string]string{}
	sc := bufio.NewScanner(pr)
	want := 1
	for _, a := range args {
		if a == "-admin" {
			want = 2
		}
	}
	for len(addrs) < want && sc.Scan() {
		var what, addr string
		if _, err := fmt.Sscanf(sc.Text(), "imageproxy: %s on %s", &what, &addr); err == nil {
			addrs[what] = addr
		}
	}
	go io.Copy(io.Discard, pr)
	return addrs
}

func TestSmoke(t *testing.T) {
	leakcheck.Check(t)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "image/gif")
		fmt.Fprint(w, "GIF89a")
	}))
	defer origin.Close()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	addrs := startRun(t, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-cache", filepath.Join(dir, "cache"),
		"-origin", "images.example.com="+origin.URL, "-access-log", logFile)

	get := func() *http.Response {
		req, _ := http.NewRequest("GET", "http://"+addrs["proxy"]+"/logo.gif", nil)
		req.Host = "images.example.com"
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "GIF89a", string(b))
		return resp
	}
	get()
	assert.Contains(t, get().Header.Get("Cache-Status"), "hit")
	assert.FileExists(t, filepath.Join(dir, "cache", "images.example.com", "logo.gif"))

	resp, err := http.Post("http://"+addrs["admin"]+"/purge", "application/json", strings.NewReader(`{"url":"http://images.example.com/logo.gif"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NoFileExists(t, filepath.Join(dir, "cache", "images.example.com", "logo.gif"))

	req, _ := http.NewRequest("GET", "http://"+addrs["proxy"]+"/x", nil)
	req.Host = "elsewhere.example.com"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "not an open proxy")

	log, err := os.ReadFile(logFile)
	require.NoError(t, err)
	assert.Contains(t, string(log), `"GET /logo.gif HTTP/1.1" 200 6`)
}

func TestVIPNeedsBus(t *testing.T) {
	err := run(t.Context(), []string{"-cache", t.TempDir(), "-origin", "a=http://127.0.0.1:1", "-vip", "10.0.0.10/32"}, io.Discard)
	assert.ErrorContains(t, err, "-vip needs -bus")
}
