package logwire

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleRecords() []Record {
	return []Record{
		{
			Time: time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), Duration: 1500 * time.Microsecond,
			Status: 200, Bytes: 5120, VHost: "www.example.com", Remote: "192.0.2.1", User: "alice",
			Method: "GET", URL: "/index.html?x=1", Proto: "HTTP/1.1", Referer: "http://r/", UserAgent: "curl/8",
			Line: []byte(`192.0.2.1 - alice [02/Jan/2024:03:04:05 +0000] "GET /index.html?x=1 HTTP/1.1" 200 5120`),
		},
		{Status: 404, Bytes: 0, Method: "HEAD", URL: "/", Proto: "HTTP/1.0", Line: []byte{}},
	}
}

func encodeBatch(h BatchHeader, recs []Record) []byte {
	b := AppendBatchHeader(nil, &h)
	for i := range recs {
		b = AppendRecord(b, &recs[i])
	}
	SetCount(b, uint32(len(recs)))
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	recs := sampleRecords()
	b := encodeBatch(BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Dropped: 3}, recs)
	k, err := MessageKind(b)
	require.NoError(t, err)
	assert.Equal(t, KindBatch, k)
	got, err := DecodeBatch(b)
	require.NoError(t, err)
	assert.Equal(t, BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Dropped: 3, Count: 2}, got.BatchHeader)
	require.Len(t, got.Records, 2)
	for i := range recs {
		recs[i].Seq = 41 + uint64(i)
		assert.Equal(t, recs[i], got.Records[i])
	}
}

func TestBatchSkipsLaterFields(t *testing.T) {
	recs := sampleRecords()[:1]
	b := encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, recs)
	// A later revision appends a field inside the record.
	b = append(b, 0xAA, 0xBB)
	n := uint32(len(b) - (BatchHeaderSize + 2) - 4)
	b[BatchHeaderSize+2] = byte(n >> 24)
	b[BatchHeaderSize+3] = byte(n >> 16)
	b[BatchHeaderSize+4] = byte(n >> 8)
	b[BatchHeaderSize+5] = byte(n)
	got, err := DecodeBatch(b)
	require.NoError(t, err)
	assert.Equal(t, recs[0].Line, got.Records[0].Line)
}

func TestDecodeErrors(t *testing.T) {
	good := encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, sampleRecords())
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"version", []byte{9, 1}, ErrVersion},
		{"kind", []byte{Version, 9}, ErrKind},
		{"ack as batch", AppendAck(nil, &Ack{Logger: "l"}), ErrKind},
		{"truncated", good[:len(good)-3], ErrShort},
		{"trailing", append(append([]byte{}, good...), 0), ErrCorrupt},
		{"huge count", func() []byte {
			b := append([]byte{}, good...)
			SetCount(b, 1<<31)
			return b
		}(), ErrShort},
		{"seq zero", encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 0}, sampleRecords()), ErrCorrupt},
		{"no publisher", encodeBatch(BatchHeader{Epoch: 1, FirstSeq: 1}, nil), ErrCorrupt},
	}
	for _, tt := range tests {
		_, err := DecodeBatch(tt.b)
		assert.True(t, errors.Is(err, tt.want), "%s: %v", tt.name, err)
	}
}

func TestAckRoundTrip(t *testing.T) {
	a := &Ack{Logger: "logger1#abc", Flags: AckDurable | AckSync, Entries: []AckEntry{
		{Publisher: "web1", Epoch: 3, Next: 100},
		{Publisher: "web2", Epoch: 1, Next: 1, Resend: true},
		{Publisher: "web3", Epoch: 2, Next: 7, Resend: true, End: 12},
	}}
	b := AppendAck(nil, a)
	got, err := DecodeAck(b)
	require.NoError(t, err)
	assert.Equal(t, a, got)

	_, err = DecodeAck(b[:len(b)-1])
	assert.ErrorIs(t, err, ErrShort)
	bad := append([]byte{}, b...)
	bad[2] = 0x80
	_, err = DecodeAck(bad)
	assert.ErrorIs(t, err, ErrCorrupt)
	_, err = DecodeAck(encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, nil))
	assert.ErrorIs(t, err, ErrKind)
}

// TestAckVersion1 checks that acks of version 1 (no End) still decode, and
// that End is checked.
func TestAckVersion1(t *testing.T) {
	v1 := []byte{1, byte(KindAck), AckDurable, 1, 'l', 2, 2, 'p', '1', 3, 9, 1, 1, 'q', 1, 4, 0}
	got, err := DecodeAck(v1)
	require.NoError(t, err)
	assert.Equal(t, &Ack{Logger: "l", Flags: AckDurable, Entries: []AckEntry{
		{Publisher: "p1", Epoch: 3, Next: 9, Resend: true},
		{Publisher: "q", Epoch: 1, Next: 4},
	}}, got)
	assert.Equal(t, byte(AckVersion), AppendAck(nil, got)[0])

	for _, end := range []uint64{3, 9} {
		b := AppendAck(nil, &Ack{Logger: "l", Entries: []AckEntry{{Publisher: "p", Epoch: 1, Next: 9, Resend: true, End: end}}})
		_, err := DecodeAck(b)
		assert.ErrorIs(t, err, ErrCorrupt, "end %d", end)
	}
	_, err = DecodeAck([]byte{AckVersion + 1, byte(KindAck), 0, 0, 0})
	assert.ErrorIs(t, err, ErrVersion)
	_, err = MessageKind([]byte{AckVersion, byte(KindBatch)})
	assert.ErrorIs(t, err, ErrVersion, "batches stay at version 1")
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(BatchHeader{Publisher: "web1", Epoch: 7, FirstSeq: 41, Dropped: 3}, sampleRecords()))
	f.Add(encodeBatch(BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: 1}, nil))
	f.Add([]byte{Version, byte(KindBatch)})
	f.Fuzz(func(t *testing.T, b []byte) {
		bt, err := DecodeBatch(b)
		if err != nil {
			require.Nil(t, bt)
			return
		}
		again, err := DecodeBatch(encodeBatch(bt.BatchHeader, bt.Records))
		require.NoError(t, err)
		require.Equal(t, bt, again)
	})
}

func FuzzDecodeAck(f *testing.F) {
	f.Add(AppendAck(nil, &Ack{Logger: "l", Flags: AckDurable, Entries: []AckEntry{{Publisher: "p", Epoch: 1, Next: 9, Resend: true}}}))
	f.Add(AppendAck(nil, &Ack{}))
	f.Add(AppendAck(nil, &Ack{Logger: "l", Flags: AckDurable | AckSync, Entries: []AckEntry{{Publisher: "p", Epoch: 1, Next: 9, Resend: true, End: 20}, {Publisher: "q", Epoch: 2, Next: 1}}}))
	f.Add([]byte{1, byte(KindAck), AckDurable, 1, 'l', 1, 1, 'p', 3, 9, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAck(b)
		if err != nil {
			return
		}
		again, err := DecodeAck(AppendAck(nil, a))
		require.NoError(t, err)
		require.Equal(t, a, again)
	})
}
