package main

import (
	"bytes"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// origin is the image server behind the caches: every path under /thumbs/
// and /photos/ is a PNG drawn from the path's hash, so the same URL always
// gives the same bytes.
type origin struct {
	started  time.Time
	requests atomic.Uint64
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	size := 0
	switch {
	case strings.HasPrefix(r.URL.Path, "/thumbs/"):
		size = 32
	case strings.HasPrefix(r.URL.Path, "/photos/"):
		size = 96
	default:
		http.NotFound(w, r)
		return
	}
	body := drawImage(r.URL.Path, size)
	h := w.Header()
	h.Set("Content-Type", "image/png")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("Last-Modified", o.started.UTC().Format(http.TimeFormat))
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// drawImage returns a size×size PNG whose colours derive from key.
func drawImage(key string, size int) []byte {
	f := fnv.New32a()
	f.Write([]byte(key))
	h := f.Sum32()
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			img.Set(x, y, color.RGBA{
				R: uint8(h) ^ uint8(x*255/size),
				G: uint8(h>>8) ^ uint8(y*255/size),
				B: uint8(h >> 16),
				A: 255,
			})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}
