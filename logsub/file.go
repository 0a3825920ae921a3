package logsub

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// FileConfig configures a File. The zero value is valid: one file that
// never rotates.
type FileConfig struct {
	// Interval rotates the file at every multiple of Interval since the
	// Unix epoch (in Location's offset, as rotatelogs -l does), like
	// rotatelogs' rotation time. Zero means no rotation by time.
	Interval time.Duration
	// MaxSize rotates the file before a line would make it larger than
	// MaxSize bytes; the next file gets the suffix ".1", then ".2", and so
	// on within one period. A line longer than MaxSize goes alone into a
	// file. Zero means no rotation by size.
	MaxSize int64
	// Location is the time zone of file names and period boundaries. Nil
	// means UTC.
	Location *time.Location
	// BufferSize is the size of the write buffer. Zero means 64 KiB;
	// negative means unbuffered.
	BufferSize int
	// Perm is the permission of created files. Zero means 0644.
	Perm os.FileMode
	// OnRotate, if not nil, is called after a rotation closed (and synced)
	// the old file and opened the new one, before the first line is written
	// to it. old is empty for the first file. An error aborts the write that
	// caused the rotation.
	OnRotate func(old, new string) error
}

// File is an append-only access-log file that rotates by time and size
// exactly on line boundaries, naming each file by the strftime(3) pattern
// applied to the start of its period, as Apache's rotatelogs does. A pattern
// without conversions and a non-zero Interval gets the period start in Unix
// seconds appended (".1700000000"), as rotatelogs does.
//
// A File is not safe for concurrent use; the Logger serializes its files.
type File struct {
	pattern *Strftime
	cfg     FileConfig

	f      *os.File
	w      *bufio.Writer
	name   string    // current file name
	size   int64     // bytes written to the current file, buffered ones included
	period time.Time // start of the current period (zero without Interval)
	end    time.Time // end of the current period
	index  int       // size-rotation suffix within the period
	closed bool
}

// OpenFile opens (creating it and its directory if needed) the file that
// pattern names now, positioned at its end.
func OpenFile(pattern string, cfg FileConfig) (*File, error) {
	if pattern == "" {
		return nil, fmt.Errorf("%w: empty file pattern", ErrConfig)
	}
	if cfg.Interval < 0 || cfg.MaxSize < 0 {
		return nil, fmt.Errorf("%w: negative rotation interval or size", ErrConfig)
	}
	if cfg.Interval > 0 && cfg.Interval%time.Second != 0 {
		return nil, fmt.Errorf("%w: rotation interval %v is not a whole number of seconds", ErrConfig, cfg.Interval)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Perm == 0 {
		cfg.Perm = 0o644
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = 64 << 10
	}
	f := &File{pattern: CompileStrftime(pattern), cfg: cfg}
	if err := f.open(time.Now(), true); err != nil {
		return nil, err
	}
	return f, nil
}

// periodStart returns the start of the rotation period that contains t.
func (f *File) periodStart(t time.Time) time.Time {
	t = t.In(f.cfg.Location)
	_, off := t.Zone()
	d := int64(f.cfg.Interval / time.Second)
	s := t.Unix() + int64(off)
	m := s % d
	if m < 0 {
		m += d
	}
	return time.Unix(t.Unix()-m, 0).In(f.cfg.Location)
}

// nameFor returns the file name for a period start and size index.
func (f *File) nameFor(period time.Time, index int) string {
	t := period
	if t.IsZero() {
		t = time.Now().In(f.cfg.Location)
	}
	name := f.pattern.Format(t)
	if f.cfg.Interval > 0 && !f.pattern.HasConversions() {
		name += "." + strconv.FormatInt(period.Unix(), 10)
	}
	if index > 0 {
		name += "." + strconv.Itoa(index)
	}
	return name
}

// open opens the file for the period containing now. With scan, it skips
// size-rotated files of the period that are already full.
func (f *File) open(now time.Time, scan bool) error {
	var period, end time.Time
	if f.cfg.Interval > 0 {
		period = f.periodStart(now)
		end = period.Add(f.cfg.Interval)
	}
	index := f.index
	if scan {
		index = 0
		for f.cfg.MaxSize > 0 {
			st, err := os.Stat(f.nameFor(period, index))
			if err != nil || st.Size() < f.cfg.MaxSize {
				break
			}
			index++
		}
	}
	name := f.nameFor(period, index)
	if dir := filepath.Dir(name); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("logsub: %w", err)
		}
	}
	fd, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, f.cfg.Perm)
	if err != nil {
		return fmt.Errorf("logsub: %w", err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return fmt.Errorf("logsub: %w", err)
	}
	old := f.name
	f.f, f.name, f.size, f.period, f.end, f.index = fd, name, st.Size(), period, end, index
	if f.cfg.BufferSize > 0 {
		if f.w == nil {
			f.w = bufio.NewWriterSize(fd, f.cfg.BufferSize)
		} else {
			f.w.Reset(fd)
		}
	}
	if f.cfg.OnRotate != nil {
		if err := f.cfg.OnRotate(old, name); err != nil {
			return err
		}
	}
	return nil
}

