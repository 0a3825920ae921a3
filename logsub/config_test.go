package logsub

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSetupGolden(t *testing.T) {
	src, err := os.ReadFile("testdata/spreadlogd.conf")
	require.NoError(t, err)
	st, err := ParseSetup(src)
	require.NoError(t, err)
	assert.Equal(t, []string{"www", "api"}, st.Groups)
	require.Len(t, st.Outputs, 4)
	assert.Equal(t, "logger-a", st.Config.Name)
	assert.Equal(t, 100*time.Millisecond, st.Config.FsyncInterval)
	assert.Equal(t, int64(1<<30), st.Outputs[0].Rotate.MaxSize)
	assert.Equal(t, `" [45][0-9][0-9] `, st.Outputs[2].Match)
	assert.Equal(t, `^10\.`, st.Outputs[2].Exclude)
	assert.Equal(t, "/usr/bin/logger -t api", st.Outputs[3].Pipe)
	golden(t, "spreadlogd.conf.golden", st.Format())
	again, err := ParseSetup(st.Format())
	require.NoError(t, err)
	assert.Equal(t, st, again)
}

func TestParseSetupErrors(t *testing.T) {
	for src, line := range map[string]int{
		"":                               0,
		"Log {\n Group = g\n File = f\n": 1,
		"Log {\n File = f\n}":            1,
		"Log {\n Group = g\n}":           1,
		"Log {\n Group = g\n File = f\n Pipe = p\n}": 1,
		"Log {\n Group = \"a b\"\n File = f\n}":      1,
		"Bogus = 1\n":                                1,
		"\nName\n":                                   2,
		"Name =\n":                                   1,
		"Name = a b\n":                               1,
		"Name = \"open\n":                            1,
		"}":                                          1,
		"Log {\n Log {\n":                            2,
		"Log\n{":                                     1,
		"FsyncInterval = 0s":                         1,
		"FsyncInterval = soon":                       1,
		"MaxVhostFiles = -3":                         1,
		"Log {\n Group = g\n File = f\n RotateSize = 0\n}":            4,
		"Log {\n Group = g\n File = f\n RotateSize = 99999999999G\n}": 4,
		"Log {\n Group = g\n File = f\n RotateInterval = 1500ms\n}":   4,
		"Log {\n Group = g\n File = f\n Location = Nowhere/City\n}":   4,
		"Log {\n Group = g\n File = f\n Match = \"(\"\n}":             1,
		"Log {\n Group = g\n File = f\n Colour = red\n}":              4,
		"= 3":          1,
		"\"Name\" = 3": 1,
	} {
		_, err := ParseSetup([]byte(src))
		var ce *ConfigError
		if assert.ErrorAs(t, err, &ce, "%q", src) {
			assert.Equal(t, line, ce.Line, "%q: %v", src, err)
			assert.ErrorIs(t, err, ErrConfig)
		}
	}
}

func FuzzParseSetup(f *testing.F) {
	src, err := os.ReadFile("testdata/spreadlogd.conf")
	require.NoError(f, err)
	f.Add(src)
	f.Add([]byte("Log { Group = g\n File = \"a\\\"b\" }"))
	f.Add([]byte("Name = x # c\nLog {\nGroup=g\nPipe=cat\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseSetup(data)
		if err != nil {
			return
		}
		again, err := ParseSetup(st.Format())
		require.NoError(t, err, "%s", st.Format())
		assert.Equal(t, st, again)
	})
}
