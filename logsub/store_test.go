package logsub

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clfLine returns a combined-format line for a test record.
func clfLine(vhost string, i int, status int) []byte {
	return fmt.Appendf(nil, `127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /%s/%d HTTP/1.1" %d %d "-" "test"`, vhost, i, status, 100+i)
}

func rec(group, pub string, epoch, seq uint64, vhost string, status int) *Record {
	return &Record{Group: group, Publisher: pub, Epoch: epoch, Seq: seq, Vhost: vhost, Status: status, Line: clfLine(vhost, int(seq), status)}
}

func TestStoreOutputsGolden(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		time.Sleep(36 * time.Hour) // 2000-01-02 12:00 UTC
		s, err := OpenStore([]Output{
			{File: filepath.Join(dir, "all.%Y%m%d")},
			{File: filepath.Join(dir, "vhosts", "{vhost}.log")},
			{File: filepath.Join(dir, "errors.log"), Match: `" [45][0-9][0-9] `},
			{File: filepath.Join(dir, "clf.log"), RewriteTimestamp: "CommonLogFormat", Exclude: `/b\.example/`},
			{File: filepath.Join(dir, "iso.log"), RewriteTimestamp: "%Y-%m-%dT%H:%M:%S%z", Groups: []string{"other"}},
		}, StoreConfig{StateFile: filepath.Join(dir, "state.json")})
		require.NoError(t, err)
		for i, v := range []string{"a.example", "b.example", "A.Example", "../evil", ""} {
			ok, err := s.Write(rec("www", "p1", 1, uint64(i+1), v, 200+100*i))
			require.NoError(t, err)
			assert.True(t, ok)
		}
		ok, err := s.Write(rec("other", "p1", 1, 1, "c.example", 200))
		require.NoError(t, err)
		assert.True(t, ok, "the same identity in another group is another record")
		ok, err = s.Write(rec("www", "p1", 1, 2, "b.example", 200))
		require.NoError(t, err)
		assert.False(t, ok, "duplicate dropped")
		require.NoError(t, s.Close())
		st := s.Stats()
		assert.Equal(t, uint64(6), st.Records)
		assert.Equal(t, uint64(1), st.Duplicates)
		require.NoError(t, os.Remove(filepath.Join(dir, "state.json")))
		golden(t, "outputs.golden", []byte(dump(t, dir)))
	})
}

