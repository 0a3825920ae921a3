package logsub

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peerscale/peerscale/logpub"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireTool returns the path of an external tool, skipping the test when
// it is missing, or failing it when PEERSCALE_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("PEERSCALE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (PEERSCALE_REQUIRE_TOOLS=1) but not installed: %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install %s); skipping", name, pkg)
	}
	return p
}

// awkwardRecords formats combined-format lines with logpub for requests
// full of what Apache escapes: quotes, backslashes, UTF-8, control bytes,
// empty and missing headers, HEAD, 304, authenticated users.
func awkwardRecords(t testing.TB, n int) []*Record {
	t.Helper()
	format, _ := logpub.NamedFormat("combined")
	f := logpub.MustCompile(format)
	start := time.Date(2026, 3, 7, 14, 5, 9, 0, time.FixedZone("", -7*3600))
	var out []*Record
	for i := range n {
		method, target, status, size := "GET", fmt.Sprintf("/page/%d?q=%d", i, i%17), 200, int64(100+i)
		r := httptest.NewRequest(method, "http://www.example.com/", nil)
		r.RequestURI = target
		r.RemoteAddr = fmt.Sprintf("192.0.2.%d:5%04d", i%250+1, i%10000)
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) test/1.0")
		r.Header.Set("Referer", "https://search.example/?q=peerscale")
		switch i % 12 {
		case 1:
			r.RequestURI = `/quote"d/back\slash`
			r.Header.Set("User-Agent", `agent "with" quotes \ and backslash`)
		case 2:
			r.RequestURI = "/caf\xc3\xa9/\xe2\x82\xac"
			r.Header.Set("Referer", "https://b\xc3\xbccher.example/")
		case 3:
			r.Header.Del("Referer")
			r.Header.Del("User-Agent")
		case 4:
			r.Header.Set("Referer", "")
			r.Header.Set("User-Agent", "")
		case 5:
			r.Method, status, size = "HEAD", 200, 0
		case 6:
			status, size = 304, 0
		case 7:
			r.SetBasicAuth("alice", "secret")
		case 8:
			r.Header.Set("User-Agent", "tab\there\x01ctl\x7f")
		case 9:
			r.Method, status = "POST", 500
		case 10:
			status = 404
			r.Header["User-Agent"] = []string{"one", "two"}
		case 11:
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
		}
		e := &logpub.Entry{Request: r, Status: status, BodyBytes: size,
			Start: start.Add(time.Duration(i) * time.Second), End: start.Add(time.Duration(i)*time.Second + 3*time.Millisecond)}
		if i%12 == 7 {
			e.User, e.HasUser = "alice", true
		}
		line := f.AppendLine(nil, e)
		vhost := "www.example.com"
		if i%3 == 0 {
			vhost = "shop.example.com"
		}
		out = append(out, &Record{Group: "www", Publisher: "web1", Epoch: 1, Seq: uint64(i + 1), Vhost: vhost, Status: status, Line: line})
	}
	return out
}

// goaccessCounts runs goaccess on a log file and returns its total and
// failed request counts.
func goaccessCounts(t *testing.T, goaccess, file string) (total, failed int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(goaccess, file, "--log-format=COMBINED", "--no-global-config", "--num-tests=0", "-o", out)
	cmd.Stdin = nil
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "goaccess: %s", msg)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	var rep struct {
		General struct {
			Total  int `json:"total_requests"`
			Failed int `json:"failed_requests"`
		} `json:"general"`
	}
	require.NoError(t, json.Unmarshal(data, &rep))
	return rep.General.Total, rep.General.Failed
}

// TestGoaccessParsesFiles writes awkward records through every kind of file
// output and has Debian's goaccess parse each file with zero failed lines.
func TestGoaccessParsesFiles(t *testing.T) {
	goaccess := requireTool(t, "goaccess", "goaccess")
	dir := t.TempDir()
	s, err := OpenStore([]Output{
		{File: filepath.Join(dir, "access.%Y%m%d"), Rotate: FileConfig{Interval: 24 * time.Hour, MaxSize: 16 << 10}},
		{File: filepath.Join(dir, "rewritten_log"), RewriteTimestamp: "CommonLogFormat"},
		{File: filepath.Join(dir, "vhosts", "{vhost}.log")},
	}, StoreConfig{StateFile: filepath.Join(dir, "state"), Logger: quiet})
	require.NoError(t, err)
	recs := awkwardRecords(t, 600)
	for _, r := range recs {
		ok, err := s.Write(r)
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.NoError(t, s.Close())
	files, err := filepath.Glob(filepath.Join(dir, "access.*"))
	require.NoError(t, err)
	require.Greater(t, len(files), 1, "size rotation made several files")
	vhosts, err := filepath.Glob(filepath.Join(dir, "vhosts", "*.log"))
	require.NoError(t, err)
	require.Len(t, vhosts, 2)
	files = append(append(files, filepath.Join(dir, "rewritten_log")), vhosts...)
	sum := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		lines := strings.Count(string(data), "\n")
		total, failed := goaccessCounts(t, goaccess, f)
		assert.Zero(t, failed, "%s: goaccess failed lines", f)
		assert.Equal(t, lines, total, "%s: goaccess counted every line", f)
		switch {
		case strings.Contains(f, "access."):
			sum["rotated"] += total
		case strings.Contains(f, "vhosts"):
			sum["vhosts"] += total
		default:
			sum["rewritten"] += total
		}
	}
	assert.Equal(t, map[string]int{"rotated": 600, "vhosts": 600, "rewritten": 600}, sum)
}

func TestAwkwardLinesGolden(t *testing.T) {
	var b strings.Builder
	for _, r := range awkwardRecords(t, 12) {
		b.Write(r.Line)
		b.WriteByte('\n')
	}
	golden(t, "awkward.golden", []byte(b.String()))
}
