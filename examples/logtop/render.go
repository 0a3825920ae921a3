package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/peerscale/peerscale/logsub"
)

// Render draws one screen of the top view of s, ApacheTop style, in at
// most width columns and height lines.
func Render(w io.Writer, s logsub.Snapshot, width, height int) error {
	width = max(width, 40)
	var lines []string
	add := func(format string, a ...any) {
		l := fmt.Sprintf(format, a...)
		if len(l) > width {
			l = l[:width]
		}
		lines = append(lines, l)
	}
	all := s.All
	add("logtop  %s  window %s  hits %d (%.1f/s)  %s (%s/s)  dropped %d",
		s.Time.UTC().Format("2006-01-02 15:04:05"), s.Window.Round(time.Second), all.Window.Hits, all.HitsPerSec,
		size(float64(all.Window.Bytes)), size(all.BytesPerSec), s.Dropped)
	add("total %d hits %s   %s", all.Total.Hits, size(float64(all.Total.Bytes)), classes(all.Window))
	add("")
	table := func(title string, rows []logsub.Series) {
		nameW := max(width-58, 12)
		add("%-*s %8s %9s %6s %6s %6s %6s %10s", nameW, title, "HITS/S", "BYTES/S", "2xx", "3xx", "4xx", "5xx", "TOTAL")
		for _, r := range rows {
			name := r.Name
			if name == "" {
				name = "-"
			}
			if len(name) > nameW {
				name = name[:nameW-1] + "~"
			}
			add("%-*s %8.1f %9s %6d %6d %6d %6d %10d", nameW, name, r.HitsPerSec, size(r.BytesPerSec),
				r.Window.Status[2], r.Window.Status[3], r.Window.Status[4], r.Window.Status[5], r.Total.Hits)
		}
		add("")
	}
	table("SERVER", s.Servers)
	table("VHOST", s.Vhosts)
	top := func(title string, rows []logsub.Count) {
		keyW := max(width-11, 20)
		add("%-*s %10s", keyW, title, "HITS")
		for _, c := range rows {
			k := strings.Map(func(r rune) rune {
				if r < ' ' || r == 0x7f {
					return '?'
				}
				return r
			}, c.Key)
			if len(k) > keyW {
				k = k[:keyW-1] + "~"
			}
			add("%-*s %10d", keyW, k, c.Hits)
		}
		add("")
	}
	top("TOP URLS", s.TopURLs)
	top("TOP REFERRERS", s.TopReferrers)
	if height > 0 && len(lines) > height {
		lines = lines[:height]
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n")+"\n")
	return err
}

func classes(c logsub.Counts) string {
	var b strings.Builder
	for i := 1; i <= 5; i++ {
		pct := 0.0
		if c.Hits > 0 {
			pct = 100 * float64(c.Status[i]) / float64(c.Hits)
		}
		fmt.Fprintf(&b, "%dxx %5.1f%%  ", i, pct)
	}
	return strings.TrimSpace(b.String())
}

func size(v float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", v)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
