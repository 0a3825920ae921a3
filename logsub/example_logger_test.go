package logsub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/logpub"
	"github.com/peerscale/peerscale/logsub"
)

// A web server publishes its access log with logpub; a logger on the same
// bus writes it to a daily file and acknowledges after fsync, so the
// publisher's Shutdown returns once every line is on disk.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "spreadlogd")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	hub := inproc.New(inproc.Config{Logger: quiet}) // bus/cluster across hosts
	defer hub.Close()
	lb, _ := hub.NewMember("logger-a")
	l, err := logsub.New(ctx, lb, []string{"www"}, []logsub.Output{
		{File: filepath.Join(dir, "access.%Y%m%d"), Rotate: logsub.FileConfig{Interval: 24 * time.Hour}},
	}, logsub.Config{Name: "logger-a", Store: logsub.StoreConfig{StateFile: filepath.Join(dir, "state")}, Logger: quiet})
	if err != nil {
		panic(err)
	}

	wb, _ := hub.NewMember("web1")
	p, _ := logpub.New(wb, "www", logpub.Config{ID: "web1", Logger: quiet})
	start := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	for _, path := range []string{"/", "/about", "/missing"} {
		status := 200
		if path == "/missing" {
			status = 404
		}
		r := httptest.NewRequest("GET", path, nil)
		p.Log(&logpub.Entry{Request: r, Status: status, BodyBytes: 512, Start: start, End: start})
	}
	if err := p.Shutdown(ctx); err != nil { // waits for the logger's acks
		panic(err)
	}
	l.Shutdown(ctx)

	st := l.Stats()
	fmt.Println(st.Records, "records,", st.Acks > 0, "acknowledged")
	files, _ := filepath.Glob(filepath.Join(dir, "access.*"))
	data, _ := os.ReadFile(files[0])
	fmt.Print(string(data))
	// Output:
	// 3 records, true acknowledged
	// 192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET / HTTP/1.1" 200 512 "-" "-"
	// 192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET /about HTTP/1.1" 200 512 "-" "-"
	// 192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET /missing HTTP/1.1" 404 512 "-" "-"
}
