package proxycache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/peerscale/peerscale/proxycache"
)

// The HTTP caching test suite (https://cache-tests.fyi/), npm package
// http-cache-tests, run against a Cache on loopback.
const (
	cacheTestsVersion  = "0.4.5"
	cacheTestsRequired = 151 // required tests that must pass (of 157)
)

// countScript prints, as JSON, the required tests of the suite that passed
// and those that did not, given results.json. The Surrogate-Control tests
// (CDN-specific, not RFC 9111) are counted apart, as the published results
// count them.
const countScript = `import fs from 'fs'
import tests from './tests/index.mjs'
import surrogate from './tests/surrogate-control.mjs'
tests.push(surrogate)
const results = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const out = { passed: [], failed: [], why: {}, total: 0, surrogatePassed: 0, surrogateTotal: 0 }
for (const suite of tests) {
  for (const t of suite.tests) {
    if (t.browser_only || (t.kind !== undefined && t.kind !== 'required')) continue
    if (suite === surrogate) {
      out.surrogateTotal++
      if (results[t.id] === true) out.surrogatePassed++
      continue
    }
    out.total++
    if (results[t.id] === true) out.passed.push(t.id); else { out.failed.push(t.id); out.why[t.id] = results[t.id] }
  }
}
console.log(JSON.stringify(out))
`

// runScript runs the suite like the package's cli.mjs, with two
// differences. The package's runner waits for each chunk of tests with
// Promise.all and nothing else keeps Node's event loop alive, so one test
// whose fetch never settles (seen on a loaded machine when a connection
// closes mid-body) ends the process early with no output and exit status
// 0. Here a timer keeps the process alive, every test gets a deadline and
// a test that misses it is reported failed by name; and the results are
// written before exiting, flushed, even when something else went wrong.
const runScript = `import fetch from 'node-fetch'
import * as config from './client/config.mjs'
import { makeCacheTest, testResults } from './client/test.mjs'
import tests from './tests/index.mjs'
import surrogate from './tests/surrogate-control.mjs'
tests.push(surrogate)
config.setFetch(fetch)
config.setBaseUrl(process.env.npm_config_base)
config.setUseBrowserCache(false)
const deadline = 60000
const timedOut = {}
process.on('unhandledRejection', err => console.error('unhandled rejection:', err))
const keepAlive = setInterval(() => {}, 1000)
const all = []
for (const suite of tests) for (const t of suite.tests) if (!t.browser_only) all.push(t)
function withDeadline (t) {
  let timer
  const late = new Promise(resolve => {
    timer = setTimeout(() => {
      if (!(t.id in testResults)) {
        timedOut[t.id] = ['Timeout', 'no result within ' + deadline + ' ms']
        console.error('test ' + t.id + ' did not finish within ' + deadline + ' ms')
      }
      resolve()
    }, deadline)
  })
  return Promise.race([makeCacheTest(t), late]).finally(() => clearTimeout(timer))
}
for (let i = 0; i < all.length; i += 100) {
  await Promise.all(all.slice(i, i + 100).map(withDeadline))
}
clearInterval(keepAlive)
const out = {}
for (const id of Object.keys({ ...timedOut, ...testResults }).sort()) out[id] = id in testResults ? testResults[id] : timedOut[id]
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
`

func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s not found and PEERSCALE_REQUIRE_TOOLS=1 (apt-get install nodejs npm)", n)
			}
			t.Skipf("%s not found: install nodejs and npm to run the HTTP caching test suite", n)
		}
	}
}

// cacheTestsDir installs the suite once per machine under the user cache
// directory and pins its server to 127.0.0.1.
func cacheTestsDir(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "peerscale", "http-cache-tests-"+cacheTestsVersion)
	pkg := filepath.Join(dir, "package")
	if _, err := os.Stat(filepath.Join(pkg, "node_modules", "node-fetch")); err != nil {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		run(t, dir, "npm", "pack", "--silent", "http-cache-tests@"+cacheTestsVersion)
		run(t, dir, "tar", "xzf", "http-cache-tests-"+cacheTestsVersion+".tgz")
		run(t, pkg, "npm", "install", "--silent", "--omit=dev", "--no-audit", "--no-fund")
	}
	srv := filepath.Join(pkg, "server", "server.mjs")
	b, err := os.ReadFile(srv)
	require.NoError(t, err)
	if s := string(b); !strings.Contains(s, "server.listen(port, '127.0.0.1')") {
		require.Contains(t, s, "server.listen(port)")
		s = strings.Replace(s, "server.listen(port)", "server.listen(port, '127.0.0.1')", 1)
		require.NoError(t, os.WriteFile(srv, []byte(s), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "peerscale-count.mjs"), []byte(countScript), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "peerscale-run.mjs"), []byte(runScript), 0o644))
	return pkg
}

func run(t *testing.T, dir, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s %v: %s", name, args, stderr.String())
	return out
}

// serverOutput collects the test server's output and reports the port it
// says it listens on ("Listening on http://127.0.0.1:PORT/").
type serverOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	port chan int
	sent bool
}

