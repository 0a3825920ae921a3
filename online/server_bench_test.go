package online_test

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/online"
	"github.com/peerscale/peerscale/online/client"
)

// BenchmarkServer measures requests over loopback TCP with the Go client,
// one connection, depth requests in flight.
func BenchmarkServer(b *testing.B) {
	ix := online.NewIndex(online.Config{Window: time.Hour})
	now := time.Now()
	for i := range 100_000 {
		ix.Hit("user-"+strconv.Itoa(i), "/articles/"+strconv.Itoa(i%1000)+".html", now.Add(-time.Duration(100_000-i)*time.Millisecond))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := online.NewServer(ix, ln, online.ServerConfig{})
	defer srv.Close()
	for _, depth := range []int{1, 16} {
		for _, op := range []string{"HIT", "ONURL", "COUNT"} {
			b.Run(op+"/depth="+strconv.Itoa(depth), func(b *testing.B) {
				c, err := client.Dial(b.Context(), srv.Addr().String(), client.Config{})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cmds := make([][]string, depth)
				b.ReportAllocs()
				i := 0
				cpu0 := rusage()
				for b.Loop() {
					for j := range cmds {
						i++
						switch op {
						case "HIT":
							cmds[j] = []string{"HIT", "user-" + strconv.Itoa(i%100_000), "/articles/" + strconv.Itoa(i%1000) + ".html"}
						case "ONURL":
							cmds[j] = []string{"ONURL", "/articles/" + strconv.Itoa(i%1000) + ".html", "LIMIT", "30"}
						default:
							cmds[j] = []string{"COUNT"}
						}
					}
					if _, err := c.Pipeline(b.Context(), cmds); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rusage()-cpu0)/float64(b.N*depth), "cpu-ns/req")
				b.ReportMetric(float64(b.N*depth)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}

// rusage returns the process CPU time (client and server together here).
func rusage() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
