package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/peerscale/peerscale/bus"
)

// render writes one frame of the status screen in a single Write.
func (d *demo) render() {
	var b bytes.Buffer
	el := time.Since(d.start).Truncate(100 * time.Millisecond)
	if d.tty {
		b.WriteString("\x1b[H\x1b[2J")
	} else {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "=== peerscale demo   t=%v of %v   bus %s   %s\n", el, d.opt.duration, d.opt.busKind, d.dir)

	fmt.Fprintf(&b, "\nMEMBERS AND VIEWS (group %q; first member of a view leads it)\n", chatGroup)
	for _, m := range d.members {
		if m.dead.Load() {
			fmt.Fprintf(&b, "  %-7s bus %-21s http %-21s killed\n", m.name, m.busAddr, m.httpAddr)
			continue
		}
		view := "no view yet"
		if v := m.view.Load(); v != nil {
			view = fmt.Sprintf("view %d %s", v.ID.Seq, memberNames(v.Members))
		}
		fmt.Fprintf(&b, "  %-7s bus %-21s http %-21s %s\n", m.name, m.busAddr, m.httpAddr, view)
	}
	fmt.Fprintf(&b, "  %-7s bus %-21s runs the logger (not in group %q)\n", "loghost", d.loghostAddr, chatGroup)

	fmt.Fprintf(&b, "\nDELIVERY LEVELS (messages received; each member sends one per level every 0.5 s)\n  %-10s", "level")
	for _, m := range d.members {
		fmt.Fprintf(&b, " %7s", m.name)
	}
	b.WriteString("\n")
	for _, l := range levels {
		fmt.Fprintf(&b, "  %-10s", l)
		if d.members[0].unsup[l].Load() {
			fmt.Fprintf(&b, " unsupported by bus/%s\n", d.opt.busKind)
			continue
		}
		for _, m := range d.members {
			fmt.Fprintf(&b, " %7d", m.recv[l].Load())
		}
		b.WriteString("\n")
	}

	fmt.Fprintf(&b, "\nCACHE (proxycache in front of the origin; purges over group %q)\n", purgeGroup)
	fmt.Fprintf(&b, "  %-6s %8s %8s %8s %8s %8s\n", "member", "requests", "hits", "misses", "objects", "purges")
	for _, m := range d.members {
		st := m.cache.Stats()
		fmt.Fprintf(&b, "  %-6s %8d %8d %8d %8d %8d\n", m.name, m.requests.Load(), st.Hits, st.Misses, st.Objects, st.Purges)
	}
	ok, now := d.load.ok.Load(), time.Now()
	if dt := now.Sub(d.prevAt).Seconds(); !d.prevAt.IsZero() && dt > 0.5 {
		d.rate = float64(ok-d.prevOK) / dt
		d.prevOK, d.prevAt = ok, now
	} else if d.prevAt.IsZero() {
		d.prevOK, d.prevAt = ok, now
	}
	fmt.Fprintf(&b, "  load: %d requests (%.0f/s, at most %d/s), %d ok, %d errors; origin answered %d requests\n",
		d.load.requests.Load(), d.rate, d.opt.rate, ok, d.load.errors.Load(), d.origin.requests.Load())

	ls := d.logger.Stats() // first, so that it never shows more lines than records published
	var published, acked uint64
	for _, m := range d.members {
		st := m.pub.Stats()
		published += st.Records
		acked += st.Acked
	}
	fmt.Fprintf(&b, "\nACCESS LOG (logpub on every request -> group %q -> logsub.Logger on loghost)\n", logGroup)
	fmt.Fprintf(&b, "  published %d, acknowledged %d, lines logged %d to %s\n", published, acked, ls.Lines, d.logFile)

	fmt.Fprintf(&b, "\nWHO'S ONLINE (online.Index fed from group %q on %s)\n", logGroup, d.members[0].name)
	fmt.Fprintf(&b, "  users online %d", d.index.Count())
	if url, who := d.popular(); url != "" {
		fmt.Fprintf(&b, "; on %s: %s", url, who)
	}
	b.WriteString("\n")

	fmt.Fprintf(&b, "\nVIRTUAL IPs (vip, dry-run backend: nothing is configured)\n")
	owners := d.owners()
	for _, name := range d.vifNames {
		owner := "-"
		if o := owners[name]; o != nil {
			owner = o.name
		}
		fmt.Fprintf(&b, "  %-5s %-14s %s\n", name, d.vipAddr[name], owner)
	}

	b.WriteString("\nEVENTS\n")
	d.mu.Lock()
	ev := d.events[max(0, len(d.events)-8):]
	for _, e := range ev {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	d.mu.Unlock()
	d.out.Write(b.Bytes())
}

// popular returns the most visited URL of the index and up to four of its
// users, newest first.
func (d *demo) popular() (string, string) {
	best, n := "", 0
	for _, dir := range []string{"thumbs", "photos"} {
		for i := range imagesPerDir {
			url := fmt.Sprintf("/%s/%d.png", dir, i)
			if c := d.index.CountURL(url); c > n {
				best, n = url, c
			}
		}
	}
	if best == "" {
		return "", ""
	}
	var names []string
	for _, v := range d.index.OnURL(best, 4) {
		names = append(names, v.User)
	}
	if n > len(names) {
		names = append(names, fmt.Sprintf("(%d in all)", n))
	}
	return best, strings.Join(names, " ")
}

// summary prints the totals once everything has stopped.
func (d *demo) summary(elapsed, stopping time.Duration, stopErr error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n=== summary after %v: bus %s, web members %d, one logger\n",
		elapsed.Round(100*time.Millisecond), d.opt.busKind, len(d.members))
	if d.startup > 0 {
		fmt.Fprintf(&b, "startup   cluster formed and every VIP owned in %v\n", d.startup.Round(10*time.Millisecond))
	}
	if d.logger == nil {
		d.out.Write(b.Bytes())
		return
	}
	fmt.Fprintf(&b, "requests  %d sent, %d ok, %d errors, %d retried on another member\n",
		d.load.requests.Load(), d.load.ok.Load(), d.load.errors.Load(), d.load.failover.Load())
	var hits, misses, purges, purged, published uint64
	for _, m := range d.members {
		st := m.cache.Stats()
		hits, misses, purges, purged = hits+st.Hits, misses+st.Misses, purges+st.Purges, purged+st.PurgedObjects
		published += m.pub.Stats().Records
	}
	ratio := 0.0
	if hits+misses > 0 {
		ratio = 100 * float64(hits) / float64(hits+misses)
	}
	fmt.Fprintf(&b, "cache     hits %d (%.0f%%), misses %d, purges applied %d (%d objects), origin requests %d\n",
		hits, ratio, misses, purges, purged, d.origin.requests.Load())
	ls := d.logger.Stats()
	fmt.Fprintf(&b, "log       published %d, lines logged %d, file %s has %d lines\n",
		published, ls.Lines, d.logFile, countLines(d.logFile))
	if k := d.kill; k != nil {
		if n := k.victim.pub.Stats().Retained; n > 0 {
			fmt.Fprintf(&b, "          %d records of %s stay unacknowledged in its journal (sent again when it restarts; the logger drops duplicates)\n", n, k.victim.name)
		}
	}
	fmt.Fprintf(&b, "online    users online %d\n", d.index.Count())

	// The owners as the survivors last saw them (they hand over at
	// shutdown, so this is from before it).
	owned := 0
	var list []string
	for _, name := range d.vifNames {
		o := d.lastOwners[name]
		if o != "" {
			owned++
		} else {
			o = "-"
		}
		list = append(list, name+"="+o)
	}
	if owned == len(d.vifNames) {
		fmt.Fprintf(&b, "vips      every VIP owned (%d of %d): %s\n", owned, len(d.vifNames), strings.Join(list, " "))
	} else {
		fmt.Fprintf(&b, "vips      %d of %d VIPs owned: %s\n", owned, len(d.vifNames), strings.Join(list, " "))
	}
	d.mu.Lock()
	k := d.kill
	d.mu.Unlock()
	if k != nil {
		fmt.Fprintf(&b, "killed    %s at %v\n", k.victim.name, k.at.Round(100*time.Millisecond))
		if k.view != nil {
			fmt.Fprintf(&b, "recovery  view %d %s after %v\n", k.view.ID.Seq, memberNames(k.view.Members), k.viewAt.Round(time.Millisecond))
		} else {
			fmt.Fprintf(&b, "recovery  no view without %s yet\n", k.victim.name)
		}
		if len(k.vips) == 0 {
			fmt.Fprintf(&b, "moved     nothing: %s held no virtual IP\n", k.victim.name)
		} else if k.vipsAt > 0 {
			var moves []string
			for _, name := range k.vips {
				moves = append(moves, fmt.Sprintf("%s %s->%s", name, k.victim.name, k.movedTo[name]))
			}
			fmt.Fprintf(&b, "moved     every VIP of %s moved after %v: %s\n", k.victim.name, k.vipsAt.Round(time.Millisecond), strings.Join(moves, ", "))
		} else {
			fmt.Fprintf(&b, "moved     the VIPs of %s were not taken over\n", k.victim.name)
		}
		fmt.Fprintf(&b, "logging   continued: %d lines logged after the kill\n", ls.Lines-k.linesAt)
	}
	if stopErr == nil {
		fmt.Fprintf(&b, "shutdown  clean, in %v\n", stopping.Round(10*time.Millisecond))
	} else {
		fmt.Fprintf(&b, "shutdown  in %v: %v\n", stopping.Round(10*time.Millisecond), stopErr)
	}
	d.out.Write(b.Bytes())
}

// memberNames lists the names of ids, in order, in brackets.
func memberNames(ids []bus.MemberID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.Name
	}
	return "[" + strings.Join(names, " ") + "]"
}

// countLines counts the lines of the file at path (-1 if unreadable).
func countLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}
