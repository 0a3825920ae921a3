package logpub

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/peerscale/peerscale/internal/logwire"
	"github.com/stretchr/testify/require"
)

func framed(tb testing.TB, first uint64, lines ...string) []byte {
	tb.Helper()
	b := make([]byte, frameHeader)
	b = logwire.AppendBatchHeader(b, &logwire.BatchHeader{Publisher: "p", Epoch: 1, FirstSeq: first})
	for _, l := range lines {
		b = logwire.AppendRecord(b, &logwire.Record{Status: 200, Line: []byte(l)})
	}
	logwire.SetCount(b[frameHeader:], uint32(len(lines)))
	frameBatch(b)
	return b
}

// FuzzJournalLoad feeds arbitrary segment contents to the journal loader:
// it must keep a valid prefix of whole, checksummed batches, truncate the
// rest, and find the same batches when opened again.
func FuzzJournalLoad(f *testing.F) {
	seg := append(framed(f, 1, "a", "b"), framed(f, 3, "c")...)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "0000000000000001-0000000000000001.journal")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		j, recs, err := openJournal(dir, 1<<20)
		require.NoError(t, err)
		var end int64
		for _, r := range recs {
			b, err := j.read(r.seg, r.off, r.size)
			require.NoError(t, err)
			_, _, err = logwire.DecodeBatchHeader(b)
			require.NoError(t, err)
			end = r.off + int64(r.size)
		}
		require.NoError(t, j.close())
		if len(recs) == 0 {
			_, err := os.Stat(path)
			require.True(t, os.IsNotExist(err), "an empty segment is removed")
			return
		}
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, end, fi.Size(), "truncated after the last good frame")
		j2, recs2, err := openJournal(dir, 1<<20)
		require.NoError(t, err)
		require.Equal(t, len(recs), len(recs2))
		require.NoError(t, j2.close())
	})
}
