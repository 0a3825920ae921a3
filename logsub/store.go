package logsub

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// VhostPlaceholder in an Output's File pattern is replaced by the record's
// virtual host, giving one file per virtual host.
const VhostPlaceholder = "{vhost}"

// OtherVhost names the file of the records whose virtual host arrives after
// StoreConfig.MaxVhostFiles files are open, and of records without one.
const OtherVhost = "_other"

// Output is one destination of records, like a Log block of spreadlogd:
// a file (one per virtual host when File contains {vhost}) or a pipe to a
// command.
type Output struct {
	// Groups lists the bus groups whose records go to this output. Empty
	// means every group the Logger subscribes to.
	Groups []string
	// File is the strftime(3) pattern of the file names (see File). Exactly
	// one of File and Pipe is set.
	File string
	// Pipe is a command run with /bin/sh -c that reads lines on its
	// standard input, as Apache's piped logs. It is restarted when it exits.
	// Lines written to a pipe are not covered by the durability promise.
	Pipe string
	// Rotate configures rotation of File (Interval, MaxSize, Location,
	// BufferSize, Perm; OnRotate is set by the Store).
	Rotate FileConfig
	// RewriteTimestamp, if not empty, replaces the first [...] of each line
	// with the receive time: "CommonLogFormat" or a strftime(3) format (see
	// NewTimeRewriter).
	RewriteTimestamp string
	// Match and Exclude are regular expressions (RE2 syntax) a line must
	// and must not match to be written. Empty means no condition.
	Match, Exclude string
}

