package logpub

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

const strftimeAll = "%a|%A|%b|%B|%c|%C|%d|%D|%e|%F|%g|%G|%h|%H|%I|%j|%k|%l|%m|%M|%n|%p|%P|%r|%R|%s|%S|%t|%T|%u|%U|%V|%w|%W|%x|%X|%y|%Y|%z|%Z|%%|%-d|%_H|%0e|%^b|%^A|%Ey|%OH|%Q|%"

// TestStrftimeMatchesDate compares the strftime conversions with GNU date
// (glibc's strftime rules) in the C locale, around year and week edges.
func TestStrftimeMatchesDate(t *testing.T) {
	date := requireTool(t, "date")
	prog := compileStrftime(strftimeAll)
	var times []time.Time
	for _, y := range []int{1999, 2000, 2004, 2020, 2021, 2026, 2027} {
		for _, md := range [][2]int{{1, 1}, {1, 2}, {1, 3}, {1, 4}, {1, 7}, {2, 29}, {6, 15}, {12, 28}, {12, 29}, {12, 30}, {12, 31}} {
			times = append(times, time.Date(y, time.Month(md[0]), md[1], (y*7+md[1])%24, 5, 9, 0, time.UTC))
		}
	}
	times = append(times, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	for _, tm := range times {
		cmd := exec.Command(date, "-u", "-d", "@"+strconv.FormatInt(tm.Unix(), 10), "+"+strftimeAll)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		out, err := cmd.Output()
		require.NoError(t, err)
		want := strings.TrimSuffix(string(out), "\n")
		assert.Equal(t, want, string(appendStrftime(nil, prog, tm)), "%s", tm)
	}
}