func TestStoreCrashTruncatesAndDedupes(t *testing.T) {
	dir := t.TempDir()
	cfg := StoreConfig{StateFile: filepath.Join(dir, "state")}
	outs := []Output{{File: filepath.Join(dir, "log")}}
	s, err := OpenStore(outs, cfg)
	require.NoError(t, err)
	for i := uint64(1); i <= 10; i++ {
		_, err := s.Write(rec("g", "p", 7, i, "v", 200))
		require.NoError(t, err)
	}
	acks, err := s.Commit()
	require.NoError(t, err)
	assert.Equal(t, []Position{{Group: "g", Publisher: "p", Epoch: 7, Next: 11}}, acks)
	acks, err = s.Commit()
	require.NoError(t, err)
	assert.Empty(t, acks, "nothing new to acknowledge")
	for i := uint64(11); i <= 15; i++ {
		_, err := s.Write(rec("g", "p", 7, i, "v", 200))
		require.NoError(t, err)
	}
	// Lines 11-15 reach the file but are never committed, and the last
	// write is torn.
	s.crash(true)
	data, _ := os.ReadFile(filepath.Join(dir, "log"))
	require.Equal(t, 15, strings.Count(string(data), "\n"))
	require.True(t, strings.HasSuffix(string(data), "[torn"))

	s, err = OpenStore(outs, cfg)
	require.NoError(t, err)
	assert.Positive(t, s.Stats().Truncated)
	assert.Equal(t, []SeqRange{{1, 10}}, s.Held("g", "p", 7))
	// The publisher replays everything it has no ack for, and a bit more.
	for i := uint64(8); i <= 16; i++ {
		ok, err := s.Write(rec("g", "p", 7, i, "v", 200))
		require.NoError(t, err)
		assert.Equal(t, i > 10, ok, "seq %d", i)
	}
	require.NoError(t, s.Close())
	data, err = os.ReadFile(filepath.Join(dir, "log"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, 16)
	for i, l := range lines {
		assert.Contains(t, l, fmt.Sprintf("/v/%d ", i+1))
	}
}

func TestStorePositionsAndSkip(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore([]Output{{File: filepath.Join(dir, "log")}}, StoreConfig{StateFile: filepath.Join(dir, "state")})
	require.NoError(t, err)
	defer s.Close()
	for _, q := range []uint64{3, 4, 6} {
		_, err := s.Write(rec("g", "p", 1, q, "v", 200))
		require.NoError(t, err)
	}
	ps, err := s.Commit()
	require.NoError(t, err)
	assert.Equal(t, []Position{{Group: "g", Publisher: "p", Epoch: 1, Next: 1, Gap: true, HoleEnd: 3}}, ps)
	assert.Equal(t, Position{Group: "g", Publisher: "p", Epoch: 1, Next: 5, Gap: true, HoleEnd: 6}, s.Skip("g", "p", 1))
	assert.Equal(t, Position{Group: "g", Publisher: "p", Epoch: 1, Next: 7}, s.Skip("g", "p", 1))
	assert.Equal(t, uint64(3), s.Stats().Forgotten)
	ok, err := s.Write(rec("g", "p", 1, 5, "v", 200))
	require.NoError(t, err)
	assert.False(t, ok, "a skipped record is a duplicate")
	ps, err = s.Commit()
	require.NoError(t, err)
	assert.Equal(t, []Position{{Group: "g", Publisher: "p", Epoch: 1, Next: 7}}, ps, "duplicates are acknowledged again")
	assert.Equal(t, ps, s.Positions())
}

func TestStoreRotationCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		cfg := StoreConfig{StateFile: filepath.Join(dir, "state")}
		outs := []Output{{File: filepath.Join(dir, "log.%H"), Rotate: FileConfig{Interval: time.Hour}}}
		s, err := OpenStore(outs, cfg)
		require.NoError(t, err)
		_, err = s.Write(rec("g", "p", 1, 1, "v", 200))
		require.NoError(t, err)
		time.Sleep(time.Hour)
		_, err = s.Write(rec("g", "p", 1, 2, "v", 200))
		require.NoError(t, err)
		// The rotation committed seq 1 and the new file; seq 2 is not committed.
		st, err := readState(cfg.StateFile)
		require.NoError(t, err)
		assert.Equal(t, []stateFile{{Path: filepath.Join(dir, "log.01"), Offset: 0}}, st.Files)
		s.crash(false)
		s, err = OpenStore(outs, cfg)
		require.NoError(t, err)
		assert.Equal(t, []SeqRange{{1, 1}}, s.Held("g", "p", 1))
		require.NoError(t, s.Close())
		l00, err := os.ReadFile(filepath.Join(dir, "log.00"))
		require.NoError(t, err)
		l01, err := os.ReadFile(filepath.Join(dir, "log.01"))
		require.NoError(t, err)
		assert.Equal(t, string(clfLine("v", 1, 200))+"\n", string(l00))
		assert.Empty(t, l01, "the uncommitted line was cut")
	})
}

func TestStoreVhostLimit(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore([]Output{{File: filepath.Join(dir, "{vhost}")}}, StoreConfig{MaxVhostFiles: 2})
	require.NoError(t, err)
	for i, v := range []string{"a", "b", "c", "a", "d"} {
		_, err := s.Write(rec("g", "", 0, uint64(i), v, 200))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	assert.ErrorIs(t, func() error { _, err := s.Write(rec("g", "", 0, 0, "a", 200)); return err }(), ErrClosed)
	names, _ := os.ReadDir(dir)
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	assert.Equal(t, []string{"_other", "a", "b"}, got)
}

func TestStorePipe(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "piped")
	s, err := OpenStore([]Output{{Pipe: "cat > " + out}}, StoreConfig{})
	require.NoError(t, err)
	for i := uint64(1); i <= 3; i++ {
		_, err := s.Write(rec("g", "p", 1, i, "v", 200))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, 3, strings.Count(string(data), "\n"))
	assert.Zero(t, s.Stats().PipeErrors)
}