// StoreConfig configures a Store. The zero value is valid: no durability.
type StoreConfig struct {
	// StateFile is where the Store commits, after each fsync, the durable
	// offset of every open file and the identities of the records they
	// hold. On open it truncates the files back to those offsets and
	// resumes, so no record acknowledged after a commit is lost or written
	// twice across a crash. Empty means no durability: Commit only syncs.
	StateFile string
	// MaxVhostFiles bounds the files open per Output with a {vhost}
	// pattern; records of further virtual hosts go to the OtherVhost file.
	// Zero means 256.
	MaxVhostFiles int
	// MaxRanges bounds the sequence ranges remembered per publisher epoch;
	// past it the lowest gap is declared seen (counted in Stats.Forgotten).
	// Zero means 256. (With MaxEpochs, it bounds the state file: about 35
	// bytes per range.)
	MaxRanges int
	// MaxEpochs bounds the publisher epochs remembered; the least recently
	// written is forgotten first. Zero means 4096.
	MaxEpochs int
	// Logger receives operational logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Position is how far a Store holds one publisher epoch (a stream).
type Position struct {
	Group     string
	Publisher string
	Epoch     uint64
	// Next is one more than the highest sequence number below which the
	// Store holds every record of the stream (1 when it holds none from the
	// start).
	Next uint64
	// Gap reports records held above a missing one (Next is a hole).
	Gap bool
	// HoleEnd, when Gap, is the lowest sequence number held above Next:
	// the hole is [Next, HoleEnd).
	HoleEnd uint64
}

// StoreStats is a snapshot of a Store's counters.
type StoreStats struct {
	Records    uint64 // records accepted (written to at least zero outputs, not duplicates)
	Duplicates uint64 // records dropped because their identity was already written
	Lines      uint64 // lines written, over all outputs
	Bytes      uint64 // bytes written, newlines included
	Commits    uint64 // commits (fsync + state file)
	Truncated  int64  // bytes cut from files on open (written after the last commit)
	Forgotten  uint64 // sequence numbers declared seen: to bound memory (MaxRanges), or by Skip
	PipeErrors uint64 // failed writes to pipes (the command is restarted)
	Files      int    // files open
}

type epochKey struct {
	group, publisher string
	epoch            uint64
}

type epochState struct {
	seen  seqSet
	dirty bool   // changed since the last acknowledgement
	used  uint64 // last write, in Store.tick units
}

// Store writes records to outputs, durably when StoreConfig.StateFile is
// set. It is the part of a Logger that does not depend on the bus: its
// methods are safe for concurrent use.
type Store struct {
	cfg StoreConfig
	log *slog.Logger

	mu      sync.Mutex
	gen     uint64 // commits snapshotted, the state each one writes is newer
	outs    []*output
	seen    map[epochKey]*epochState
	tick    uint64
	buf     []byte
	stats   StoreStats
	closed  bool
	opening bool

	smu     sync.Mutex // serializes state file writes; taken after mu, or alone
	written uint64     // generation of the state file on disk
}

type output struct {
	Output
	filter   Filter
	rewrite  *TimeRewriter
	perVhost bool
	files    map[string]*File // by vhost; "" when not per vhost
	pipe     *pipe
}

// OpenStore validates outputs, recovers the committed state (truncating files
// to their committed offsets) and opens the outputs.
func OpenStore(outputs []Output, cfg StoreConfig) (*Store, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%w: no outputs", ErrConfig)
	}
	if cfg.MaxVhostFiles == 0 {
		cfg.MaxVhostFiles = 256
	}
	if cfg.MaxRanges == 0 {
		cfg.MaxRanges = 256
	}
	if cfg.MaxEpochs == 0 {
		cfg.MaxEpochs = 4096
	}
	if cfg.MaxVhostFiles < 0 || cfg.MaxRanges < 0 || cfg.MaxEpochs < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "logsub"), seen: make(map[epochKey]*epochState)}
	for i, o := range outputs {
		out, err := newOutput(o)
		if err != nil {
			return nil, fmt.Errorf("output %d: %w", i, err)
		}
		s.outs = append(s.outs, out)
	}
	if cfg.StateFile != "" {
		st, err := readState(cfg.StateFile)
		if err != nil {
			return nil, err
		}
		cut, err := truncateTo(st)
		if err != nil {
			return nil, err
		}
		s.stats.Truncated = cut
		for _, e := range st.Seen {
			es := &epochState{seen: seqSet{r: e.Ranges}}
			s.seen[epochKey{e.Group, e.Publisher, e.Epoch}] = es
		}
		if cut > 0 {
			s.log.Info("truncated uncommitted lines", "bytes", cut)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opening = true
	for _, o := range s.outs {
		if o.File != "" && !o.perVhost {
			if _, err := s.openFile(o, ""); err != nil {
				s.closeLocked(false)
				return nil, err
			}
		}
	}
	s.opening = false
	if err := s.commitLocked(); err != nil {
		s.closeLocked(false)
		return nil, err
	}
	return s, nil
}

func newOutput(o Output) (*output, error) {
	if (o.File == "") == (o.Pipe == "") {
		return nil, fmt.Errorf("%w: exactly one of File and Pipe must be set", ErrConfig)
	}
	out := &output{Output: o, rewrite: NewTimeRewriter(o.RewriteTimestamp), files: make(map[string]*File)}
	var err error
	if o.Match != "" {
		if out.filter.Match, err = regexp.Compile(o.Match); err != nil {
			return nil, fmt.Errorf("%w: match: %w", ErrConfig, err)
		}
	}
	if o.Exclude != "" {
		if out.filter.Exclude, err = regexp.Compile(o.Exclude); err != nil {
			return nil, fmt.Errorf("%w: exclude: %w", ErrConfig, err)
		}
	}
	out.perVhost = strings.Contains(o.File, VhostPlaceholder)
	if o.Pipe != "" {
		out.pipe = &pipe{cmd: o.Pipe}
	}
	return out, nil
}

// sanitizeVhost maps a virtual host name to a safe path element.
func sanitizeVhost(v string) string {
	if v == "" || v == "." || v == ".." || len(v) > 255 {
		return OtherVhost
	}
	clean := true
	for i := 0; i < len(v) && clean; i++ {
		c := v[i]
		clean = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_'
	}
	if clean {
		return v
	}
	b := []byte(strings.ToLower(v))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

func (s *Store) openFile(o *output, vhost string) (*File, error) {
	pattern := o.File
	if o.perVhost {
		pattern = strings.ReplaceAll(pattern, VhostPlaceholder, strings.ReplaceAll(vhost, "%", "%%"))
	}
	fc := o.Rotate
	fc.OnRotate = func(old, new string) error {
		if s.opening {
			return nil
		}
		if old != "" {
			s.log.Info("rotated", "old", old, "new", new)
		}
		return s.commitLocked()
	}
	f, err := OpenFile(pattern, fc)
	if err != nil {
		return nil, err
	}
	o.files[strings.Clone(vhost)] = f
	s.stats.Files++
	return f, nil
}

func (o *output) wants(group string) bool {
	return len(o.Groups) == 0 || slices.Contains(o.Groups, group)
}

// Write writes r to every output that selects it, unless a record with the
// same group, publisher, epoch and sequence number was written before (then
// it reports false). Records with an empty Publisher are never deduplicated.
// Write keeps no reference to r or its strings.
func (s *Store) Write(r *Record) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	var es *epochState
	if r.Publisher != "" {
		k := epochKey{r.Group, r.Publisher, r.Epoch}
		es = s.seen[k]
		if es == nil {
			if len(s.seen) >= s.cfg.MaxEpochs {
				s.evictLocked()
			}
			es = &epochState{}
			k.group, k.publisher = strings.Clone(k.group), strings.Clone(k.publisher)
			s.seen[k] = es
		}
		es.dirty = true
		if es.seen.contains(r.Seq) {
			s.stats.Duplicates++
			return false, nil
		}
	}
	var now time.Time // read once, and only when a timestamp is rewritten
	for _, o := range s.outs {
		if !o.wants(r.Group) || !o.filter.Keep(r.Line) {
			continue
		}
		line := r.Line
		if o.rewrite != nil {
			if now.IsZero() {
				now = time.Now()
			}
			s.buf = o.rewrite.Append(s.buf[:0], r.Line, now)
			line = s.buf
		}
		if err := s.writeLocked(o, r.Vhost, line); err != nil {
			return false, err
		}
	}
	s.stats.Records++
	if es != nil {
		s.tick++
		es.used = s.tick
		es.seen.add(r.Seq)
		es.dirty = true
		if lost := es.seen.squeeze(s.cfg.MaxRanges); lost > 0 {
			s.stats.Forgotten += lost
		}
	}
	return true, nil
}

func (s *Store) writeLocked(o *output, vhost string, line []byte) error {
	s.stats.Lines++
	s.stats.Bytes += uint64(len(line)) + 1
	if o.pipe != nil {
		if err := o.pipe.writeLine(line); err != nil {
			s.stats.PipeErrors++
			s.log.Warn("pipe failed; restarting it", "cmd", o.Pipe, "err", err)
		}
		return nil
	}
	key := ""
	if o.perVhost {
		key = sanitizeVhost(vhost)
		if _, ok := o.files[key]; !ok && len(o.files) >= s.cfg.MaxVhostFiles {
			key = OtherVhost
		}
	}
	f := o.files[key]
	if f == nil {
		var err error
		if f, err = s.openFile(o, key); err != nil {
			return err
		}
		// Name the new file in the committed state before writing to it.
		if err := s.commitLocked(); err != nil {
			return err
		}
	}
	return f.WriteLine(line)
}

func (s *Store) evictLocked() {
	var oldest epochKey
	var min uint64 = ^uint64(0)
	for k, e := range s.seen {
		if e.used < min {
			oldest, min = k, e.used
		}
	}
	delete(s.seen, oldest)
}

// flushPipeLocked flushes o if it is a pipe and reports whether it is one.
// A pipe that fails is counted and restarted by its writer.
func (s *Store) flushPipeLocked(o *output) bool {
	if o.pipe == nil {
		return false
	}
	if err := o.pipe.flush(); err != nil {
		s.stats.PipeErrors++
		s.log.Warn("pipe failed; restarting it", "cmd", o.Pipe, "err", err)
	}
	return true
}

// snapshotLocked flushes every output and notes what a commit records:
// each file's size and, when durable, a copy of the sequence ranges; it
// starts a new commit generation. With dup it returns a duplicate
// descriptor of each file, to sync without holding mu (a file that cannot
// be duplicated is synced now); without dup it syncs every file now.
func (s *Store) snapshotLocked(dup bool) (*state, []*os.File, error) {
	var errs []error
	var syncs []*os.File
	st := &state{}
	for _, o := range s.outs {
		if s.flushPipeLocked(o) {
			continue
		}
		for _, f := range o.files {
			var h *os.File
			var err error
			if dup {
				h, err = f.syncHandle()
			}
			if err == nil && h == nil {
				err = f.Sync()
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if h != nil {
				syncs = append(syncs, h)
			}
			st.Files = append(st.Files, stateFile{Path: f.Name(), Offset: f.Size()})
		}
	}
	if err := errors.Join(errs...); err != nil {
		closeFiles(syncs)
		return nil, nil, err
	}
	if s.cfg.StateFile != "" {
		for k, e := range s.seen {
			st.Seen = append(st.Seen, stateEpoch{Group: k.group, Publisher: k.publisher, Epoch: k.epoch, Ranges: e.seen.ranges()})
		}
	}
	s.gen++
	return st, syncs, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// commitLocked syncs every output and, when durable, writes the state file.
func (s *Store) commitLocked() error {
	st, _, err := s.snapshotLocked(false)
	if err != nil {
		return err
	}
	s.stats.Commits++
	if s.cfg.StateFile == "" {
		return nil
	}
	return s.writeState(s.gen, st)
}

// writeState writes the state of commit generation gen unless a newer one
// is on disk already (it holds everything gen's does).
func (s *Store) writeState(gen uint64, st *state) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	if gen <= s.written {
		return nil
	}
	if err := writeState(s.cfg.StateFile, st); err != nil {
		return err
	}
	s.written = gen
	return nil
}

// commitUnlocked is commitLocked with the file syncs and the state file
// write done without holding mu, so that Write goes on meanwhile: under mu
// it flushes every file to the operating system and notes its size, takes
// a handle on each file for the sync (a duplicate descriptor, so that a
// rotation or Close meanwhile does not matter) and copies the sequence
// ranges; lines written after that are beyond the committed offsets, cut
// on restart after a crash. With mu held on entry, it returns with mu
// released; done runs under mu once the snapshot is taken.
func (s *Store) commitUnlocked(done func()) error {
	st, syncs, err := s.snapshotLocked(true)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	defer closeFiles(syncs)
	gen := s.gen
	done()
	s.mu.Unlock()

	var errs []error
	for _, f := range syncs {
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("logsub: sync %s: %w", f.Name(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if s.cfg.StateFile != "" {
		if err := s.writeState(gen, st); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.stats.Commits++
	s.mu.Unlock()
	return nil
}

// Commit syncs every file to stable storage and records the committed
// state. When the Store is durable it returns the Position of every stream
// that received records (duplicates included) since the last Commit: what
// a logger acknowledges.
func (s *Store) Commit() ([]Position, error) {
	ps, _, err := s.commit(false)
	return ps, err
}

// commit is Commit that, with all set, also returns the Position of every
// stream the Store remembers as of this commit: what a logger may
// acknowledge to publishers asking for everything (AckSync). Both lists
// are taken under the lock that covers the commit, so they never name a
// record written after it.
// Files are synced and the state file written with the lock released, so
// that Write does not wait for the disk.
func (s *Store) commit(all bool) (dirty, every []Position, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil, ErrClosed
	}
	err = s.commitUnlocked(func() {
		if s.cfg.StateFile == "" {
			return
		}
		for k, e := range s.seen {
			if e.dirty {
				e.dirty = false
				dirty = append(dirty, e.position(k))
			}
			if all {
				every = append(every, e.position(k))
			}
		}
	})
	if err != nil {
		// Acknowledge these streams at the next commit.
		s.mu.Lock()
		for _, p := range dirty {
			if e := s.seen[epochKey{p.Group, p.Publisher, p.Epoch}]; e != nil {
				e.dirty = true
			}
		}
		s.mu.Unlock()
		return nil, nil, err
	}
	sortPositions(dirty)
	sortPositions(every)
	return dirty, every, nil
}

// Positions returns the Position of every stream the Store remembers,
// committed or not: records written since the last Commit are counted, so
// it is not what may be acknowledged.
func (s *Store) Positions() []Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]Position, 0, len(s.seen))
	for k, e := range s.seen {
		ps = append(ps, e.position(k))
	}
	sortPositions(ps)
	return ps
}

func sortPositions(ps []Position) {
	slices.SortFunc(ps, func(a, b Position) int {
		if c := strings.Compare(a.Group, b.Group); c != 0 {
			return c
		}
		if c := strings.Compare(a.Publisher, b.Publisher); c != 0 {
			return c
		}
		return cmp.Compare(a.Epoch, b.Epoch)
	})
}

func (e *epochState) position(k epochKey) Position {
	p := Position{Group: k.group, Publisher: k.publisher, Epoch: k.epoch, Next: 1}
	r := e.seen.r
	if len(r) > 0 && r[0].Lo == 1 {
		p.Next = r[0].Hi + 1
		r = r[1:]
	}
	if len(r) > 0 {
		p.Gap, p.HoleEnd = true, r[0].Lo
	}
	return p
}

// Skip gives up the records of a stream below its lowest held record
// above Next: they are counted in Stats.Forgotten and, if they arrive
// later, dropped as duplicates. It is an operator's decision (the Logger
// never skips): after it, acknowledgements cover records this Store does
// not hold.
func (s *Store) Skip(group, publisher string, epoch uint64) Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := epochKey{group, publisher, epoch}
	e := s.seen[k]
	if e == nil {
		return Position{Group: group, Publisher: publisher, Epoch: epoch, Next: 1}
	}
	if r := e.seen.r; len(r) > 0 {
		if r[0].Lo > 1 {
			s.stats.Forgotten += r[0].Lo - 1
			e.seen.r[0].Lo = 1
		} else if len(r) > 1 {
			s.stats.Forgotten += e.seen.squeeze(len(r) - 1)
		}
	}
	e.dirty = true
	return e.position(k)
}

// Reopen closes and reopens every file (after logrotate moved them) and
// restarts pipes, committing before and after.
func (s *Store) Reopen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.commitLocked(); err != nil {
		return err
	}
	var errs []error
	s.opening = true
	for _, o := range s.outs {
		for _, f := range o.files {
			errs = append(errs, f.Reopen())
		}
		if o.pipe != nil {
			errs = append(errs, o.pipe.close())
		}
	}
	s.opening = false
	errs = append(errs, s.commitLocked())
	return errors.Join(errs...)
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close commits, then closes every file and pipe. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.closeLocked(true)
}

func (s *Store) closeLocked(commit bool) error {
	var errs []error
	if commit {
		errs = append(errs, s.commitLocked())
	}
	s.closed = true
	for _, o := range s.outs {
		for _, f := range o.files {
			errs = append(errs, f.Close())
		}
		if o.pipe != nil {
			errs = append(errs, o.pipe.close())
		}
	}
	return errors.Join(errs...)
}

// crash closes every descriptor without committing, as a killed process
// would leave things (see File.abandon for torn).
func (s *Store) crash(torn bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, o := range s.outs {
		for _, f := range o.files {
			f.abandon(torn)
		}
		if o.pipe != nil {
			o.pipe.close()
		}
	}
}

// Held returns the sequence ranges of a stream this Store has written
// (committed or not).
func (s *Store) Held(group, publisher string, epoch uint64) []SeqRange {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.seen[epochKey{group, publisher, epoch}]; e != nil {
		return e.seen.ranges()
	}
	return nil
}
