package logpub

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testEntry(tb testing.TB) *Entry {
	tb.Helper()
	r := httptest.NewRequest("GET", "/caf%C3%A9/a%22b?q=1&x=%22y%22", nil)
	r.RemoteAddr = "192.0.2.7:51234"
	r.Host = "WWW.Example.COM:8080"
	r.Header.Set("Referer", `http://ex.com/"quoted"\back`)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11) café\x01")
	r.Header["X-Multi"] = []string{"a", "b", "c"}
	r.Header["X-Empty"] = []string{""}
	r.Header.Set("Cookie", "SID = abc ; theme=dark; empty=; =odd=1")
	loc := time.FixedZone("XST", -(7*3600 + 30*60))
	start := time.Date(2000, 10, 10, 13, 55, 36, 123456789, loc)
	rh := http.Header{}
	rh.Set("Content-Type", "text/html ; charset=utf-8")
	rh["Set-Cookie"] = []string{"a=1", "b=2"}
	rh["X-Out"] = []string{"first", "second"}
	return &Entry{
		Request:        r,
		ResponseHeader: rh,
		Status:         404,
		Start:          start,
		End:            start.Add(2*time.Second + 345678*time.Microsecond),
		FirstByte:      1500 * time.Microsecond,
		BodyBytes:      2326,
		BytesIn:        420,
		BytesOut:       2600,
		User:           "fr\"ank",
		HasUser:        true,
		ServerName:     "www.example.com",
		LocalAddr:      netip.MustParseAddrPort("198.51.100.1:8080"),
		KeepAlives:     3,
		Notes:          []Pair{{"n1", "note\tvalue"}},
		Env:            []Pair{{"HTTPS", "on"}},
	}
}

func format(tb testing.TB, layout string, e *Entry) string {
	tb.Helper()
	f, err := Compile(layout)
	require.NoError(tb, err, layout)
	return string(f.AppendLine(nil, e))
}

// goldenFormats covers every directive, modifier and condition; the
// golden file holds one line per format for testEntry.
var goldenFormats = []string{
	CommonFormat, CombinedFormat, VhostCombinedFormat, RefererFormat, AgentFormat,
	"%a %{c}a %A %B %b %D %f %h %{c}h %H %k %l %L %m %p %{canonical}p %{local}p %{remote}p %{bogus}p",
	"%q|%r|%R|%s|%<s|%>s|%T|%{s}T|%{ms}T|%{us}T|%{min}T|%u|%U|%v|%V|%X|%I|%O|%S|%^FB",
	"%{Cookie}i|%{SID}C|%{theme}C|%{empty}C|%{missing}C|%{X-Multi}i|%{X-Empty}i|%{X-Absent}i|%{host}i",
	"%{Content-Type}o|%{Set-Cookie}o|%{X-Out}o|%{Nope}o|%{n1}n|%{none}n|%{HTTPS}e|%{none}e",
	"%t|%{begin:}t|%{end:}t|%{sec}t|%{msec}t|%{usec}t|%{msec_frac}t|%{usec_frac}t|%{end:sec}t|%{end:usec_frac}t",
	"%{%Y-%m-%d %H:%M:%S %z %Z}t|%{%a %A %b %B %h %C %e %j %k %l %I %p %P %u %w %y %G %g %V %U %W}t",
	"%{%c|%D|%x|%X|%F|%r|%R|%T|%s|%n|%t|%%|%Q|%-d|%_m|%^a|%Ey|%Od}t|%{end:%H:%M:%S}t",
	"%404{Referer}i|%200{Referer}i|%!404{Referer}i|%!200,304{Referer}i|%400,404,501s|%!404>s|%500,501B",
	`literal \"q\" \t tab \n nl \\ bs \x 100%% done`,
}

func TestFormatGolden(t *testing.T) {
	e := testEntry(t)
	var out bytes.Buffer
	for _, layout := range goldenFormats {
		fmt.Fprintf(&out, "%s\n\t%s\n", layout, format(t, layout, e))
	}
	path := filepath.Join("testdata", "format.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create the golden file")
	assert.Equal(t, string(want), out.String())
}

func TestFormatCombined(t *testing.T) {
	e := testEntry(t)
	got := format(t, CombinedFormat+" %T", e)
	want := `192.0.2.7 - fr\"ank [10/Oct/2000:13:55:36 -0730] "GET /caf%C3%A9/a%22b?q=1&x=%22y%22 HTTP/1.1" 404 2326 ` +
		`"http://ex.com/\"quoted\"\\back" "Mozilla/5.0 (X11) caf\xc3\xa9\x01" 2`
	assert.Equal(t, want, got)
}

func TestEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"\"\\", `\"\\`},
		{"\b\n\r\t\v", `\b\n\r\t\v`},
		{"\x00\x01\x1f\x7f\x80\xff", `\x00\x01\x1f\x7f\x80\xff`},
		{"café", `caf\xc3\xa9`},
		{"tilde~ space", "tilde~ space"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendEscaped(nil, tt.in)), "%q", tt.in)
	}
}

func TestDashRules(t *testing.T) {
	r := httptest.NewRequest("HEAD", "/x", nil)
	r.Header["X-Empty"] = []string{""}
	e := &Entry{Request: r, Status: 200}
	assert.Equal(t, `-|""|0|-|-|`, format(t, `%{X-Absent}i|"%{X-Empty}i"|%B|%b|%u|%q`, e))
	e.HasUser = true
	assert.Equal(t, `""`, format(t, "%u", e))
	r2 := httptest.NewRequest("GET", "/x?", nil)
	assert.Equal(t, "?", format(t, "%q", &Entry{Request: r2}))
	assert.Equal(t, "- -", format(t, "%s %>s", &Entry{Request: r2}))
}