// closeFile flushes, syncs and closes the current file.
func (f *File) closeFile() error {
	if f.f == nil {
		return nil
	}
	var errs []error
	if f.w != nil {
		errs = append(errs, f.w.Flush())
	}
	errs = append(errs, f.f.Sync(), f.f.Close())
	f.f = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("logsub: close %s: %w", f.name, err)
	}
	return nil
}

// Name returns the name of the file written now.
func (f *File) Name() string { return f.name }

// Size returns the size of the current file, counting buffered bytes.
func (f *File) Size() int64 { return f.size }

// Due reports whether writing a line of n bytes (newline included) now
// would rotate the file first.
func (f *File) Due(n int) bool {
	if f.cfg.Interval > 0 && !time.Now().Before(f.end) {
		return true
	}
	return f.cfg.MaxSize > 0 && f.size > 0 && f.size+int64(n) > f.cfg.MaxSize
}

// rotate switches to the next file.
func (f *File) rotate(n int) error {
	now := time.Now()
	if err := f.closeFile(); err != nil {
		return err
	}
	if f.cfg.Interval > 0 && !now.Before(f.end) {
		return f.open(now, true)
	}
	f.index++
	return f.open(now, false)
}

// WriteLine appends one line, adding the newline if line lacks it, after
// rotating the file if the line's time or size calls for it. A line that
// contains a newline other than its last byte is rejected with ErrBadLine,
// so files always rotate exactly between lines.
func (f *File) WriteLine(line []byte) error {
	if f.closed {
		return ErrClosed
	}
	body := line
	if n := len(body); n > 0 && body[n-1] == '\n' {
		body = body[:n-1]
	}
	if bytes.IndexByte(body, '\n') >= 0 {
		return fmt.Errorf("%w: embedded newline", ErrBadLine)
	}
	n := len(body) + 1
	if f.f == nil || f.Due(n) {
		if err := f.rotate(n); err != nil {
			return err
		}
	}
	var err error
	if f.w != nil {
		if _, err = f.w.Write(body); err == nil {
			err = f.w.WriteByte('\n')
		}
	} else {
		buf := make([]byte, 0, n)
		_, err = f.f.Write(append(append(buf, body...), '\n'))
	}
	if err != nil {
		return fmt.Errorf("logsub: write %s: %w", f.name, err)
	}
	f.size += int64(n)
	return nil
}

// Flush writes buffered lines to the operating system.
func (f *File) Flush() error {
	if f.closed || f.f == nil {
		return nil
	}
	if f.w != nil {
		if err := f.w.Flush(); err != nil {
			return fmt.Errorf("logsub: flush %s: %w", f.name, err)
		}
	}
	return nil
}

// Sync flushes buffered lines and commits the file to stable storage.
func (f *File) Sync() error {
	if err := f.Flush(); err != nil || f.closed || f.f == nil {
		return err
	}
	if err := f.f.Sync(); err != nil {
		return fmt.Errorf("logsub: sync %s: %w", f.name, err)
	}
	return nil
}

// syncHandle flushes buffered lines and returns a new descriptor of the
// current file, to sync it while the File goes on (the caller closes it),
// or nil where descriptors cannot be duplicated (the caller syncs the File
// itself).
func (f *File) syncHandle() (*os.File, error) {
	if err := f.Flush(); err != nil || f.closed || f.f == nil {
		return nil, err
	}
	h, err := dupFile(f.f)
	if err != nil {
		return nil, fmt.Errorf("logsub: sync %s: %w", f.name, err)
	}
	return h, nil
}

// Reopen flushes, syncs and closes the current file and opens its name
// again, creating it if it was moved away (after logrotate, on SIGHUP).
func (f *File) Reopen() error {
	if f.closed {
		return ErrClosed
	}
	if err := f.closeFile(); err != nil {
		return err
	}
	now := time.Now()
	if f.cfg.Interval > 0 && !now.Before(f.end) {
		return f.open(now, true)
	}
	return f.open(now, false)
}

// Close flushes, syncs and closes the file. Close is idempotent.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	return f.closeFile()
}

// abandon closes the descriptor without syncing, as a killed process
// would. With torn, it first writes the buffered lines and a partial line
// (a write cut short); otherwise buffered lines are lost.
func (f *File) abandon(torn bool) {
	f.closed = true
	if f.f != nil {
		if torn && f.w != nil {
			f.w.WriteString("127.0.0.1 - - [torn")
			f.w.Flush()
		}
		f.f.Close()
		f.f = nil
	}
}
