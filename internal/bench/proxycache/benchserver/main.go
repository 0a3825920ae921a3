// Command benchserver serves the objects of the proxycache benchmark
// (proxycache/scripts/bench.sh): the origin, proxycache in front of it, or
// http.FileServer on a directory.
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/peerscale/peerscale/proxycache"
)

func main() {
	mode := flag.String("mode", "proxycache", "origin | proxycache | fileserver")
	listen := flag.String("listen", "127.0.0.1:0", "address")
	dir := flag.String("dir", "", "cache directory (proxycache) or document root (fileserver)")
	origin := flag.String("origin", "", "origin URL (proxycache)")
	host := flag.String("host", "127.0.0.1", "host name the proxy serves (proxycache)")
	flag.Parse()
	var h http.Handler
	switch *mode {
	case "origin":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int
			if _, err := fmt.Sscanf(r.URL.Path, "/obj-%d", &n); err != nil || n > 64<<20 {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Cache-Control", "max-age=86400")
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte(strings.Repeat("x", n)))
		})
	case "proxycache":
		u, err := url.Parse(*origin)
		if err != nil {
			log.Fatal(err)
		}
		c, err := proxycache.New(*dir, map[string]*url.URL{*host: u}, proxycache.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		h = c
	case "fileserver":
		h = http.FileServer(http.Dir(*dir))
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	fmt.Fprintln(os.Stderr, "listening on", *listen)
	log.Fatal(http.ListenAndServe(*listen, h))
}