func TestStoreConfigErrors(t *testing.T) {
	for _, outs := range [][]Output{
		nil,
		{{}},
		{{File: "x", Pipe: "y"}},
		{{File: "x", Match: "("}},
		{{File: "x", Exclude: "("}},
	} {
		_, err := OpenStore(outs, StoreConfig{})
		assert.ErrorIs(t, err, ErrConfig, "%+v", outs)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	require.NoError(t, os.WriteFile(state, []byte("{"), 0o644))
	_, err := OpenStore([]Output{{File: filepath.Join(dir, "x")}}, StoreConfig{StateFile: state})
	assert.ErrorIs(t, err, ErrBadState)
}

func TestSeqSet(t *testing.T) {
	var s seqSet
	in := map[uint64]bool{}
	order := []uint64{5, 7, 6, 1, 3, 2, 10, 4, 9, 8, 20, 19, 18}
	for _, q := range order {
		require.False(t, s.contains(q))
		s.add(q)
		in[q] = true
		for x := uint64(0); x <= 21; x++ {
			require.Equal(t, in[x], s.contains(x), "after adding %d: %d", q, x)
		}
	}
	assert.Equal(t, []SeqRange{{1, 10}, {18, 20}}, s.ranges())
	s.add(30)
	assert.Equal(t, uint64(7+9), s.squeeze(1))
	assert.Equal(t, []SeqRange{{1, 30}}, s.ranges())
}

func TestSanitizeVhost(t *testing.T) {
	for in, want := range map[string]string{
		"WWW.Example.COM": "www.example.com", "": OtherVhost, "..": OtherVhost, "a/b": "a_b", "x y%": "x_y_",
	} {
		assert.Equal(t, want, sanitizeVhost(in), in)
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(&state{Files: []stateFile{{"a", 1}}, Seen: []stateEpoch{{"g", "p", 1, []SeqRange{{1, 2}, {4, 9}}}}}))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"seen":[{"ranges":[{"Lo":5,"Hi":1}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeState(data)
		if err != nil {
			return
		}
		again, err := decodeState(encodeState(st))
		require.NoError(t, err)
		assert.Equal(t, st, again)
		for _, e := range st.Seen {
			s := seqSet{r: e.Ranges}
			for _, r := range e.Ranges {
				assert.True(t, s.contains(r.Lo) && s.contains(r.Hi))
			}
		}
	})
}

// TestStoreWritesDuringCommit writes while commits sync with the lock
// released, crashes, and reopens: the files hold every record the last
// commit acknowledged, each once, and the records written after it are
// accepted again (they were cut).
func TestStoreWritesDuringCommit(t *testing.T) {
	dir := t.TempDir()
	outs := []Output{{File: filepath.Join(dir, "log")}, {File: filepath.Join(dir, "vhosts", "{vhost}.log")}}
	cfg := StoreConfig{StateFile: filepath.Join(dir, "state")}
	s, err := OpenStore(outs, cfg)
	require.NoError(t, err)
	const n = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for q := uint64(1); q <= n; q++ {
			_, err := s.Write(rec("g", "p", 1, q, fmt.Sprintf("v%d", q%3), 200))
			assert.NoError(t, err)
		}
	}()
	var acked uint64
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		ps, err := s.Commit()
		require.NoError(t, err)
		for _, p := range ps {
			assert.False(t, p.Gap)
			assert.GreaterOrEqual(t, p.Next, acked, "acknowledgements never go back")
			acked = p.Next
		}
	}
	// Lines written after the last commit are cut on reopen.
	_, err = s.Write(rec("g", "p", 1, n+1, "v0", 200))
	require.NoError(t, err)
	s.crash(true)

	s, err = OpenStore(outs, cfg)
	require.NoError(t, err)
	defer s.Close()
	held := s.Held("g", "p", 1)
	require.Len(t, held, 1)
	assert.Equal(t, SeqRange{1, acked - 1}, held[0])
	for _, name := range []string{"log", "vhosts/v0.log", "vhosts/v1.log", "vhosts/v2.log"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			assert.NotContains(t, l, "torn", name)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "log"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	require.Len(t, lines, int(acked-1))
	for i, l := range lines {
		assert.Contains(t, l, fmt.Sprintf("/%d ", i+1))
	}
	ok, err := s.Write(rec("g", "p", 1, acked, "v0", 200))
	require.NoError(t, err)
	assert.True(t, ok, "a record past the commit is accepted again")
}
