package logpub

import (
	"fmt"
	"io"
	"os"
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

// FileSink is CustomLog to a file: it appends one line per entry with one
// write(2) each (O_APPEND, so several processes may share the file), and
// reopens the path on Reopen after an external rotation (rename, then
// Reopen). It is safe for concurrent use.
type FileSink struct {
	path string
	ws   *WriterSink
	mu   sync.Mutex // guards f against Reopen and Close
	f    *os.File
}

// OpenFileSink opens (creating it if needed) the file at path for appending
// f's lines.
func OpenFileSink(path string, f *Format) (*FileSink, error) {
	file, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	s := &FileSink{path: path, f: file}
	s.ws = NewWriterSink(fileWriter{s}, f)
	return s, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("logpub: open log file: %w", err)
	}
	return f, nil
}

type fileWriter struct{ s *FileSink }

func (w fileWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.f == nil {
		return 0, ErrClosed
	}
	return w.s.f.Write(p)
}

// Log formats e and appends the line.
func (s *FileSink) Log(e *Entry) { s.ws.Log(e) }

func (s *FileSink) logNeeds() needs { return s.ws.logNeeds() }

// Err returns the first write error, if any.
func (s *FileSink) Err() error { return s.ws.Err() }

// Reopen opens the path again and closes the previous file, for log
// rotation by rename.
func (s *FileSink) Reopen() error {
	s.mu.Lock()
	closed := s.f == nil
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	f, err := openAppend(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.f
	if old == nil {
		s.mu.Unlock()
		f.Close()
		return ErrClosed
	}
	s.f = f
	s.mu.Unlock()
	return old.Close()
}

// Close closes the file; later lines are lost (and counted by Err). It is
// idempotent.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
