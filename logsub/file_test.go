package logsub

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	assert.Equal(t, string(want), string(got))
}

// dump lists every file under dir with its content, names relative to dir.
func dump(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	var names []string
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			names = append(names, p)
		}
		return err
	}))
	slices.Sort(names)
	for _, p := range names {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "== %s\n%s", filepath.ToSlash(rel), data)
	}
	return b.String()
}

func TestFileRotateByTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var rotations []string
		f, err := OpenFile(filepath.Join(dir, "access.%Y-%m-%d-%H%M"), FileConfig{
			Interval: 15 * time.Minute,
			OnRotate: func(old, new string) error {
				rotations = append(rotations, filepath.Base(old)+" -> "+filepath.Base(new))
				return nil
			},
		})
		require.NoError(t, err)
		// The bubble starts at 2000-01-01 00:00:00 UTC.
		steps := []time.Duration{0, 5 * time.Minute, 9*time.Minute + 59*time.Second, time.Second, 44 * time.Minute, 3 * time.Hour}
		for i, d := range steps {
			time.Sleep(d)
			require.NoError(t, f.WriteLine(fmt.Appendf(nil, "line %d at %s", i, time.Now().UTC().Format(time.TimeOnly))))
		}
		require.NoError(t, f.Close())
		require.NoError(t, f.Close(), "Close is idempotent")
		assert.ErrorIs(t, f.WriteLine([]byte("x")), ErrClosed)
		assert.Equal(t, []string{
			". -> access.2000-01-01-0000",
			"access.2000-01-01-0000 -> access.2000-01-01-0015",
			"access.2000-01-01-0015 -> access.2000-01-01-0045",
			"access.2000-01-01-0045 -> access.2000-01-01-0345",
		}, rotations)
		golden(t, "rotate-time.golden", []byte(dump(t, dir)))
	})
}

func TestFileRotateBySizeOnLineBoundaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f, err := OpenFile(filepath.Join(dir, "log.%Y%m%d"), FileConfig{Interval: 24 * time.Hour, MaxSize: 30})
		require.NoError(t, err)
		for i, l := range []string{"aaaaaaaaa", "bbbbbbbbb", "ccccccccc", "dddddddddddddddddddddddddddddddddddddd", "e"} {
			require.NoError(t, f.WriteLine([]byte(l)), "line %d", i)
		}
		time.Sleep(24 * time.Hour)
		require.NoError(t, f.WriteLine([]byte("next day")))
		require.NoError(t, f.Close())
		got := dump(t, dir)
		golden(t, "rotate-size.golden", []byte(got))
		for _, part := range strings.Split(got, "== ")[1:] {
			_, body, _ := strings.Cut(part, "\n")
			assert.True(t, strings.HasSuffix(body, "\n"), "file ends on a line boundary: %q", part)
			assert.True(t, len(body) <= 30 || strings.Count(body, "\n") == 1, "only a lone long line exceeds MaxSize: %q", part)
		}

		// Reopening within the day skips the full files.
		f, err = OpenFile(filepath.Join(dir, "log.%Y%m%d"), FileConfig{Interval: 24 * time.Hour, MaxSize: 30})
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(dir, "log.20000102"), f.Name())
		require.NoError(t, f.Close())
	})
}

func TestFileFixedNameGetsPeriodSuffix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f, err := OpenFile(filepath.Join(dir, "access_log"), FileConfig{Interval: time.Hour})
		require.NoError(t, err)
		time.Sleep(90 * time.Minute)
		require.NoError(t, f.WriteLine([]byte("x")))
		assert.Equal(t, filepath.Join(dir, fmt.Sprintf("access_log.%d", time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC).Unix())), f.Name())
		require.NoError(t, f.Close())
	})
}

func TestFilePeriodsInLocation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		loc := time.FixedZone("X", -5*3600)
		f, err := OpenFile(filepath.Join(dir, "%Y%m%d-%H%z"), FileConfig{Interval: 24 * time.Hour, Location: loc})
		require.NoError(t, err)
		// 2000-01-01 00:00 UTC is 1999-12-31 19:00 at -0500: the local day began at 05:00 UTC the day before.
		assert.Equal(t, filepath.Join(dir, "19991231-00-0500"), f.Name())
		time.Sleep(5 * time.Hour)
		require.NoError(t, f.WriteLine([]byte("x")))
		assert.Equal(t, filepath.Join(dir, "20000101-00-0500"), f.Name())
		require.NoError(t, f.Close())
	})
}

func TestFileReopenAfterMove(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "access_log")
	f, err := OpenFile(name, FileConfig{})
	require.NoError(t, err)
	require.NoError(t, f.WriteLine([]byte("one\n")))
	require.NoError(t, f.Flush())
	require.NoError(t, os.Rename(name, name+".1"))
	require.NoError(t, f.WriteLine([]byte("two")))
	require.NoError(t, f.Reopen())
	require.NoError(t, f.WriteLine([]byte("three")))
	require.NoError(t, f.Close())
	assert.Equal(t, "== access_log\nthree\n== access_log.1\none\ntwo\n", dump(t, dir))
}

func TestFileRejectsEmbeddedNewline(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "x"), FileConfig{})
	require.NoError(t, err)
	defer f.Close()
	assert.ErrorIs(t, f.WriteLine([]byte("a\nb")), ErrBadLine)
	assert.NoError(t, f.WriteLine([]byte("a\n")))
	assert.Equal(t, int64(2), f.Size())
}

func TestFileConfigErrors(t *testing.T) {
	for _, c := range []struct {
		pattern string
		cfg     FileConfig
	}{
		{"", FileConfig{}},
		{"x", FileConfig{Interval: -time.Second}},
		{"x", FileConfig{Interval: 1500 * time.Millisecond}},
		{"x", FileConfig{MaxSize: -1}},
	} {
		_, err := OpenFile(filepath.Join(t.TempDir(), c.pattern), c.cfg)
		if c.pattern == "" {
			_, err = OpenFile("", c.cfg)
		}
		assert.ErrorIs(t, err, ErrConfig, "%+v", c)
	}
}

func TestStrftime(t *testing.T) {
	tm := time.Date(2026, 3, 7, 14, 5, 9, 0, time.FixedZone("CET", 3600))
	s := CompileStrftime("access.%Y%m%d.%H%z")
	assert.Equal(t, "access.20260307.14+0100", s.Format(tm))
	assert.Equal(t, "x/access.20260307.14+0100", string(s.Append([]byte("x/"), tm)))
	assert.Equal(t, "access.%Y%m%d.%H%z", s.String())
	assert.True(t, s.HasConversions())
	assert.False(t, CompileStrftime("a%%b%q").HasConversions())
}
