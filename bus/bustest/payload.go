package bustest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotPayload is returned by ParsePayload for bytes that Payload did not
// produce.
var ErrNotPayload = errors.New("bustest: not a bustest payload")

const (
	payloadMagic = "bt|"
	payloadFill  = '.'
)

// Payload returns a message body carrying tag and seq, padded with '.' to
// size bytes when size exceeds the header. ParsePayload reads it back.
// Tags name streams (a test, a sender); tag must not contain '|' and
// Payload panics if it does.
func Payload(tag string, seq uint64, size int) []byte {
	if strings.IndexByte(tag, '|') >= 0 {
		panic("bustest: payload tag contains '|'")
	}
	n := len(payloadMagic) + len(tag) + 1 + 20 + 1
	b := make([]byte, 0, max(n, size))
	b = append(b, payloadMagic...)
	b = append(b, tag...)
	b = append(b, '|')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '|')
	for len(b) < size {
		b = append(b, payloadFill)
	}
	return b
}

// ParsePayload returns the tag and sequence number of a body made by
// Payload. Anything else, including a body whose padding was altered, is
// an error wrapping ErrNotPayload.
func ParsePayload(data []byte) (tag string, seq uint64, err error) {
	rest, ok := strings.CutPrefix(string(data), payloadMagic)
	if !ok {
		return "", 0, fmt.Errorf("%w: missing prefix", ErrNotPayload)
	}
	tag, rest, ok = strings.Cut(rest, "|")
	if !ok {
		return "", 0, fmt.Errorf("%w: missing tag separator", ErrNotPayload)
	}
	num, fill, ok := strings.Cut(rest, "|")
	if !ok {
		return "", 0, fmt.Errorf("%w: missing sequence separator", ErrNotPayload)
	}
	if num == "" || len(num) > 20 || (len(num) > 1 && num[0] == '0') {
		return "", 0, fmt.Errorf("%w: bad sequence %q", ErrNotPayload, num)
	}
	seq, err = strconv.ParseUint(num, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%w: bad sequence %q", ErrNotPayload, num)
	}
	if i := strings.IndexFunc(fill, func(r rune) bool { return r != payloadFill }); i >= 0 {
		return "", 0, fmt.Errorf("%w: corrupt padding at byte %d", ErrNotPayload, len(data)-len(fill)+i)
	}
	return tag, seq, nil
}
