package appcache

import (
	"bytes"
	"testing"
)

func FuzzDecode(f *testing.F) {
	f.Add(encode(msg{typ: msgHello, url: "http://127.0.0.1:8081/_appcache"}))
	f.Add(encode(msg{typ: msgGen, id: 3, gen: 1 << 60}))
	f.Add([]byte{'G', 0x80, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encode(m), b) {
			t.Fatalf("round trip %x -> %x", b, encode(m))
		}
	})
}
