package proxycache

import (
	"bytes"
	"net/url"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/peerscale/peerscale/bus"
)

func FuzzObjectPath(f *testing.F) {
	for _, s := range []string{"/logo.gif", "/a/../../etc/passwd", "/%2e%2e/x", "/.hidden", "/a?b=c/../d", "//x//", "/%25m", "/a%m", "/" + strings.Repeat("é", 300), "/%tmp/x", "/x/%trash"} {
		f.Add("www.example.com", s)
	}
	f.Add("..", "/x")
	f.Add("%tmp", "/")
	f.Add("%stamp", "/")
	f.Fuzz(func(t *testing.T, host, uri string) {
		u, err := url.ParseRequestURI(uri)
		if err != nil || host == "" {
			return
		}
		rel, err := objectPath(host, u)
		if err != nil {
			t.Fatal(err)
		}
		if path.Clean(rel) != rel || path.IsAbs(rel) || strings.HasPrefix(rel, "..") {
			t.Fatalf("%q %q -> unclean %q", host, uri, rel)
		}
		segs := strings.Split(rel, "/")
		if len(segs) < 2 {
			t.Fatalf("%q %q -> %q has no object name", host, uri, rel)
		}
		if segs[0] == tmpDir || segs[0] == trashDir || segs[0] == stampName {
			t.Fatalf("%q %q -> reserved %q", host, uri, rel)
		}
		for _, s := range segs {
			if s == "" || s == "." || s == ".." || s[0] == '.' || len(s) > 255 || strings.HasSuffix(s, metaSuffix) {
				t.Fatalf("%q %q -> bad segment %q in %q", host, uri, s, rel)
			}
			for i := 0; i < len(s); i++ {
				if s[i] == '%' && !(i+2 < len(s)+0 && isUpperHex(s, i+1) || strings.HasPrefix(s[i:], hashedMark) || s == indexName) {
					t.Fatalf("%q %q -> stray %% in %q", host, uri, s)
				}
			}
		}
		again, _ := objectPath(host, u)
		if again != rel {
			t.Fatalf("not deterministic: %q then %q", rel, again)
		}
	})
}

func isUpperHex(s string, i int) bool {
	if i+1 >= len(s) {
		return false
	}
	return strings.IndexByte(upperHexSet, s[i]) >= 0 && strings.IndexByte(upperHexSet, s[i+1]) >= 0
}

func FuzzDecodeMeta(f *testing.F) {
	m := &meta{Version: metaVersion, Key: "www.example.com/a?b", Status: 200,
		Header: map[string][]string{"Content-Type": {"text/plain"}, "Vary": {"Accept"}},
		Vary:   map[string][]string{"Accept": {"*/*"}}, ReqTime: 10, RespTime: 20, Size: 5, Dev: 1, Ino: 2, MTime: 3}
	b, _ := m.encode()
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"key":"h/","status":200,"header":{"a b":["x"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		b2, err := m.encode()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMeta(b2)
		if err != nil {
			t.Fatalf("re-encoded metadata rejected: %v", err)
		}
		m.cc, m2.cc = directives{}, directives{}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed metadata:\n%#v\n%#v", m, m2)
		}
	})
}

func FuzzDecodeMsg(f *testing.F) {
	for _, m := range []*wireMsg{
		{typ: msgPurge, id: 7, t: purgeTarget{kind: purgeURL, host: "www.example.com", path: "/a?b"}},
		{typ: msgPurge, wantAck: true, id: 1 << 40, t: purgeTarget{kind: purgePrefix, host: "h", path: "/img/"}},
		{typ: msgPurge, t: purgeTarget{kind: purgeEvery}},
	} {
		f.Add(m.encode())
	}
	f.Add((&wireMsg{typ: msgAck, id: 3}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMsg(b)
		if err != nil {
			return
		}
		if m.typ == msgAck {
			m.origin.Name = strings.Clone(m.origin.Name)
		}
		b2 := m.encode()
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %x -> %x", b, b2)
		}
	})
}

func FuzzDecodeSync(f *testing.F) {
	f.Add((&syncReq{id: 3, sinceAge: sinceAll, asked: []bus.MemberID{{Name: "a", Incarnation: 9}, {Name: "b"}}}).encode())
	f.Add((&syncReq{id: 1, sinceAge: 60000}).encode())
	f.Add((&syncReply{id: 3, asker: bus.MemberID{Name: "a", Incarnation: 9}, last: true, vouchAge: 1 << 40,
		recs: []syncRec{{t: purgeTarget{kind: purgeURL, host: "h", path: "/x?y"}, age: 5}, {t: purgeTarget{kind: purgeEvery}}}}).encode())
	for _, b := range splitReply(4, bus.MemberID{Name: "z"}, 7, []syncRec{
		{t: purgeTarget{kind: purgePrefix, host: "h", path: "/img/"}, age: 1},
		{t: purgeTarget{kind: purgeURL, host: "h", path: "/" + strings.Repeat("p", 40)}, age: 2},
	}, 80) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeSync(b)
		if err != nil {
			return
		}
		var b2 []byte
		switch m := m.(type) {
		case *syncReq:
			b2 = m.encode()
		case *syncReply:
			b2 = m.encode()
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %x -> %x", b, b2)
		}
	})
}

func TestSplitReply(t *testing.T) {
	var recs []syncRec
	for i := range 100 {
		recs = append(recs, syncRec{t: purgeTarget{kind: purgeURL, host: "h", path: "/" + strings.Repeat("p", i)}, age: uint64(1000 - i)})
	}
	recs = append(recs, syncRec{t: purgeTarget{kind: purgeURL, host: "h", path: "/" + strings.Repeat("q", 500)}, age: 10})
	msgs := splitReply(1, bus.MemberID{Name: "a"}, 5000, recs, 400)
	if len(msgs) < 10 {
		t.Fatalf("%d messages", len(msgs))
	}
	var got []syncRec
	for i, b := range msgs {
		if len(b) > 400 {
			t.Fatalf("message %d: %d bytes", i, len(b))
		}
		m, err := decodeSync(b)
		if err != nil {
			t.Fatal(err)
		}
		r := m.(*syncReply)
		if r.last != (i == len(msgs)-1) {
			t.Fatalf("message %d: last=%v", i, r.last)
		}
		if r.last && r.vouchAge != 10 {
			t.Fatalf("vouch age %d: a record too long to send must cut it to its age", r.vouchAge)
		}
		got = append(got, r.recs...)
	}
	if !reflect.DeepEqual(recs[:100], got) {
		t.Fatalf("records differ after the split")
	}
}
