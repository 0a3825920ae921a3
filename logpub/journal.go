package logpub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/peerscale/peerscale/internal/logwire"
)

// The journal is a directory of segment files named
// <epoch>-<firstSeq>.journal (16 hex digits each, so names sort in write
// order). A segment is a sequence of frames:
//
//	length u32 (big-endian, of the batch)  crc32c u32 (of the batch)  batch
//
// where batch is a logwire batch message exactly as published. A frame
// that is cut off or fails its checksum ends the segment: it is truncated
// there when the journal is opened.

const (
	frameHeader   = 8
	segmentSuffix = ".journal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one journal file.
type segment struct {
	path string
	f    *os.File
	size int64
	live int // retained batches stored in it
}

type journal struct {
	dir      string
	segBytes int64
	segs     []*segment
	cur      *segment
	// bytes is the size of the segments on disk. It changes under the
	// Publisher's jmu and is read without it (Stats), so a snapshot never
	// shows a size older than the last deletion.
	bytes atomic.Int64
}

// frameBatch fills the frame header reserved at the start of buf, where
// buf[frameHeader:] is a batch.
func frameBatch(buf []byte) {
	data := buf[frameHeader:]
	binary.BigEndian.PutUint32(buf[0:], uint32(len(data)))
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(data, castagnoli))
}

// recovered is one batch found in the journal when it was opened.
type recovered struct {
	seg   *segment
	off   int64 // of the batch, after its frame header
	size  int
	hdr   logwire.BatchHeader
	bytes int
}

func openJournal(dir string, segBytes int64) (*journal, []recovered, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("logpub: journal: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("logpub: journal: %w", err)
	}
	j := &journal{dir: dir, segBytes: segBytes}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), segmentSuffix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var out []recovered
	for _, name := range names {
		s, recs, err := j.load(filepath.Join(dir, name))
		if err != nil {
			j.close()
			return nil, nil, err
		}
		if s.live == 0 {
			_ = s.f.Close()
			_ = os.Remove(s.path)
			continue
		}
		j.segs = append(j.segs, s)
		j.bytes.Add(s.size)
		out = append(out, recs...)
	}
	return j, out, nil
}

func (j *journal) load(path string) (*segment, []recovered, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("logpub: journal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("logpub: journal: %w", err)
	}
	s := &segment{path: path, f: f}
	var recs []recovered
	off := 0
	for off+frameHeader <= len(data) {
		n := int(binary.BigEndian.Uint32(data[off:]))
		sum := binary.BigEndian.Uint32(data[off+4:])
		if n > len(data)-off-frameHeader {
			break
		}
		b := data[off+frameHeader : off+frameHeader+n]
		if crc32.Checksum(b, castagnoli) != sum {
			break
		}
		h, _, err := logwire.DecodeBatchHeader(b)
		if err != nil {
			break
		}
		recs = append(recs, recovered{seg: s, off: int64(off + frameHeader), size: n, hdr: h})
		off += frameHeader + n
	}
	if off != len(data) {
		if err := f.Truncate(int64(off)); err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("logpub: journal: truncate %s: %w", path, err)
		}
	}
	s.size = int64(off)
	s.live = len(recs)
	return s, recs, nil
}

// append writes a framed batch and returns its segment and the offset of
// the batch.
func (j *journal) append(framed []byte, epoch, first uint64) (*segment, int64, error) {
	if j.cur != nil && j.cur.size >= j.segBytes {
		j.cur = nil // full: later batches go to a new segment
	}
	if j.cur == nil {
		path := filepath.Join(j.dir, fmt.Sprintf("%016x-%016x%s", epoch, first, segmentSuffix))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, 0, fmt.Errorf("logpub: journal: %w", err)
		}
		j.cur = &segment{path: path, f: f}
		j.segs = append(j.segs, j.cur)
	}
	s := j.cur
	if _, err := s.f.WriteAt(framed, s.size); err != nil {
		// Keep the segment consistent: cut what may have been written.
		_ = s.f.Truncate(s.size)
		return nil, 0, fmt.Errorf("logpub: journal: %w", err)
	}
	off := s.size + frameHeader
	s.size += int64(len(framed))
	s.live++
	j.bytes.Add(int64(len(framed)))
	return s, off, nil
}

func (j *journal) read(s *segment, off int64, size int) ([]byte, error) {
	b := make([]byte, size)
	if _, err := s.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("logpub: journal: %w", err)
	}
	return b, nil
}

// release marks one batch of s acknowledged and deletes s once it holds
// none. The segment being appended to is deleted too (the next append
// starts a new one): a fully acknowledged journal takes no space, and a
// restart does not replay acknowledged batches.
func (j *journal) release(s *segment) {
	s.live--
	if s.live == 0 {
		j.remove(s)
	}
}

func (j *journal) remove(s *segment) {
	_ = s.f.Close()
	_ = os.Remove(s.path)
	j.bytes.Add(-s.size)
	if i := slices.Index(j.segs, s); i >= 0 {
		j.segs = slices.Delete(j.segs, i, i+1)
	}
	if j.cur == s {
		j.cur = nil
	}
}

func (j *journal) close() error {
	var errs []error
	for _, s := range j.segs {
		errs = append(errs, s.f.Close())
	}
	j.segs = nil
	j.cur = nil
	return errors.Join(errs...)
}
