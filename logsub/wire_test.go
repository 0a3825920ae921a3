package logsub

import (
	"testing"
	"time"

	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleBatch() []byte {
	msg := logwire.AppendBatchHeader(nil, &logwire.BatchHeader{Publisher: "web1", Epoch: 3, FirstSeq: 7, Count: 2})
	msg = logwire.AppendRecord(msg, &logwire.Record{Time: time.Unix(1700000000, 5), Duration: time.Millisecond, Status: 404, Bytes: -1,
		VHost: "v", Remote: "192.0.2.1", User: "u", Method: "GET", URL: "/x", Proto: "HTTP/1.1", Referer: "r", UserAgent: "a", Line: []byte("line one")})
	return logwire.AppendRecord(msg, &logwire.Record{Line: []byte("two")})
}

func TestEachRecordMatchesLogwire(t *testing.T) {
	var got []Record
	h, err := eachRecord(sampleBatch(), "www", func(r *Record) error {
		c := *r
		c.Line = append([]byte(nil), r.Line...)
		got = append(got, c)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, "web1", h.Publisher)
	require.Len(t, got, 2)
	assert.Equal(t, Record{Group: "www", Publisher: "web1", Epoch: 3, Seq: 7, Server: "web1", Time: time.Unix(1700000000, 5).UTC(),
		Duration: time.Millisecond, Status: 404, Bytes: -1, Vhost: "v", Remote: "192.0.2.1", User: "u", Method: "GET", URL: "/x",
		Proto: "HTTP/1.1", Referer: "r", UserAgent: "a", Line: []byte("line one")}, got[0])
	assert.Equal(t, uint64(8), got[1].Seq)
	assert.Equal(t, "two", string(got[1].Line))
	msg := sampleBatch()
	assert.LessOrEqual(t, testing.AllocsPerRun(100, func() {
		if _, err := eachRecord(msg, "www", func(*Record) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}), 2.0, "per batch, not per record: the publisher id and the Record")
}

// FuzzEachRecord checks the allocation-free decoder against logwire's own:
// the same messages decode, to the same records.
func FuzzEachRecord(f *testing.F) {
	f.Add(sampleBatch())
	f.Add(sampleBatch()[:40])
	f.Add(append(sampleBatch(), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, werr := logwire.DecodeBatch(data)
		var got []Record
		_, gerr := eachRecord(data, "g", func(r *Record) error {
			got = append(got, *r)
			return nil
		})
		require.Equal(t, werr == nil, gerr == nil, "logwire: %v, eachRecord: %v", werr, gerr)
		if werr != nil {
			return
		}
		require.Len(t, got, len(want.Records))
		for i, w := range want.Records {
			var r Record
			fromWire(&r, "g", &want.BatchHeader, &w)
			if len(r.Line) == 0 {
				r.Line = got[i].Line
			}
			assert.Equal(t, r, got[i])
		}
	})
}

// fromWire fills r from a decoded wire record.
func fromWire(r *Record, group string, h *logwire.BatchHeader, w *logwire.Record) {
	*r = Record{
		Group: group, Publisher: h.Publisher, Epoch: h.Epoch, Seq: w.Seq, Server: h.Publisher,
		Time: w.Time, Vhost: w.VHost, Remote: w.Remote, User: w.User,
		Method: w.Method, URL: w.URL, Proto: w.Proto, Status: w.Status, Bytes: w.Bytes,
		Duration: w.Duration, Referer: w.Referer, UserAgent: w.UserAgent, Line: w.Line,
	}
}
