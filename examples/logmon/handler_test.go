package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerscale/peerscale/logsub"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// feed aggregates a fixed traffic mix.
func feed(a *logsub.Aggregator, n int) {
	for i := range n {
		r := &logsub.Record{Server: "web1", Vhost: "www.example.com", URL: "/index.html", Status: 200, Bytes: 5120, Referer: "https://search.example/"}
		switch {
		case i%10 == 0:
			r.Server, r.URL, r.Status, r.Bytes = "web2", "/missing", 404, 230
		case i%7 == 0:
			r.Server, r.Vhost, r.URL, r.Status, r.Referer = "web3", "shop.example.com", "/cart", 302, ""
		case i%13 == 0:
			r.Server, r.URL, r.Status = "web2", "/api", 503
		}
		a.Observe(r)
	}
}

func TestViewGolden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := logsub.NewAggregator(logsub.AggregatorConfig{Window: 10 * time.Second, TopN: 3})
		feed(a, 30)
		time.Sleep(time.Second)
		feed(a, 20)
		got, err := json.MarshalIndent(toView(a.Snapshot()), "", "  ")
		require.NoError(t, err)
		got = append(got, '\n')
		if *update {
			require.NoError(t, os.WriteFile("testdata/view.golden.json", got, 0o644))
		}
		want, err := os.ReadFile("testdata/view.golden.json")
		require.NoError(t, err)
		assert.Equal(t, string(want), string(got))
	})
}

func TestHandler(t *testing.T) {
	a := logsub.NewAggregator(logsub.AggregatorConfig{})
	feed(a, 100)
	stop, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(newHandler(stop, a, 50*time.Millisecond))
	defer srv.Close()
	defer cancel()

	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	assert.Contains(t, get("/"), `new EventSource("events")`)
	var v view
	require.NoError(t, json.Unmarshal([]byte(get("/snapshot.json")), &v))
	assert.Equal(t, uint64(100), v.All.TotalHits)
	metrics := get("/metrics")
	assert.Contains(t, metrics, `logmon_hits_total{class="2xx",server="web1"}`)
	assert.Contains(t, metrics, `logmon_vhost_hits_total{class="3xx",vhost="shop.example.com"} 13`)

	// The event stream sends a snapshot at once, then one per interval,
	// and ends when the dashboard stops.
	resp, err := http.Get(srv.URL + "/events")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	events := 0
	for sc.Scan() && events < 3 {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			require.NoError(t, json.Unmarshal([]byte(data), &v))
			events++
		}
	}
	assert.Equal(t, 3, events)
	cancel()
	for sc.Scan() {
	}
	assert.NoError(t, sc.Err(), "the stream ends cleanly when the dashboard stops")
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (PEERSCALE_REQUIRE_TOOLS=1) but not installed: %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install %s); skipping", name, name)
	}
	return p
}

// TestDashboardInChromium loads the page in headless Chromium while traffic
// flows, checks that Server-Sent Events filled it in, and saves a
// screenshot (kept with go test -artifacts).
func TestDashboardInChromium(t *testing.T) {
	chromium := requireTool(t, "chromium")
	a := logsub.NewAggregator(logsub.AggregatorConfig{Window: 30 * time.Second})
	stop, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(newHandler(stop, a, 200*time.Millisecond))
	defer srv.Close()
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			feed(a, 5+i%7)
			select {
			case <-stop.Done():
				return
			case <-t.C:
			}
		}
	})

	page := startChromium(t, chromium)
	page.navigate(srv.URL + "/")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n string
		page.eval(`(document.body && document.body.dataset.updates) || "0"`, &n)
		if k, _ := strconv.Atoi(n); k >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page received %q events in 30 s", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var dom string
	page.eval(`document.documentElement.outerHTML`, &dom)
	assert.Contains(t, dom, `id="status" class="connected"`)
	assert.Regexp(t, `<td>web1</td><td>\d+\.\d</td>`, dom)
	assert.Contains(t, dom, "<td>/missing</td>")
	assert.Contains(t, dom, "<td>shop.example.com</td>")
	var drawn bool
	page.eval(`(() => { const c = document.getElementById("rate"); const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data; for (let i = 0; i < d.length; i += 4) if (d[i+3] && (d[i] != d[i+1] || d[i+1] != d[i+2])) return true; return false; })()`, &drawn)
	assert.True(t, drawn, "the hit-rate graph has coloured pixels")

	png := page.screenshot()
	shot := filepath.Join(t.ArtifactDir(), "logmon.png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	require.Greater(t, len(png), 10_000, "a blank page compresses to less")
	assert.Equal(t, "\x89PNG", string(png[:4]))
	if dst := os.Getenv("LOGMON_SCREENSHOT"); dst != "" {
		require.NoError(t, os.WriteFile(dst, png, 0o644))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}
