package logwire

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// iterAll reads every record of b with a RecordIter, cloning each so that
// the result outlives b.
func iterAll(tb testing.TB, b []byte) (BatchHeader, []Record, error) {
	tb.Helper()
	it, err := IterRecords(b)
	if err != nil {
		return it.Header, nil, err
	}
	var recs []Record
	var r Record
	for it.Next(&r) {
		c := r
		c.Line = bytes.Clone(r.Line)
		recs = append(recs, c)
	}
	return it.Header, recs, it.Err()
}

// aliases reports whether s points into b.
func aliases(s string, b []byte) bool {
	if len(s) == 0 || len(b) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(&b[0]))
	return p >= lo && p < lo+uintptr(len(b))
}

func TestRecordIter(t *testing.T) {
	recs := sampleRecords()
	b := encodeBatch(BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Dropped: 3}, recs)
	h, got, err := iterAll(t, b)
	require.NoError(t, err)
	assert.Equal(t, BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Dropped: 3, Count: 2}, h)
	require.Len(t, got, 2)
	for i := range recs {
		recs[i].Seq = 41 + uint64(i)
		assert.Equal(t, recs[i], got[i])
	}

	it, err := IterRecords(b)
	require.NoError(t, err)
	var r Record
	require.True(t, it.Next(&r))
	assert.True(t, aliases(r.URL, b), "strings alias the message")
	assert.True(t, aliases(r.UserAgent, b))
	// A record reused for the next one keeps none of the previous fields.
	require.True(t, it.Next(&r))
	assert.Equal(t, recs[1], r)
	assert.False(t, it.Next(&r))
	assert.NoError(t, it.Err())

	bt, err := DecodeBatch(b)
	require.NoError(t, err)
	assert.False(t, aliases(bt.Records[0].URL, b), "DecodeBatch copies strings")
}

func TestRecordIterErrors(t *testing.T) {
	good := encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, sampleRecords())

	_, err := IterRecords(good[:10])
	assert.ErrorIs(t, err, ErrShort)

	// The first record is passed on before the second turns out truncated.
	it, err := IterRecords(good[:len(good)-3])
	require.NoError(t, err)
	var r Record
	assert.True(t, it.Next(&r))
	assert.False(t, it.Next(&r))
	assert.ErrorIs(t, it.Err(), ErrShort)
	assert.False(t, it.Next(&r), "stays stopped")

	_, recs, err := iterAll(t, append(bytes.Clone(good), 0))
	assert.Len(t, recs, 2)
	assert.ErrorIs(t, err, ErrCorrupt, "bytes after the last record")
}

func TestSetFirstSeq(t *testing.T) {
	b := encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, sampleRecords())
	SetFirstSeq(b, 1000)
	bt, err := DecodeBatch(b)
	require.NoError(t, err)
	assert.Equal(t, uint64(1000), bt.FirstSeq)
	assert.Equal(t, uint64(1001), bt.Records[1].Seq)
}

func TestRecordIterAllocatesNothing(t *testing.T) {
	b := encodeBatch(BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: 1}, benchRecords(100))
	var r Record
	allocs := testing.AllocsPerRun(50, func() {
		it, err := IterRecords(b)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for it.Next(&r) {
			n++
		}
		if n != 100 || it.Err() != nil {
			t.Fatal(n, it.Err())
		}
	})
	assert.LessOrEqual(t, allocs, 1.0, "per 100-record batch: the publisher id only")
}

// FuzzRecordIter checks the iterator against DecodeBatch: the same
// messages are accepted, with the same header and records, and whatever the
// iterator yields before an error is what DecodeBatch would have decoded.
func FuzzRecordIter(f *testing.F) {
	f.Add(encodeBatch(BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Dropped: 3}, sampleRecords()))
	f.Add(encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, nil))
	f.Add(append(encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, sampleRecords()), 0))
	f.Add([]byte{Version, byte(KindBatch)})
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := DecodeBatch(b)
		h, got, gerr := iterAll(t, b)
		require.Equal(t, werr == nil, gerr == nil, "DecodeBatch: %v, RecordIter: %v", werr, gerr)
		if werr != nil {
			require.Equal(t, fmt.Sprint(werr), fmt.Sprint(gerr))
			hh, _, herr := DecodeBatchHeader(b)
			if herr == nil {
				require.Equal(t, hh, h)
				require.Less(t, len(got), int(h.Count)+1)
			}
			return
		}
		require.Equal(t, want.BatchHeader, h)
		require.Len(t, got, len(want.Records))
		for i := range got {
			require.Equal(t, want.Records[i], got[i])
		}
		// Re-encoding what the iterator read gives a message it reads the same.
		_, again, err := iterAll(t, encodeBatch(h, got))
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Status: 200, Bytes: 5120, VHost: "www.example.com", Remote: "192.0.2.1", Method: "GET",
			URL: fmt.Sprintf("/page/%d", i), Proto: "HTTP/1.1", Referer: "https://search.example/", UserAgent: "Mozilla/5.0",
			Line: fmt.Appendf(nil, `192.0.2.1 - - [07/Mar/2026:14:05:09 +0000] "GET /page/%d HTTP/1.1" 200 5120 "https://search.example/" "Mozilla/5.0"`, i)}
	}
	return recs
}

// BenchmarkDecode decodes a 100-record batch with the iterator and with
// DecodeBatch, reporting time and allocations per record.
func BenchmarkDecode(b *testing.B) {
	const n = 100
	msg := encodeBatch(BatchHeader{Publisher: "web1", Epoch: 1, FirstSeq: 1}, benchRecords(n))
	for _, bc := range []struct {
		name   string
		decode func() error
	}{
		{"RecordIter", func() error {
			it, err := IterRecords(msg)
			if err != nil {
				return err
			}
			var r Record
			for it.Next(&r) {
			}
			return it.Err()
		}},
		{"DecodeBatch", func() error {
			_, err := DecodeBatch(msg)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				if err := bc.decode(); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N*n), "allocs/record")
		})
	}
}
