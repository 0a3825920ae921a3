package online_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/peerscale/peerscale/online"
	"github.com/peerscale/peerscale/online/client"
)

func ExampleServer() {
	ix := online.NewIndex(online.Config{Window: 30 * time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := online.NewServer(ix, ln, online.ServerConfig{})
	defer srv.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, srv.Addr().String(), client.Config{})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	now := time.Now()
	c.Hit(ctx, "alice", "/index.html", now.Add(-time.Minute))
	c.Hit(ctx, "bob", "/index.html", now)
	n, _ := c.Count(ctx)
	who, _ := c.OnURL(ctx, "/index.html", 30)
	fmt.Println(n, who[0].User, who[1].User)
	// Output: 2 bob alice
}

func ExampleNewHandler() {
	ix := online.NewIndex(online.Config{})
	ix.Hit("alice", "/index.html", time.Now())
	srv := httptest.NewServer(online.NewHandler(ix))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/count")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)
	// Output: {"count":1}
}
