package logpub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/peerscale/peerscale/bus"
	"github.com/peerscale/peerscale/bus/inproc"
	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/peerscale/peerscale/logpub"
)

// A web server publishes its access log to the "logs" group; a logger
// receives the batches (logsub does this, and acknowledges).
func ExamplePublisher() {
	ctx := context.Background()
	hub := inproc.New(inproc.Config{})
	defer hub.Close()
	web, _ := hub.NewMember("web1")
	logger, _ := hub.NewMember("logger1")
	logs, _ := logger.Join(ctx, "logs")

	pub, err := logpub.New(web, "logs", logpub.Config{
		ID:        "web1",
		Format:    logpub.MustCompile(`%h "%r" %>s %b`),
		AckQuorum: -1, // no durable logger in this example
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close()
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") })
	h := logpub.Middleware(pub, logpub.HandlerConfig{})(site)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/hello?x=1", nil))
	pub.Flush()

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		ev, err := logs.Recv(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if m, ok := ev.(*bus.Message); ok {
			b, _ := logwire.DecodeBatch(m.Data)
			for _, r := range b.Records {
				fmt.Printf("%s seq %d: %s %s -> %d\n%s\n", b.Publisher, r.Seq, r.Method, r.URL, r.Status, r.Line)
			}
			return
		}
	}
	// Output:
	// web1 seq 1: GET /hello?x=1 -> 200
	// 192.0.2.1 "GET /hello?x=1 HTTP/1.1" 200 5
}