func TestStatusConditions(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Referer", "ref")
	for _, tt := range []struct {
		status int
		want   string
	}{{200, "-|-|ref"}, {304, "-|-|ref"}, {400, "ref|ref|-"}, {501, "ref|ref|-"}, {500, "-|ref|-"}} {
		got := format(t, "%400,501{Referer}i|%!200,304{Referer}i|%200,304{Referer}i", &Entry{Request: r, Status: tt.status})
		assert.Equal(t, tt.want, got, "status %d", tt.status)
	}
}

func TestCookie(t *testing.T) {
	tests := []struct{ hdr, name, want string }{
		{"a=1; b=2", "b", "2"},
		{"a=1; b=2", "B", "2"},
		{" a = 1 ;b=2", "a", "1"},
		{"a=x=y", "a", "x=y"},
		{"a=; a=2", "a", "2"},
		{"==a=3", "a", "3"},
		{"a=1 ;", "a", "1 "},
		{"a=1 ; ", "a", "1"},
		{";;a=\"q\"", "a", `\"q\"`},
		{"b=1", "a", "-"},
		{"a", "a", "-"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", tt.hdr)
		assert.Equal(t, tt.want, format(t, "%{"+tt.name+"}C", &Entry{Request: r}), "%q %q", tt.hdr, tt.name)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header["Cookie"] = []string{"a=1", "b=2"}
	assert.Equal(t, "1, b=2", format(t, "%{a}C", &Entry{Request: r}), "repeated headers are merged first")
}

func TestNormalizedPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a/./b", "/a/b"},
		{"/a/../b", "/b"},
		{"/../../a", "/a"},
		{"//a///b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"/a/..", "/"},
		{"/a/b/..", "/a/"},
		{"/a/.", "/a/"},
		{"/.hidden/..x", "/.hidden/..x"},
		{"/sp ace/\"q\"", `/sp ace/\"q\"`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(appendNormalizedPath(nil, tt.in)), tt.in)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		layout string
		offset int
		msg    string
	}{
		{"%h %Z", 3, "unknown directive %Z"},
		{"abc %{X}", 4, "cut off"},
		{"%400", 0, "cut off"},
		{"%{Referer", 0, "cut off"},
		{"ok %", 3, "cut off"},
		{"%^xy", 0, "unknown directive %^xy"},
		{"%!", 0, "cut off"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.layout)
		require.Error(t, err, tt.layout)
		assert.True(t, errors.Is(err, ErrBadFormat), tt.layout)
		var fe *FormatError
		require.True(t, errors.As(err, &fe), tt.layout)
		assert.Equal(t, tt.offset, fe.Offset, tt.layout)
		assert.Contains(t, err.Error(), tt.msg, tt.layout)
		assert.True(t, strings.HasPrefix(err.Error(), "logpub: "), tt.layout)
	}
}

func TestNamedFormat(t *testing.T) {
	for _, name := range []string{"common", "combined", "vhost_combined", "referer", "agent"} {
		s, ok := NamedFormat(name)
		require.True(t, ok, name)
		_, err := Compile(s)
		require.NoError(t, err, name)
	}
	_, ok := NamedFormat("nope")
	assert.False(t, ok)
}

func TestAppendLineAllocs(t *testing.T) {
	e := testEntry(t)
	f := MustCompile(CombinedFormat + " %T %D %{Cookie}i %U")
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() { buf = f.AppendLine(buf[:0], e) })
	assert.Zero(t, allocs)
}

func ExampleFormat_AppendLine() {
	f := MustCompile(CombinedFormat)
	r := httptest.NewRequest("GET", "/index.html?lang=fr", nil)
	r.RemoteAddr = "203.0.113.9:40000"
	r.Header.Set("User-Agent", "curl/8.0 \"test\"")
	start := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	e := &Entry{Request: r, Status: 200, BodyBytes: 512, Start: start, End: start.Add(time.Millisecond)}
	fmt.Println(string(f.AppendLine(nil, e)))
	// Output:
	// 203.0.113.9 - - [01/Mar/2024:12:00:00 +0000] "GET /index.html?lang=fr HTTP/1.1" 200 512 "-" "curl/8.0 \"test\""
}

// FuzzCompile compiles arbitrary format strings: Compile returns a
// FormatError or a Format that formats without panicking.
func FuzzCompile(f *testing.F) {
	for _, s := range goldenFormats {
		f.Add(s)
	}
	f.Add("%{")
	f.Add("%!,<>{x}")
	f.Add("%^t")
	f.Add("%{%")
	e := testEntry(f)
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := Compile(s)
		if err != nil {
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			require.GreaterOrEqual(t, fe.Offset, 0)
			require.Less(t, fe.Offset, len(s))
			return
		}
		fm.AppendLine(nil, e)
		fm.AppendLine(nil, &Entry{})
	})
}

func TestRequestLinePassword(t *testing.T) {
	for _, tt := range []struct{ uri, want string }{
		{"http://bob:secret@example.test/index.html", "GET http://bob:XXXXXXXX@example.test/index.html HTTP/1.1"},
		{"http://bob@example.test/a?b=c:d@e", "GET http://bob@example.test/a?b=c:d@e HTTP/1.1"},
		{"http://example.test/a:b@c", "GET http://example.test/a:b@c HTTP/1.1"},
		{"/x?u=http://a:b@c", "GET /x?u=http://a:b@c HTTP/1.1"},
		{"http://a:@h/", "GET http://a:XXXXXXXX@h/ HTTP/1.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RequestURI = tt.uri
		assert.Equal(t, tt.want, format(t, "%r", &Entry{Request: r}), tt.uri)
	}
}
