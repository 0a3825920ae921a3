package proxycache_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"

	"github.com/peerscale/peerscale/proxycache"
)

func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		fmt.Fprint(w, "GIF89a...")
	}))
	defer origin.Close()
	target, _ := url.Parse(origin.URL)

	dir, _ := os.MkdirTemp("", "proxycache-example")
	defer os.RemoveAll(dir)
	c, err := proxycache.New(dir, map[string]*url.URL{"images.example.com": target},
		proxycache.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	front := httptest.NewServer(c)
	defer front.Close()

	get := func() {
		req, _ := http.NewRequest("GET", front.URL+"/logo.gif", nil)
		req.Host = "images.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), "; ttl=")
		fmt.Printf("%s | %s\n", body, status)
	}
	get()
	get()
	if _, err := os.Stat(dir + "/images.example.com/logo.gif"); err == nil {
		fmt.Println("stored as images.example.com/logo.gif")
	}
	_ = c.PurgeURL(context.Background(), "http://images.example.com/logo.gif")
	get()
	// Output:
	// GIF89a... | proxycache; fwd=uri-miss; fwd-status=200; stored
	// GIF89a... | proxycache; hit
	// stored as images.example.com/logo.gif
	// GIF89a... | proxycache; fwd=uri-miss; fwd-status=200; stored
}
