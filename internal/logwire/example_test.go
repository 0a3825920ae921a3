package logwire_test

import (
	"fmt"
	"time"

	"github.com/peerscale/peerscale/internal/logwire"
)

func Example() {
	// Publisher: a batch header, records, then the count.
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 1})
	for i, path := range []string{"/a", "/b"} {
		msg = logwire.AppendRecord(msg, &logwire.Record{
			Time: time.Unix(1700000000, 0), Status: 200 + i, Method: "GET", URL: path,
			Line: []byte("GET " + path),
		})
	}
	logwire.SetCount(msg, 2)

	// Logger: decode, write, then acknowledge what is on disk.
	b, err := logwire.DecodeBatch(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range b.Records {
		fmt.Printf("%s/%d #%d %d %s\n", b.Publisher, b.Epoch, r.Seq, r.Status, r.Line)
	}
	ack := logwire.AppendAck(nil, &logwire.Ack{Logger: "logger1", Flags: logwire.AckDurable,
		Entries: []logwire.AckEntry{{Publisher: b.Publisher, Epoch: b.Epoch, Next: b.FirstSeq + uint64(b.Count)}}})
	a, _ := logwire.DecodeAck(ack)
	fmt.Printf("ack %s next %d\n", a.Entries[0].Publisher, a.Entries[0].Next)
	// Output:
	// web1/7 #1 200 GET /a
	// web1/7 #2 201 GET /b
	// ack web1 next 3
}

func ExampleIterRecords() {
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Count: 2})
	msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, URL: "/a", Line: []byte("GET /a")})
	msg = logwire.AppendRecord(msg, &logwire.Record{Status: 404, URL: "/b", Line: []byte("GET /b")})

	it, err := logwire.IterRecords(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	var r logwire.Record
	for it.Next(&r) {
		fmt.Printf("%s #%d %d %s\n", it.Header.Publisher, r.Seq, r.Status, r.Line)
	}
	if err := it.Err(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// web1 #41 200 GET /a
	// web1 #42 404 GET /b
}
