package logpub

import (
	"io"
	"sync"
)

// WriterSink writes one formatted line per entry to an io.Writer, like
// Apache's CustomLog to a file: open the file with os.O_APPEND and each
// line goes out in one Write call. It is safe for concurrent use.
type WriterSink struct {
	f   *Format
	mu  sync.Mutex
	w   io.Writer
	buf []byte
	err error
	n   int64
}

// NewWriterSink returns a sink writing f's lines to w.
func NewWriterSink(w io.Writer, f *Format) *WriterSink {
	return &WriterSink{f: f, w: w, buf: make([]byte, 0, 512)}
}

// Log formats e and writes the line.
func (s *WriterSink) Log(e *Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.f.AppendLine(s.buf[:0], e), '\n')
	if _, err := s.w.Write(s.buf); err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.n++
	if cap(s.buf) > 64<<10 {
		s.buf = make([]byte, 0, 512)
	}
}

// Err returns the first write error, if any; lines that failed are lost.
func (s *WriterSink) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *WriterSink) logNeeds() needs { return s.f.needs }
