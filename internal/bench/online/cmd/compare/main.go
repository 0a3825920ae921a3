// Command compare runs one who's-online workload against MariaDB (InnoDB,
// the recent_hits table written with REPLACE), Redis (sorted sets, one Lua
// script per hit) and onlined, on loopback, with the same client
// concurrency, in interleaved rounds, and prints one table of medians like
// the "Try Some Tests" slide of Scalable Internet Architectures.
//
// online/scripts/compare.sh starts the three servers and runs it; see there.
//
//	compare -mariadb 127.0.0.1:3307 -redis 127.0.0.1:6380 -onlined 127.0.0.1:7380 \
//	        -mariadb-pid P1 -redis-pid P2 -onlined-pid P3
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/peerscale/peerscale/online/client"
)

const window = 30 * time.Minute

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type options struct {
	users, urls, conns, rounds int
	dur                        time.Duration
	mixedRate, mixedQueryRate  int
	mixedConns                 int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	mariaAddr := fs.String("mariadb", "", "MariaDB address (empty: skip)")
	redisAddr := fs.String("redis", "", "Redis address (empty: skip)")
	onlinedAddr := fs.String("onlined", "", "onlined RESP address (empty: skip)")
	mariaPID := fs.Int("mariadb-pid", 0, "MariaDB server pid, for CPU time per operation")
	redisPID := fs.Int("redis-pid", 0, "Redis server pid")
	onlinedPID := fs.Int("onlined-pid", 0, "onlined pid")
	var o options
	fs.IntVar(&o.users, "users", 100_000, "users online")
	fs.IntVar(&o.urls, "urls", 10_000, "distinct URLs (Zipf, s = 1.1)")
	fs.IntVar(&o.conns, "conns", 8, "client connections per test")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the table shows medians")
	fs.DurationVar(&o.dur, "duration", 4*time.Second, "duration of each test")
	fs.IntVar(&o.mixedRate, "mixed-rate", 5000, "hits/s of the mixed test")
	fs.IntVar(&o.mixedConns, "mixed-conns", 8, "client connections of the mixed test: half send HITs, half queries")
	fs.IntVar(&o.mixedQueryRate, "mixed-query-rate", 15000, "users-on-URL queries/s offered in the mixed test")
	only := fs.String("tests", "", "comma-separated tests to run (empty: all): hit,hit-pipe16,onurl,count,mixed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	run := tests
	if *only != "" {
		run = nil
		for _, name := range strings.Split(*only, ",") {
			i := slices.IndexFunc(tests, func(t test) bool { return t.name == name })
			if i < 0 {
				return fmt.Errorf("compare: unknown test %q", name)
			}
			run = append(run, tests[i])
		}
	}
	w := newWorkload(o)
	var targets []target
	if *mariaAddr != "" {
		t, err := newMaria(ctx, *mariaAddr, *mariaPID)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if *redisAddr != "" {
		targets = append(targets, &respTarget{name: "Redis", addr: *redisAddr, pid: *redisPID, redis: true})
	}
	if *onlinedAddr != "" {
		targets = append(targets, &respTarget{name: "onlined", addr: *onlinedAddr, pid: *onlinedPID})
	}
	if len(targets) == 0 {
		return errors.New("compare: no target given")
	}
	for _, t := range targets {
		start := time.Now()
		if err := t.preload(ctx, w); err != nil {
			return fmt.Errorf("%s: preload: %w", t.label(), err)
		}
		fmt.Fprintf(out, "# %s: %d users loaded in %s\n", t.label(), o.users, time.Since(start).Round(time.Millisecond))
	}
	res := map[string]map[string][]result{} // test -> target -> rounds
	for r := range o.rounds {
		for _, tc := range run {
			for i := range targets {
				t := targets[(i+r)%len(targets)] // rotate the order each round
				rs, err := runTest(ctx, t, tc, w, o)
				if errors.Is(err, errUnsupported) {
					continue
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", t.label(), tc.name, err)
				}
				if res[tc.name] == nil {
					res[tc.name] = map[string][]result{}
				}
				res[tc.name][t.label()] = append(res[tc.name][t.label()], rs)
				fmt.Fprintf(out, "# round %d %-10s %-8s %s\n", r+1, tc.name, t.label(), rs)
			}
		}
	}
	printTable(out, targets, run, res, o)
	return nil
}

// workload is the shared trace: user names, URLs and a Zipf source.
type workload struct {
	users, urls []string
}

func newWorkload(o options) *workload {
	w := &workload{}
	for i := range o.users {
		w.users = append(w.users, "user-"+strconv.Itoa(1_000_000+i))
	}
	for i := range o.urls {
		w.urls = append(w.urls, "/articles/"+strconv.Itoa(i)+".html")
	}
	return w
}

type picker struct {
	rng *rand.Rand
	z   *rand.Zipf
	w   *workload
}

func (w *workload) picker(seed uint64) *picker {
	rng := rand.New(rand.NewPCG(seed, 42))
	return &picker{rng: rng, z: rand.NewZipf(rng, 1.1, 1, uint64(len(w.urls)-1)), w: w}
}

func (p *picker) user() string { return p.w.users[p.rng.IntN(len(p.w.users))] }
func (p *picker) url() string  { return p.w.urls[p.z.Uint64()] }

var errUnsupported = errors.New("not supported")

type hitOp struct {
	user, url string
	ms        int64
}

type target interface {
	label() string
	preload(ctx context.Context, w *workload) error
	dial(ctx context.Context) (conn, error)
	cpu() time.Duration // CPU time of the server process so far; 0 if unknown
}

type conn interface {
	hit(ctx context.Context, h hitOp) error
	hits(ctx context.Context, hs []hitOp) error // pipelined
	onURL(ctx context.Context, url string, cutoff int64) error
	count(ctx context.Context, cutoff int64) error
	close()
}

// procCPU reads utime+stime of pid from /proc.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}

// --- tests

type test struct {
	name string
	// run drives one connection until deadline; lat records one latency.
	run func(ctx context.Context, c conn, p *picker, worker int, o options, deadline time.Time, lat func(time.Duration)) (ops int, err error)
	// note describes the test in the table.
	note string
}

var tests = []test{
	{name: "hit", note: "HIT, 1 in flight per connection", run: func(ctx context.Context, c conn, p *picker, _ int, _ options, dl time.Time, lat func(time.Duration)) (int, error) {
		n := 0
		for time.Now().Before(dl) {
			t0 := time.Now()
			if err := c.hit(ctx, hitOp{p.user(), p.url(), t0.UnixMilli()}); err != nil {
				return n, err
			}
			lat(time.Since(t0))
			n++
		}
		return n, nil
	}},
	{name: "hit-pipe16", note: "HIT, 16 in flight per connection", run: func(ctx context.Context, c conn, p *picker, _ int, _ options, dl time.Time, lat func(time.Duration)) (int, error) {
		n := 0
		hs := make([]hitOp, 16)
		for time.Now().Before(dl) {
			t0 := time.Now()
			for i := range hs {
				hs[i] = hitOp{p.user(), p.url(), t0.UnixMilli()}
			}
			if err := c.hits(ctx, hs); err != nil {
				return n, err
			}
			lat(time.Since(t0))
			n += len(hs)
		}
		return n, nil
	}},
	{name: "onurl", note: "users on a URL, newest 30", run: func(ctx context.Context, c conn, p *picker, _ int, _ options, dl time.Time, lat func(time.Duration)) (int, error) {
		n := 0
		for time.Now().Before(dl) {
			t0 := time.Now()
			if err := c.onURL(ctx, p.url(), t0.Add(-window).UnixMilli()); err != nil {
				return n, err
			}
			lat(time.Since(t0))
			n++
		}
		return n, nil
	}},
	{name: "count", note: "users online", run: func(ctx context.Context, c conn, p *picker, _ int, _ options, dl time.Time, lat func(time.Duration)) (int, error) {
		n := 0
		for time.Now().Before(dl) {
			t0 := time.Now()
			if err := c.count(ctx, t0.Add(-window).UnixMilli()); err != nil {
				return n, err
			}
			lat(time.Since(t0))
			n++
		}
		return n, nil
	}},
	{name: "mixed", note: "paced HITs (half of -mixed-conns) + paced users-on-URL queries (the other half)", run: func(ctx context.Context, c conn, p *picker, worker int, o options, dl time.Time, lat func(time.Duration)) (int, error) {
		pacers := max(1, o.mixedConns/2)
		if worker >= pacers {
			// Query workers: their count is reported separately (negative).
			n := 0
			err := paced(dl, o.mixedQueryRate, o.mixedConns-pacers, worker-pacers, func(time.Time) error {
				n++
				return c.onURL(ctx, p.url(), time.Now().Add(-window).UnixMilli())
			})
			return -n, err
		}
		n := 0
		err := paced(dl, o.mixedRate, pacers, worker, func(sched time.Time) error {
			if err := c.hit(ctx, hitOp{p.user(), p.url(), time.Now().UnixMilli()}); err != nil {
				return err
			}
			lat(time.Since(sched)) // from the scheduled time: no coordinated omission
			n++
			return nil
		})
		return n, err
	}},
}

// paced calls op at rate/workers per second until dl, worker i of workers
// offset within the interval; op gets its scheduled time. A late op is
// not skipped: the schedule catches up.
func paced(dl time.Time, rate, workers, i int, op func(sched time.Time) error) error {
	interval := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
	next := time.Now().Add(time.Duration(i) * interval / time.Duration(workers))
	for next.Before(dl) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		if err := op(next); err != nil {
			return err
		}
		next = next.Add(interval)
	}
	return nil
}

type result struct {
	opsPerSec   float64
	p50, p99    time.Duration
	cpuPerOp    time.Duration // server CPU per operation
	queriesRate float64       // mixed: users-on-URL queries/s
}

func (r result) String() string {
	s := fmt.Sprintf("%10.0f ops/s  p50 %8s  p99 %8s", r.opsPerSec, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
	if r.cpuPerOp > 0 {
		s += fmt.Sprintf("  server CPU %6.1f µs/op", float64(r.cpuPerOp)/float64(time.Microsecond))
	}
	if r.queriesRate > 0 {
		s += fmt.Sprintf("  queries %8.0f/s", r.queriesRate)
	}
	return s
}

func runTest(ctx context.Context, t target, tc test, w *workload, o options) (result, error) {
	nconns := o.conns
	if tc.name == "mixed" {
		nconns = o.mixedConns
	}
	conns := make([]conn, nconns)
	for i := range conns {
		c, err := t.dial(ctx)
		if err != nil {
			return result{}, err
		}
		conns[i] = c
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	var (
		mu      sync.Mutex
		lats    []time.Duration
		ops     atomic.Int64
		queries atomic.Int64
		wg      sync.WaitGroup
		errs    = make([]error, nconns)
	)
	cpu0 := t.cpu()
	start := time.Now()
	deadline := start.Add(o.dur)
	for i, c := range conns {
		wg.Go(func() {
			var mine []time.Duration
			n, err := tc.run(ctx, c, w.picker(uint64(time.Now().UnixNano())+uint64(i)), i, o, deadline, func(d time.Duration) { mine = append(mine, d) })
			if n < 0 {
				queries.Add(int64(-n))
			} else {
				ops.Add(int64(n))
			}
			errs[i] = err
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := t.cpu() - cpu0
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	slices.Sort(lats)
	q := func(f float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(f*float64(len(lats))))]
	}
	r := result{
		opsPerSec: float64(ops.Load()) / elapsed.Seconds(),
		p50:       q(0.50),
		p99:       q(0.99),
	}
	if total := ops.Load() + queries.Load(); cpu > 0 && total > 0 {
		r.cpuPerOp = cpu / time.Duration(total)
	}
	if queries.Load() > 0 {
		r.queriesRate = float64(queries.Load()) / elapsed.Seconds()
	}
	return r, nil
}

// --- RESP targets: Redis and onlined

type respTarget struct {
	name  string
	addr  string
	pid   int
	redis bool
	sha   string
}

func (t *respTarget) label() string      { return t.name }
func (t *respTarget) cpu() time.Duration { return procCPU(t.pid) }

// hitScript is the per-hit Lua script: a hash user -> URL, a sorted set of
// everyone by last hit and one sorted set per URL; an older hit is
// ignored.
const hitScript = `
local t = tonumber(ARGV[3])
local old = redis.call('ZSCORE', 'online', ARGV[1])
if old and tonumber(old) > t then return 0 end
local ourl = redis.call('HGET', 'where', ARGV[1])
if ourl and ourl ~= ARGV[2] then redis.call('ZREM', 'url:' .. ourl, ARGV[1]) end
redis.call('HSET', 'where', ARGV[1], ARGV[2])
redis.call('ZADD', 'online', t, ARGV[1])
redis.call('ZADD', 'url:' .. ARGV[2], t, ARGV[1])
return 1
`

func (t *respTarget) dial(ctx context.Context) (conn, error) {
	c, err := client.Dial(ctx, t.addr, client.Config{})
	if err != nil {
		return nil, err
	}
	return &respConn{t: t, c: c}, nil
}

func (t *respTarget) preload(ctx context.Context, w *workload) error {
	c, err := client.Dial(ctx, t.addr, client.Config{})
	if err != nil {
		return err
	}
	defer c.Close()
	if t.redis {
		if _, err := c.Do(ctx, "FLUSHALL"); err != nil {
			return err
		}
		r, err := c.Do(ctx, "SCRIPT", "LOAD", hitScript)
		if err != nil {
			return err
		}
		t.sha, _ = r.(string)
	}
	rc := &respConn{t: t, c: c}
	p := w.picker(1)
	now := time.Now()
	var batch []hitOp
	for i, u := range w.users {
		// Spread over the last 10 minutes, oldest first.
		ms := now.Add(-10 * time.Minute).Add(time.Duration(i) * 10 * time.Minute / time.Duration(len(w.users))).UnixMilli()
		batch = append(batch, hitOp{u, p.url(), ms})
		if len(batch) == 1000 {
			if err := rc.hits(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return rc.hits(ctx, batch)
}

type respConn struct {
	t    *respTarget
	c    *client.Client
	cmds [][]string
}

func (c *respConn) cmd(h hitOp) []string {
	ms := strconv.FormatInt(h.ms, 10)
	if c.t.redis {
		return []string{"EVALSHA", c.t.sha, "0", h.user, h.url, ms}
	}
	return []string{"HIT", h.user, h.url, ms}
}

func (c *respConn) hit(ctx context.Context, h hitOp) error {
	_, err := c.c.Do(ctx, c.cmd(h)...)
	return err
}

func (c *respConn) hits(ctx context.Context, hs []hitOp) error {
	if len(hs) == 0 {
		return nil
	}
	c.cmds = c.cmds[:0]
	for _, h := range hs {
		c.cmds = append(c.cmds, c.cmd(h))
	}
	rs, err := c.c.Pipeline(ctx, c.cmds)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if e, ok := r.(*client.Error); ok {
			return e
		}
	}
	return nil
}

func (c *respConn) onURL(ctx context.Context, url string, cutoff int64) error {
	var err error
	if c.t.redis {
		_, err = c.c.Do(ctx, "ZREVRANGEBYSCORE", "url:"+url, "+inf", "("+strconv.FormatInt(cutoff, 10), "WITHSCORES", "LIMIT", "0", "30")
	} else {
		_, err = c.c.Do(ctx, "ONURL", url, "LIMIT", "30", "WITHTIMES")
	}
	return err
}

func (c *respConn) count(ctx context.Context, cutoff int64) error {
	var err error
	if c.t.redis {
		_, err = c.c.Do(ctx, "ZCOUNT", "online", "("+strconv.FormatInt(cutoff, 10), "+inf")
	} else {
		_, err = c.c.Do(ctx, "COUNT")
	}
	return err
}

func (c *respConn) close() { c.c.Close() }

// --- MariaDB

type mariaTarget struct {
	db  *sql.DB
	pid int
}

func newMaria(ctx context.Context, addr string, pid int) (*mariaTarget, error) {
	root, err := sql.Open("mysql", "root@tcp("+addr+")/")
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if _, err := root.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS online"); err != nil {
		return nil, fmt.Errorf("mariadb: %w", err)
	}
	db, err := sql.Open("mysql", "root@tcp("+addr+")/online")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	return &mariaTarget{db: db, pid: pid}, nil
}

func (t *mariaTarget) label() string      { return "MariaDB" }
func (t *mariaTarget) cpu() time.Duration { return procCPU(t.pid) }

func (t *mariaTarget) preload(ctx context.Context, w *workload) error {
	for _, q := range []string{
		"DROP TABLE IF EXISTS recent_hits",
		`CREATE TABLE recent_hits (
			user VARCHAR(64) NOT NULL PRIMARY KEY,
			url VARCHAR(255) NOT NULL,
			last_hit BIGINT NOT NULL,
			KEY url_time (url, last_hit),
			KEY time (last_hit)
		) ENGINE=InnoDB`,
	} {
		if _, err := t.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	p := w.picker(1)
	now := time.Now()
	var sb strings.Builder
	var args []any
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := t.db.ExecContext(ctx, "INSERT INTO recent_hits (user, url, last_hit) VALUES "+strings.TrimSuffix(sb.String(), ","), args...)
		sb.Reset()
		args = args[:0]
		return err
	}
	for i, u := range w.users {
		ms := now.Add(-10 * time.Minute).Add(time.Duration(i) * 10 * time.Minute / time.Duration(len(w.users))).UnixMilli()
		sb.WriteString("(?,?,?),")
		args = append(args, u, p.url(), ms)
		if len(args) == 3000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

type mariaConn struct {
	c                  *sql.Conn
	hitS, countS, urlS *sql.Stmt
}

func (t *mariaTarget) dial(ctx context.Context) (conn, error) {
	c, err := t.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	mc := &mariaConn{c: c}
	for _, s := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&mc.hitS, "REPLACE INTO recent_hits (user, url, last_hit) VALUES (?, ?, ?)"},
		{&mc.countS, "SELECT COUNT(*) FROM recent_hits WHERE last_hit > ?"},
		{&mc.urlS, "SELECT user, last_hit FROM recent_hits WHERE url = ? AND last_hit > ? ORDER BY last_hit DESC LIMIT 30"},
	} {
		if *s.dst, err = c.PrepareContext(ctx, s.q); err != nil {
			c.Close()
			return nil, err
		}
	}
	return mc, nil
}

func (c *mariaConn) hit(ctx context.Context, h hitOp) error {
	_, err := c.hitS.ExecContext(ctx, h.user, h.url, h.ms)
	return err
}

func (c *mariaConn) hits(context.Context, []hitOp) error { return errUnsupported }

func (c *mariaConn) onURL(ctx context.Context, url string, cutoff int64) error {
	rows, err := c.urlS.QueryContext(ctx, url, cutoff)
	if err != nil {
		return err
	}
	defer rows.Close()
	var u string
	var t int64
	for rows.Next() {
		if err := rows.Scan(&u, &t); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (c *mariaConn) count(ctx context.Context, cutoff int64) error {
	var n int
	return c.countS.QueryRowContext(ctx, cutoff).Scan(&n)
}

func (c *mariaConn) close() {
	c.hitS.Close()
	c.countS.Close()
	c.urlS.Close()
	c.c.Close()
}

// --- the table

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

func printTable(out io.Writer, targets []target, tests []test, res map[string]map[string][]result, o options) {
	fmt.Fprintf(out, "\n%d users online, %d URLs (Zipf 1.1), %d client connections (mixed: %d), medians of %d rounds of %s\n\n",
		o.users, o.urls, o.conns, o.mixedConns, o.rounds, o.dur)
	fmt.Fprint(out, "| test |")
	for _, t := range targets {
		fmt.Fprintf(out, " %s |", t.label())
	}
	fmt.Fprintln(out, " onlined ÷ Redis | onlined ÷ MariaDB |")
	fmt.Fprint(out, "|---|")
	for range targets {
		fmt.Fprint(out, "---:|")
	}
	fmt.Fprintln(out, "---:|---:|")
	row := func(label string, test string, f func(result) float64, format string) {
		vals := map[string]float64{}
		fmt.Fprintf(out, "| %s |", label)
		for _, t := range targets {
			rs := res[test][t.label()]
			if len(rs) == 0 {
				fmt.Fprint(out, " n/a |")
				continue
			}
			v := median(rs, f)
			vals[t.label()] = v
			fmt.Fprintf(out, " "+format+" |", v)
		}
		for _, other := range []string{"Redis", "MariaDB"} {
			if vals[other] > 0 && vals["onlined"] > 0 {
				fmt.Fprintf(out, " %.1f× |", vals["onlined"]/vals[other])
			} else {
				fmt.Fprint(out, " |")
			}
		}
		fmt.Fprintln(out)
	}
	rate := func(r result) float64 { return r.opsPerSec }
	cpu := func(r result) float64 { return float64(r.cpuPerOp) / float64(time.Microsecond) }
	for _, tc := range tests {
		if tc.name == "mixed" {
			continue
		}
		row(tc.name+": "+tc.note+", ops/s", tc.name, rate, "%.0f")
		row(tc.name+": p99 latency, ms", tc.name, func(r result) float64 { return float64(r.p99) / float64(time.Millisecond) }, "%.2f")
		row(tc.name+": server CPU, µs/op", tc.name, cpu, "%.1f")
	}
	row(fmt.Sprintf("mixed: %d HIT/s paced, HIT p99 latency, ms", o.mixedRate), "mixed", func(r result) float64 { return float64(r.p99) / float64(time.Millisecond) }, "%.2f")
	row("mixed: HIT rate achieved, /s", "mixed", rate, "%.0f")
	row(fmt.Sprintf("mixed: users-on-URL queries alongside (%d/s offered), /s", o.mixedQueryRate), "mixed", func(r result) float64 { return r.queriesRate }, "%.0f")
	fmt.Fprintln(out, "\n(p99 latency and server CPU: lower is better; their ratios read inverted.)")
}
