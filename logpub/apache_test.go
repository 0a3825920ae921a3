package logpub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerscale/peerscale/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// diffFormats are logged by both servers; none depends on time or on the
// server's own port, which differ between the two.
var diffFormats = []string{
	`%h %l %u "%r" %>s %b "%{Referer}i" "%{User-Agent}i"`,
	`%m|%U|%q|%H|%s|%<s|%B|%{X-Test}i|%{X-Empty}i|%{Cookie}i|%{sid}C|%{theme}C|%400,404{Referer}i|%!200,304{Referer}i`,
	`%v|%a|%A|%h|%{c}a|%{c}h|%l|%{Host}i|%{Content-Type}o|%X|%k|%{bogus}T|%{bogus}p|%{nothere}e|%{nothere}n|%%|%>s`,
	// Only the date parts of times: the two servers see a request a few
	// milliseconds apart.
	`%{%a %A %b %B %h %e %d %m %Y %y %C %j %U %W %V %G %g %u %w %D %F %x %Z %z %%}t|%{begin:%Y}t|%{end:%Y}t|%{%-d %_m %^a}t|%{%Q}t`,
}

// diffRequests are sent byte for byte to both servers. %s is replaced by
// the Host header line. Left out: requests Apache refuses with 400 before
// it reads the headers while net/http serves them (a password in an
// absolute URI, a #fragment); TestRequestLinePassword covers the former's
// %r.
var diffRequests = []string{
	"GET /index.html HTTP/1.1\r\n%sReferer: http://r.test/\"q\"\\x\r\nUser-Agent: Mozilla \"X\" \\ y\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sUser-Agent: caf\xc3\xa9 \xff\xfe end\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sUser-Agent: a\tb\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sX-Test: a\r\nX-Test: b\r\nX-Test:  c \"d\" \r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sReferer:\r\nX-Empty: \r\nUser-Agent:\r\nConnection: close\r\n\r\n",
	"HEAD /index.html HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sIf-Modified-Since: Wed, 01 Jan 2020 00:00:00 GMT\r\nReferer: http://cond/\r\nConnection: close\r\n\r\n",
	"GET /caf%%C3%%A9?x=%%22y%%22 HTTP/1.1\r\n%sReferer: http://nf/\r\nConnection: close\r\n\r\n",
	"GET /caf\xc3\xa9/\xe2\x82\xac HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /index.html?q=\"x\"&y=\\ HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /index.html? HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /a%%22b%%5Cc HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /a/../index.html HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /./x/./../index.html HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET //index.html HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /private/secret.txt HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /private/secret.txt HTTP/1.1\r\n%sAuthorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonder")) + "\r\nConnection: close\r\n\r\n",
	"GET /private/secret.txt HTTP/1.1\r\n%sAuthorization: Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wrong")) + "\r\nConnection: close\r\n\r\n",
	"GET /private/secret.txt HTTP/1.1\r\n%sAuthorization: Basic " + base64.StdEncoding.EncodeToString([]byte("jos\xc3\xa9 \"q\":pw")) + "\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.0\r\nUser-Agent: old\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sCookie: sid=abc; theme= dark ;x=1\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sCookie: a=1; sid=\"q\\\"\r\nCookie: theme=light\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\nHost: WWW.Example.TEST:8080\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sUser-Agent: \x7f del\r\nConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%s\r\nGET /missing HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%s\r\nHEAD /index.html HTTP/1.1\r\n%s\r\nGET /index.html HTTP/1.1\r\n%s\r\nGET /x HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /index.html HTTP/1.0\r\n\r\n",
	"FOO /index.html HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET http://example.test/index.html?a=%%41 HTTP/1.1\r\n%sConnection: close\r\n\r\n",
	"GET /index.html HTTP/1.1\r\n%sUser-Agent: multi\r\n  line\r\nConnection: close\r\n\r\n",
	"GET /%%7Euser/%%2e%%2e/index.html HTTP/1.1\r\n%sConnection: close\r\n\r\n",
}

const diffHost = "Host: example.test\r\n"

func requireTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
			tb.Fatalf("%s not found and PEERSCALE_REQUIRE_TOOLS=1 (apt-get install apache2)", name)
		}
		tb.Skipf("%s not found: install Debian's apache2 to run the differential test", name)
	}
	return p
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func apacheQuote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// startApache runs apache2 in the foreground on 127.0.0.1 with one
// CustomLog per format and returns its port and the log paths.
func startApache(tb testing.TB, root string, formats []string) (int, []string) {
	tb.Helper()
	bin := requireTool(tb, "apache2")
	mods := "/usr/lib/apache2/modules"
	port := freePort(tb)
	var conf strings.Builder
	fmt.Fprintf(&conf, "ServerRoot %s\nDefaultRuntimeDir %s\nPidFile %s\nErrorLog %s\nLogLevel warn\n",
		root, root, filepath.Join(root, "httpd.pid"), filepath.Join(root, "error.log"))
	fmt.Fprintf(&conf, "Listen 127.0.0.1:%d\nServerName localhost:%d\n", port, port)
	for _, m := range []string{"mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic", "authz_user", "dir", "mime"} {
		fmt.Fprintf(&conf, "LoadModule %s_module %s/mod_%s.so\n", m, mods, m)
	}
	if os.Geteuid() == 0 {
		conf.WriteString("User www-data\nGroup www-data\n")
	}
	fmt.Fprintf(&conf, "TypesConfig /etc/mime.types\nDocumentRoot %s\nDirectoryIndex index.html\nKeepAlive On\n", filepath.Join(root, "htdocs"))
	conf.WriteString("ErrorDocument 404 \"nf\"\nErrorDocument 401 \"auth\"\nErrorDocument 501 \"ni\"\n")
	fmt.Fprintf(&conf, "<Directory />\n Require all granted\n</Directory>\n")
	fmt.Fprintf(&conf, "<Location /private>\n AuthType Basic\n AuthName private\n AuthBasicProvider file\n AuthUserFile %s\n Require valid-user\n</Location>\n",
		filepath.Join(root, "htpasswd"))
	var logs []string
	for i, f := range formats {
		p := filepath.Join(root, fmt.Sprintf("f%d.log", i))
		fmt.Fprintf(&conf, "LogFormat %s f%d\nCustomLog %s f%d\n", apacheQuote(f), i, p, i)
		logs = append(logs, p)
	}
	confPath := filepath.Join(root, "httpd.conf")
	require.NoError(tb, os.WriteFile(confPath, []byte(conf.String()), 0o644))

	cmd := exec.Command(bin, "-X", "-f", confPath)
	cmd.Env = append(os.Environ(), "TZ=UTC", "LANG=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			errLog, _ := os.ReadFile(filepath.Join(root, "error.log"))
			tb.Fatalf("apache2 did not start: %s\n%s", out.String(), errLog)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return port, logs
}

// goSite serves what the Apache configuration above serves.
func goSite(root string) http.Handler {
	docs := filepath.Join(root, "htdocs")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
			w.WriteHeader(http.StatusNotImplemented)
			io.WriteString(w, "ni")
			return
		}
		p := path.Clean("/" + r.URL.Path)
		if strings.HasPrefix(p, "/private/") {
			u, pw, ok := r.BasicAuth()
			if ok {
				SetUser(w, u)
			}
			if !ok || u != "alice" || pw != "wonder" {
				w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
				w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, "auth")
				return
			}
		}
		if p == "/" {
			p = "/index.html"
		}
		f, err := os.Open(filepath.Join(docs, filepath.FromSlash(p)))
		if err != nil {
			w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "nf")
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(w, r, p, fi.ModTime(), f)
	})
}

// exchange sends raw to addr and reads until the server closes.
func exchange(tb testing.TB, addr, raw string) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	require.NoError(tb, err)
	defer c.Close()
	require.NoError(tb, c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = io.WriteString(c, raw)
	require.NoError(tb, err)
	_, err = io.Copy(io.Discard, bufio.NewReader(c))
	require.NoError(tb, err)
}

func readLines(tb testing.TB, p string) []string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(tb, err)
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestApacheDifferential(t *testing.T) {
	requireTool(t, "apache2")
	leakcheck.Check(t)
	root := t.TempDir()
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		require.NoError(t, os.Chmod(d, 0o755)) // apache's children run as www-data
	}
	docs := filepath.Join(root, "htdocs")
	require.NoError(t, os.MkdirAll(filepath.Join(docs, "private"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(docs, "index.html"), []byte("<p>hello</p>\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(docs, "private", "secret.txt"), []byte("s3cret\n"), 0o644))
	mtime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(filepath.Join(docs, "index.html"), mtime, mtime))
	sum := sha1.Sum([]byte("wonder"))
	require.NoError(t, os.WriteFile(filepath.Join(root, "htpasswd"),
		[]byte("alice:{SHA}"+base64.StdEncoding.EncodeToString(sum[:])+"\n"), 0o644))

	port, logs := startApache(t, root, diffFormats)
	apacheAddr := fmt.Sprintf("127.0.0.1:%d", port)

	var sinks []Sink
	var bufs []*lockedBuffer
	for _, f := range diffFormats {
		b := &lockedBuffer{}
		bufs = append(bufs, b)
		sinks = append(sinks, NewWriterSink(b, MustCompile(f)))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{
		Handler:     Middleware(MultiSink(sinks...), HandlerConfig{ServerName: "localhost", Location: time.UTC})(goSite(root)),
		ConnContext: ConnContext,
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})

	matched, compared := 0, 0
	for i, tmpl := range diffRequests {
		raw := strings.ReplaceAll(tmpl, "%s", diffHost)
		raw = strings.ReplaceAll(raw, "%%", "%")
		before := len(readLines(t, logs[0]))
		goBefore := bufs[0].lines()
		exchange(t, apacheAddr, raw)
		exchange(t, ln.Addr().String(), raw)
		want := strings.Count(raw, " HTTP/1.")
		deadline := time.Now().Add(30 * time.Second)
		for len(readLines(t, logs[len(logs)-1])) < before+want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		goLines := bufs[0].lines() - goBefore
		if goLines == 0 {
			t.Logf("request %d: net/http answered it before any handler ran (Apache logged it): %q", i, raw)
			continue
		}
		for fi := range diffFormats {
			a := readLines(t, logs[fi])
			g := bufs[fi].all()
			require.GreaterOrEqual(t, len(a), before+want, "apache log %d", fi)
			for k := 0; k < want; k++ {
				compared++
				if assert.Equal(t, a[before+k], g[goBefore+k], "request %d, format %d: %q", i, fi, raw) {
					matched++
				}
			}
		}
	}
	t.Logf("%d of %d lines identical to apache2's", matched, compared)
	assert.Greater(t, compared, 3*20)
}

type lockedBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *lockedBuffer) lock() {
	if b.mu == nil {
		b.mu = make(chan struct{}, 1)
	}
	b.mu <- struct{}{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) all() []string {
	b.lock()
	defer func() { <-b.mu }()
	s := strings.TrimSuffix(b.buf.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (b *lockedBuffer) lines() int { return len(b.all()) }
