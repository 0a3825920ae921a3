package logsub_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/peerscale/peerscale/logsub"
)

func ExampleOpenStore() {
	dir, _ := os.MkdirTemp("", "logsub")
	defer os.RemoveAll(dir)
	s, err := logsub.OpenStore([]logsub.Output{
		{File: filepath.Join(dir, "access.%Y%m%d"), Rotate: logsub.FileConfig{Interval: 24 * time.Hour}},
		{File: filepath.Join(dir, "errors"), Match: `" [45][0-9][0-9] `},
	}, logsub.StoreConfig{StateFile: filepath.Join(dir, "state")})
	if err != nil {
		panic(err)
	}
	for seq, status := range []int{200, 404, 200} {
		line := fmt.Sprintf(`192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET /%d HTTP/1.1" %d 10 "-" "-"`, seq, status)
		s.Write(&logsub.Record{Group: "www", Publisher: "web1", Epoch: 1, Seq: uint64(seq + 1), Line: []byte(line)})
	}
	// A retransmitted record is written once.
	s.Write(&logsub.Record{Group: "www", Publisher: "web1", Epoch: 1, Seq: 2, Line: []byte("again")})
	pos, _ := s.Commit() // fsync, then record what is durable
	fmt.Printf("acknowledge %s epoch %d below %d\n", pos[0].Publisher, pos[0].Epoch, pos[0].Next)
	s.Close()
	errs, _ := os.ReadFile(filepath.Join(dir, "errors"))
	fmt.Print(string(errs))
	// Output:
	// acknowledge web1 epoch 1 below 4
	// 192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET /1 HTTP/1.1" 404 10 "-" "-"
}

func ExampleTimeRewriter_Append() {
	received := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	line := []byte(`192.0.2.1 - - [07/Mar/2026:14:04:58 -0700] "GET / HTTP/1.1" 200 10`)
	fmt.Println(string(logsub.NewTimeRewriter("CommonLogFormat").Append(nil, line, received)))
	fmt.Println(string(logsub.NewTimeRewriter("%Y-%m-%dT%H:%M:%SZ").Append(nil, line, received)))
	// Output:
	// 192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET / HTTP/1.1" 200 10
	// 192.0.2.1 - - [2026-03-07T14:05:09Z] "GET / HTTP/1.1" 200 10
}

func ExampleCompileStrftime() {
	name := logsub.CompileStrftime("/var/log/www/access.%Y%m%d-%H")
	fmt.Println(name.Format(time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)))
	// Output: /var/log/www/access.20260307-14
}

func ExampleParseSetup() {
	st, err := logsub.ParseSetup([]byte(`
StateFile = /var/lib/spreadlogd/state
Log {
    Group = www
    File = "/var/log/www/{vhost}/access.%Y%m%d"
    RotateInterval = 24h
}
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(st.Groups, st.Outputs[0].File, st.Outputs[0].Rotate.Interval)
	// Output: [www] /var/log/www/{vhost}/access.%Y%m%d 24h0m0s
}

func ExampleAggregator() {
	a := logsub.NewAggregator(logsub.AggregatorConfig{Window: 10 * time.Second, TopN: 2})
	t0 := time.Now().Truncate(time.Second).Add(-10 * time.Second)
	for i := range 30 {
		r := &logsub.Record{Server: "web1", Vhost: "www.example.com", URL: "/", Status: 200, Bytes: 1000}
		if i%3 == 0 {
			r.Server, r.URL, r.Status = "web2", "/missing", 404
		}
		a.ObserveAt(r, t0.Add(time.Duration(i)*time.Second/3))
	}
	s := a.SnapshotAt(t0.Add(9 * time.Second))
	for _, srv := range s.Servers {
		fmt.Printf("%s %.1f hits/s, 4xx %d\n", srv.Name, srv.HitsPerSec, srv.Window.Status[4])
	}
	fmt.Println(s.TopURLs)
	// Output:
	// web1 2.0 hits/s, 4xx 0
	// web2 1.0 hits/s, 4xx 10
	// [{/ 20} {/missing 10}]
}
