package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/internal/leakcheck"
)

func TestSmoke(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-pages", dir}, pw)
		pw.Close()
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	sc := bufio.NewScanner(pr)
	require.True(t, sc.Scan())
	var addr string
	_, err := fmt.Sscanf(sc.Text(), "newsd: site on %s", &addr)
	require.NoError(t, err)
	go io.Copy(io.Discard, pr)

	get := func(p string) (int, string) {
		resp, err := http.Get("http://" + addr + p)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, first := get("/items/1.html")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, first, "<h1>Scaling the image cluster</h1>")
	assert.FileExists(t, filepath.Join(dir, "items", "1.html"))
	_, again := get("/items/1.html")
	assert.Equal(t, first, again, "served from the written file")

	resp, err := http.Post("http://"+addr+"/admin/articles/1", "text/plain", strings.NewReader("Purged across the cluster"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, after := get("/items/1.html")
	assert.Contains(t, after, "<h1>Purged across the cluster</h1>")
	code, _ = get("/items/99.html")
	assert.Equal(t, http.StatusServiceUnavailable, code)
}
