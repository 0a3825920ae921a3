package logsub

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/peerscale/peerscale/internal/logwire"
)

// cpuTime returns the CPU time the process used so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per unit of work, steadier than wall time on
// a shared machine.
func reportCPU(b *testing.B, start time.Duration, units int, unit string) {
	b.ReportMetric(float64(cpuTime()-start)/float64(units), "cpu-ns/"+unit)
}

func BenchmarkFileWriteLine(b *testing.B) {
	f, err := OpenFile(filepath.Join(b.TempDir(), "access.%Y%m%d"), FileConfig{Interval: 24 * time.Hour, MaxSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line := clfLine("www.example.com", 12345, 200)
	b.ReportAllocs()
	b.SetBytes(int64(len(line) + 1))
	cpu := cpuTime()
	for b.Loop() {
		if err := f.WriteLine(line); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	reportCPU(b, cpu, b.N, "line")
}

// BenchmarkStoreWrite measures the write path of a durable logger: dedupe,
// filter, timestamp rewrite and buffered write, with a commit (fsync and
// state file) every 10,000 records, about the 100 ms interval at 100k
// lines/s.
func BenchmarkStoreWrite(b *testing.B) {
	for _, c := range []struct {
		name string
		out  Output
	}{
		{"plain", Output{}},
		{"rewrite+match", Output{RewriteTimestamp: "CommonLogFormat", Match: `" [23][0-9][0-9] `}},
		{"vhost", Output{File: "{vhost}.log"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			o := c.out
			if o.File == "" {
				o.File = "access_log"
			}
			o.File = filepath.Join(dir, o.File)
			s, err := OpenStore([]Output{o}, StoreConfig{StateFile: filepath.Join(dir, "state"), Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			vhosts := []string{"a.example", "b.example", "c.example", "d.example"}
			r := &Record{Group: "www", Publisher: "web1", Epoch: 1, Line: clfLine("www.example.com", 12345, 200)}
			b.ReportAllocs()
			var seq uint64
			cpu := cpuTime()
			for b.Loop() {
				seq++
				r.Seq, r.Vhost = seq, vhosts[seq%4]
				if _, err := s.Write(r); err != nil {
					b.Fatal(err)
				}
				if seq%10000 == 0 {
					if _, err := s.Commit(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			reportCPU(b, cpu, b.N, "line")
		})
	}
}

// BenchmarkDecodeAndWrite is the logger's whole receive path for one
// 100-record batch: decode the wire message, then write every record;
// "eachRecord" is the logger's path (logwire's allocation-free RecordIter),
// "DecodeBatch" decodes the whole batch first, for comparison.
func BenchmarkDecodeAndWrite(b *testing.B) {
	const n = 100
	mk := func(first uint64) []byte {
		msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: first, Count: n})
		for i := range n {
			msg = logwire.AppendRecord(msg, &logwire.Record{Status: 200, Bytes: 5120, VHost: "www.example.com",
				Remote: "192.0.2.1", Method: "GET", URL: fmt.Sprintf("/page/%d", i), Proto: "HTTP/1.1",
				Referer: "https://search.example/", UserAgent: "Mozilla/5.0", Line: clfLine("www.example.com", i, 200)})
		}
		return msg
	}
	for _, dec := range []string{"eachRecord", "DecodeBatch"} {
		b.Run(dec, func(b *testing.B) {
			dir := b.TempDir()
			s, err := OpenStore([]Output{{File: filepath.Join(dir, "access_log")}}, StoreConfig{StateFile: filepath.Join(dir, "state"), Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			// Each iteration takes the next 100 sequence numbers, so
			// nothing is a duplicate.
			msg := mk(1)
			var first uint64 = 1
			var r Record
			write := func(r *Record) error {
				_, err := s.Write(r)
				return err
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				logwire.SetFirstSeq(msg, first)
				first += n
				if dec == "eachRecord" {
					if _, err := eachRecord(msg, "www", write); err != nil {
						b.Fatal(err)
					}
					continue
				}
				bt, err := logwire.DecodeBatch(msg)
				if err != nil {
					b.Fatal(err)
				}
				for i := range bt.Records {
					fromWire(&r, "www", &bt.BatchHeader, &bt.Records[i])
					if err := write(&r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "lines/s")
			reportCPU(b, cpu, b.N*n, "line")
		})
	}
}

func BenchmarkAggregatorObserve(b *testing.B) {
	a := NewAggregator(AggregatorConfig{})
	recs := make([]*Record, 64)
	for i := range recs {
		recs[i] = &Record{Server: fmt.Sprintf("web%d", i%4), Vhost: fmt.Sprintf("v%d.example", i%8), URL: fmt.Sprintf("/page/%d", i),
			Referer: "https://search.example/", Status: 200 + 100*(i%4), Bytes: 5120}
	}
	b.ReportAllocs()
	i := 0
	cpu := cpuTime()
	for b.Loop() {
		a.Observe(recs[i%len(recs)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	reportCPU(b, cpu, b.N, "record")
}
