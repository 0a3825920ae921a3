package bustest

import (
	"bytes"
	"errors"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		seq  uint64
		size int
	}{
		{"s", 0, 0},
		{"", 1, 0},
		{"with space", 1<<64 - 1, 0},
		{"x", 42, 1024},
		{"y", 7, 3}, // size below the header: no padding
	} {
		p := Payload(tc.tag, tc.seq, tc.size)
		if len(p) < tc.size {
			t.Errorf("Payload(%q, %d, %d) has %d bytes", tc.tag, tc.seq, tc.size, len(p))
		}
		tag, seq, err := ParsePayload(p)
		if err != nil || tag != tc.tag || seq != tc.seq {
			t.Errorf("ParsePayload(Payload(%q, %d, %d)) = %q, %d, %v", tc.tag, tc.seq, tc.size, tag, seq, err)
		}
	}
}

func TestParsePayloadRejects(t *testing.T) {
	for _, in := range []string{
		"", "bt", "bt|", "bt|tag", "bt|tag|", "bt|tag|12", "xx|tag|1|", "bt|tag|01|", "bt|tag|-1|",
		"bt|tag|+1|", "bt|tag|18446744073709551616|", "bt|tag|1|..x", "bt|tag|1|.|", "bt|tag|1a|",
	} {
		if tag, seq, err := ParsePayload([]byte(in)); !errors.Is(err, ErrNotPayload) {
			t.Errorf("ParsePayload(%q) = %q, %d, %v, want ErrNotPayload", in, tag, seq, err)
		}
	}
}

func TestPayloadPanicsOnSeparator(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Payload with '|' in the tag did not panic")
		}
	}()
	Payload("a|b", 0, 0)
}

func FuzzParsePayload(f *testing.F) {
	f.Add([]byte("bt|s|0|"))
	f.Add(Payload("tag", 123, 64))
	f.Add([]byte("bt|t|01|"))
	f.Add([]byte("bt||18446744073709551615|...."))
	f.Fuzz(func(t *testing.T, data []byte) {
		tag, seq, err := ParsePayload(data)
		if err != nil {
			if !errors.Is(err, ErrNotPayload) {
				t.Fatalf("error %v does not wrap ErrNotPayload", err)
			}
			return
		}
		if again := Payload(tag, seq, len(data)); !bytes.Equal(again, data) {
			t.Fatalf("ParsePayload(%q) = %q, %d; Payload gives back %q", data, tag, seq, again)
		}
	})
}