var listeningRE = regexp.MustCompile(`Listening on https?://127\.0\.0\.1:(\d+)/`)

func (o *serverOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	if !o.sent {
		if m := listeningRE.FindSubmatch(o.buf.Bytes()); m != nil {
			if p, err := strconv.Atoi(string(m[1])); err == nil {
				o.sent = true
				o.port <- p
			}
		}
	}
	return len(b), nil
}

func (o *serverOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func TestHTTPCacheTests(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the HTTP caching test suite for about a minute")
	}
	requireTool(t, "node", "npm")
	pkg := cacheTestsDir(t)

	// The server binds port 0 on 127.0.0.1 and prints the port it got, so
	// no other test can take it between a probe and the bind.
	server := exec.Command("node", "server/server.mjs")
	server.Dir = pkg
	server.Env = append(os.Environ(),
		"npm_package_config_protocol=http",
		"npm_config_port=0",
		"npm_config_pidfile="+filepath.Join(t.TempDir(), "server.pid"))
	serverOut := &serverOutput{port: make(chan int, 1)}
	server.Stdout, server.Stderr = serverOut, serverOut
	require.NoError(t, server.Start())
	t.Cleanup(func() {
		_ = server.Process.Kill()
		_ = server.Wait()
	})
	var port int
	select {
	case port = <-serverOut.port:
	case <-time.After(30 * time.Second):
		t.Fatalf("test server did not report its port: %s", serverOut)
	}
	originAddr := fmt.Sprintf("127.0.0.1:%d", port)

	origin := &url.URL{Scheme: "http", Host: originAddr}
	c, err := proxycache.New(t.TempDir(), map[string]*url.URL{"127.0.0.1": origin}, proxycache.Config{})
	require.NoError(t, err)
	proxy := httptest.NewServer(c)
	t.Cleanup(func() {
		proxy.Close()
		require.NoError(t, c.Close())
	})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if id := os.Getenv("HTTP_CACHE_TEST_ID"); id != "" {
		cli := exec.CommandContext(ctx, "node", "--no-warnings", "cli.mjs")
		cli.Dir = pkg
		cli.Env = append(os.Environ(), "npm_config_base="+proxy.URL, "npm_package_config_id=", "npm_config_id="+id)
		out, err := cli.CombinedOutput()
		t.Logf("%s", out)
		require.NoError(t, err)
		return
	}
	cli := exec.CommandContext(ctx, "node", "--no-warnings", "peerscale-run.mjs")
	cli.Dir = pkg
	cli.Env = append(os.Environ(), "npm_config_base="+proxy.URL)
	var stderr bytes.Buffer
	cli.Stderr = &stderr
	results, err := cli.Output()
	require.NoError(t, err, "%s", stderr.String())
	if stderr.Len() > 0 {
		t.Logf("the suite's runner said: %s", stderr.String())
	}
	require.True(t, json.Valid(results), "no results from the suite: %q %s; test server: %s", results, stderr.String(), serverOut)
	resultsFile := filepath.Join(t.TempDir(), "results.json")
	require.NoError(t, os.WriteFile(resultsFile, results, 0o644))

	var count struct {
		Passed []string                   `json:"passed"`
		Failed []string                   `json:"failed"`
		Why    map[string]json.RawMessage `json:"why"`
		Total  int                        `json:"total"`

		SurrogatePassed int `json:"surrogatePassed"`
		SurrogateTotal  int `json:"surrogateTotal"`
	}
	require.NoError(t, json.Unmarshal(run(t, pkg, "node", "peerscale-count.mjs", resultsFile), &count))
	sort.Strings(count.Failed)
	t.Logf("http-cache-tests %s: %d of %d required tests passed (Surrogate-Control, apart: %d of %d); failed: %s",
		cacheTestsVersion, len(count.Passed), count.Total, count.SurrogatePassed, count.SurrogateTotal, strings.Join(count.Failed, " "))
	for _, id := range count.Failed {
		t.Logf("  %s: %s", id, count.Why[id])
	}
	passed := len(count.Passed)
	if passed < cacheTestsRequired && len(count.Failed) <= 2*(count.Total-cacheTestsRequired) {
		// Many tests wait a second or more between requests and compare
		// ages: on a loaded machine a few fail for time alone. Each failed
		// test runs once more on its own; those that pass then count.
		var again []string
		for _, id := range count.Failed {
			one := exec.CommandContext(ctx, "node", "--no-warnings", "cli.mjs")
			one.Dir = pkg
			one.Env = append(os.Environ(), "npm_config_base="+proxy.URL, "npm_package_config_id=", "npm_config_id="+id)
			out, err := one.CombinedOutput()
			if err == nil && strings.Contains(string(out), "\u2705") {
				again = append(again, id)
			}
		}
		passed += len(again)
		t.Logf("passed when run again on their own: %s (%d of %d required tests in all)", strings.Join(again, " "), passed, count.Total)
	}
	require.GreaterOrEqual(t, passed, cacheTestsRequired)
}
