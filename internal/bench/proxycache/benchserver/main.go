// Command benchserver serves the objects of the proxycache benchmark
// (proxycache/scripts/bench.sh): the origin, proxycache in front of it,
// http.FileServer on a directory, the least a net/http handler can do to
// send a file with sendfile(2) (mode sendfile: open, fstat, two header
// fields, io.Copy), the floor for any Go server of files, or the least it
// can do to answer from memory (mode memory: two header fields and one
// Write of a prepared body), the floor for hits served from memory, and
// the same with the seven header fields of a proxycache hit (mode memhdr).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peerscale/peerscale/proxycache"
)

func main() {
	mode := flag.String("mode", "proxycache", "origin | proxycache | fileserver | sendfile | memory | memhdr")
	listen := flag.String("listen", "127.0.0.1:0", "address")
	dir := flag.String("dir", "", "cache directory (proxycache) or document root (fileserver, sendfile)")
	origin := flag.String("origin", "", "origin URL (proxycache)")
	host := flag.String("host", "127.0.0.1", "host name the proxy serves (proxycache)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile there until SIGINT or SIGTERM")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(0)
		}()
	}
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
			w.Header().Set("Content-Length", strconv.Itoa(n))
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
	case "memory":
		var mu sync.Mutex
		bodies := map[int][]byte{}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int
			if _, err := fmt.Sscanf(r.URL.Path, "/obj-%d", &n); err != nil || n > 64<<20 {
				http.NotFound(w, r)
				return
			}
			mu.Lock()
			b := bodies[n]
			if b == nil {
				b = bytes.Repeat([]byte("x"), n)
				bodies[n] = b
			}
			mu.Unlock()
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(b)
		})
	case "memhdr":
		// mode memory with the header of a proxycache hit: the same
		// seven fields, copied from a prepared map.
		var mu sync.Mutex
		bodies := map[int][]byte{}
		heads := map[int]http.Header{}
		date := time.Now().UTC().Format(http.TimeFormat)
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var n int
			if _, err := fmt.Sscanf(r.URL.Path, "/obj-%d", &n); err != nil || n > 64<<20 {
				http.NotFound(w, r)
				return
			}
			mu.Lock()
			b, hd := bodies[n], heads[n]
			if b == nil {
				b = bytes.Repeat([]byte("x"), n)
				bodies[n] = b
				hd = http.Header{
					"Accept-Ranges": {"bytes"}, "Age": {"1"}, "Cache-Control": {"max-age=86400"},
					"Cache-Status": {"proxycache; hit; ttl=86399"}, "Content-Length": {strconv.Itoa(n)},
					"Content-Type": {"application/octet-stream"}, "Date": {date},
				}
				heads[n] = hd
			}
			mu.Unlock()
			wh := w.Header()
			for k, vs := range hd {
				wh[k] = vs
			}
			w.Write(b)
		})
	case "sendfile":
		root, err := os.OpenRoot(*dir)
		if err != nil {
			log.Fatal(err)
		}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f, err := root.Open(strings.TrimPrefix(r.URL.Path, "/"))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil || !fi.Mode().IsRegular() {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
			io.Copy(w, f)
		})
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
	fmt.Fprintln(os.Stderr, "listening on", *listen)
	log.Fatal(http.ListenAndServe(*listen, h))
}
