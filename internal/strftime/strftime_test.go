package strftime

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const allConversions = "%a|%A|%b|%B|%c|%C|%d|%D|%e|%F|%g|%G|%h|%H|%I|%j|%k|%l|%m|%M|%n|%p|%P|%r|%R|%s|%S|%t|%T|%u|%U|%V|%w|%W|%x|%X|%y|%Y|%z|%Z|%%|%-d|%_H|%0e|%^b|%^A|%Ey|%OH|%Q|%"

// TestMatchesDate compares every conversion with GNU date (glibc's
// strftime rules) in the C locale, around year and week edges.
func TestMatchesDate(t *testing.T) {
	date, err := exec.LookPath("date")
	if err != nil {
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
			t.Fatal("date not found and PEERSCALE_REQUIRE_TOOLS=1 (apt-get install coreutils)")
		}
		t.Skip("date not found: install coreutils to compare with GNU date")
	}
	l := Compile(allConversions)
	var times []time.Time
	for _, y := range []int{1999, 2000, 2004, 2020, 2021, 2026, 2027} {
		for _, md := range [][2]int{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 7}, {2, 29}, {6, 15}, {12, 28}, {12, 29}, {12, 30}, {12, 31}} {
			times = append(times, time.Date(y, time.Month(md[0]), md[1], (y*7+md[1])%24, 5, 9, 0, time.UTC))
		}
	}
	times = append(times, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	for _, tm := range times {
		cmd := exec.Command(date, "-u", "-d", "@"+strconv.FormatInt(tm.Unix(), 10), "+"+allConversions)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		out, err := cmd.Output()
		require.NoError(t, err)
		want := strings.TrimSuffix(string(out), "\n")
		assert.Equal(t, want, string(l.Append(nil, tm)), "%s", tm)
	}
}

func TestFormat(t *testing.T) {
	tm := time.Date(2026, 3, 7, 14, 5, 9, 0, time.FixedZone("CET", 3600))
	for format, want := range map[string]string{
		"%Y-%m-%d %H:%M:%S %z %Z": "2026-03-07 14:05:09 +0100 CET",
		"%a %A %b %B %h":          "Sat Saturday Mar March Mar",
		"%D %F %R %T %e|%I%p|%j":  "03/07/26 2026-03-07 14:05 14:05:09  7|02PM|066",
		"%s %u %w %y %%%n%t%q %":  "1772888709 6 6 26 %\n\t%q %",
		"access.%Y%m%d.%H":        "access.20260307.14",
		"%-m/%-d %_H %^a %0e %EY": "3/7 14 SAT 07 2026",
		"":                        "",
	} {
		l := Compile(format)
		assert.Equal(t, want, l.Format(tm), format)
		assert.Equal(t, format, l.String())
	}
	west := time.Date(2026, 3, 7, 4, 5, 9, 0, time.FixedZone("", -(7*3600+30*60)))
	assert.Equal(t, "-0730", Compile("%z").Format(west))
}

func TestHasConversions(t *testing.T) {
	assert.False(t, Compile("a%%b%q").HasConversions())
	assert.False(t, Compile("access.log").HasConversions())
	assert.True(t, Compile("a%H").HasConversions())
	assert.True(t, Compile("a%-d").HasConversions())
}

func TestAppendCLF(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999, time.FixedZone("", -7*3600)),
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.FixedZone("", 5*3600+45*60)),
	} {
		assert.Equal(t, tm.Format("[02/Jan/2006:15:04:05 -0700]"), string(AppendCLF(nil, tm)))
		assert.Equal(t, string(AppendCLF(nil, tm)), Compile("[%d/%b/%Y:%H:%M:%S %z]").Format(tm))
	}
}

func TestAppendAllocatesNothing(t *testing.T) {
	l := Compile(allConversions)
	tm := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	buf := make([]byte, 0, 1024)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = l.Append(buf[:0], tm) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = AppendCLF(buf[:0], tm) }))
}

func BenchmarkAppend(b *testing.B) {
	tm := time.Date(2026, 3, 7, 14, 5, 9, 0, time.UTC)
	for _, bc := range []struct{ name, format string }{
		{"clf", "[%d/%b/%Y:%H:%M:%S %z]"},
		{"iso", "%Y-%m-%dT%H:%M:%S%z"},
		{"all", allConversions},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := Compile(bc.format)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = l.Append(buf[:0], tm)
			}
			b.ReportMetric(float64(len(buf)), "bytes/op")
		})
	}
	b.Run("AppendCLF", func(b *testing.B) {
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendCLF(buf[:0], tm)
		}
	})
}
