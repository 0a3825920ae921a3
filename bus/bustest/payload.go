package bustest

import (
	"bytes"
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
	rest, ok := bytes.CutPrefix(data, []byte(payloadMagic))
	if !ok {
		return "", 0, fmt.Errorf("%w: missing prefix", ErrNotPayload)
	}
	rawTag, rest, ok := bytes.Cut(rest, []byte{'|'})
	if !ok {
		return "", 0, fmt.Errorf("%w: missing tag separator", ErrNotPayload)
	}
	num, fill, ok := bytes.Cut(rest, []byte{'|'})
	if !ok {
		return "", 0, fmt.Errorf("%w: missing sequence separator", ErrNotPayload)
	}
	if len(num) == 0 || len(num) > 20 || (len(num) > 1 && num[0] == '0') {
		return "", 0, fmt.Errorf("%w: bad sequence %q", ErrNotPayload, num)
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return "", 0, fmt.Errorf("%w: bad sequence %q", ErrNotPayload, num)
		}
		d := uint64(c - '0')
		if seq > (1<<64-1-d)/10 {
			return "", 0, fmt.Errorf("%w: sequence %q overflows", ErrNotPayload, num)
		}
		seq = seq*10 + d
	}
	for i, c := range fill {
		if c != payloadFill {
			return "", 0, fmt.Errorf("%w: corrupt padding at byte %d", ErrNotPayload, len(data)-len(fill)+i)
		}
	}
	return string(rawTag), seq, nil
}
