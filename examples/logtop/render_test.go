package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/peerscale/peerscale/logsub"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// sample aggregates a fixed traffic mix in fake time.
func sample() logsub.Snapshot {
	a := logsub.NewAggregator(logsub.AggregatorConfig{Window: 10 * time.Second, TopN: 3})
	for i := range 40 {
		r := &logsub.Record{Server: "web1", Vhost: "www.example.com", URL: "/index.html", Status: 200, Bytes: 5120, Referer: "https://search.example/?q=x"}
		switch {
		case i%10 == 0:
			r.Server, r.URL, r.Status, r.Bytes = "web2", "/missing\x1b[31m", 404, 230
		case i%7 == 0:
			r.Vhost, r.URL, r.Status, r.Referer = "a-very-long-virtual-host-name.example.org", "/login", 302, ""
		case i%13 == 0:
			r.Server, r.URL, r.Status = "web2", "/api/v1/items?page=2", 500
		}
		a.Observe(r)
		if i%8 == 7 {
			time.Sleep(time.Second)
		}
	}
	return a.Snapshot()
}

func TestRenderGolden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b bytes.Buffer
		require.NoError(t, Render(&b, sample(), 100, 40))
		got := b.String()
		if *update {
			require.NoError(t, os.WriteFile("testdata/top.golden", b.Bytes(), 0o644))
		}
		want, err := os.ReadFile("testdata/top.golden")
		require.NoError(t, err)
		assert.Equal(t, string(want), got)
		assert.NotContains(t, got, "\x1b", "control bytes from the wire never reach the terminal")

		b.Reset()
		require.NoError(t, Render(&b, sample(), 50, 6))
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		assert.LessOrEqual(t, len(lines), 6)
		for _, l := range lines {
			assert.LessOrEqual(t, len(l), 50, l)
		}
	})
}
