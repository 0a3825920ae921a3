package proxycache

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// purgeRing is how many recent purges the store remembers to reject fills
// that began before them; a fill older than that is rejected outright.
const purgeRing = 1024

var (
	errPurged    = errors.New("proxycache: purged while filling")
	errBodyGone  = errors.New("proxycache: body file missing or replaced")
	errNotStored = errors.New("proxycache: entry not stored")
)

// store is the on-disk object store with its in-memory index. Every method
// is safe for concurrent use; mu guards the index, the LRU list, the purge
// log and every rename into or out of the tree.
type store struct {
	root string
	max  int64
	log  *slog.Logger
	st   *counters

	mu       sync.RWMutex
	items    map[string]*item
	lru      list.List // of *item, most recently used first
	bytes    int64
	purgeSeq uint64
	purges   [purgeRing]purgeRec
	trashN   uint64
	memMax   int64 // bound on bodies kept in memory
	memObj   int64 // largest body kept in memory
	memBytes int64
	unlinks  []unlink    // files of purged entries, for removeFiles
	trashed  atomic.Bool // something was moved to the trash since emptyTrash

	// floor: entries fetched (ReqTime) before it, unix nanoseconds, may
	// have missed purges and are revalidated before use.
	floor atomic.Int64
}

type item struct {
	key    string
	rel    string
	m      *meta // immutable once published; replaced, never changed
	cost   int64
	access time.Time
	elem   *list.Element
	body   []byte // in-memory copy of a small hot body, or nil
	hits   uint32
}

type purgeRec struct {
	seq    uint64
	prefix string // matches keys with this prefix
	exact  bool   // matches only the key equal to prefix
}

func (p purgeRec) matches(key string) bool {
	if p.exact {
		return key == p.prefix
	}
	return strings.HasPrefix(key, p.prefix)
}

func openStore(root string, max int64, log *slog.Logger, st *counters) (*store, error) {
	s := &store{root: root, max: max, log: log, st: st, items: make(map[string]*item)}
	for _, d := range []string{root, s.abs(tmpDir), s.abs(trashDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("proxycache: store: %w", err)
		}
	}
	if err := s.rebuild(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) abs(rel string) string { return filepath.Join(s.root, filepath.FromSlash(rel)) }

// rebuild reads every sidecar under the root into the index, dropping
// sidecars whose body is missing or replaced and bodies without a sidecar.
func (s *store) rebuild() error {
	_ = os.RemoveAll(s.abs(tmpDir))
	_ = os.MkdirAll(s.abs(tmpDir), 0o755)
	var bodies []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(s.root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == tmpDir || rel == trashDir {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == stampName {
			return nil
		}
		if !strings.HasSuffix(rel, metaSuffix) {
			bodies = append(bodies, rel)
			return nil
		}
		if err := s.load(strings.TrimSuffix(rel, metaSuffix)); err != nil {
			s.log.Debug("dropping cache entry", "file", rel, "err", err)
			_ = os.Remove(p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("proxycache: store: %w", err)
	}
	known := make(map[string]bool, len(s.items))
	for _, it := range s.items {
		known[it.rel] = true
	}
	for _, b := range bodies {
		if !known[b] {
			_ = os.Remove(s.abs(b))
		}
	}
	s.evictLocked()
	return nil
}

func (s *store) load(rel string) error {
	b, err := readLimited(s.abs(rel+metaSuffix), maxMetaSize)
	if err != nil {
		return err
	}
	m, err := decodeMeta(b)
	if err != nil {
		return err
	}
	host, uri, ok := strings.Cut(m.Key, "/")
	if !ok {
		return fmt.Errorf("%w: key %q", errBadMeta, m.Key)
	}
	u, err := url.ParseRequestURI("/" + uri)
	if err != nil {
		return fmt.Errorf("%w: key: %v", errBadMeta, err)
	}
	if want, err := objectPath(host, u); err != nil || want != rel {
		return fmt.Errorf("%w: key %q does not map to %s", errBadMeta, m.Key, rel)
	}
	fi, err := os.Stat(s.abs(rel))
	if err != nil {
		return err
	}
	if !m.sameFile(fi) {
		return errBodyGone
	}
	it := &item{key: m.Key, rel: rel, m: m, cost: m.Size + int64(len(b)), access: fi.ModTime()}
	s.insertLocked(it)
	return nil
}

func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %d bytes", errBadMeta, fi.Size())
	}
	b := make([]byte, fi.Size())
	_, err = io.ReadFull(f, b)
	return b, err
}

// insertLocked adds or replaces an index item, keeping the LRU ordered by
// access time (rebuild inserts in arbitrary order).
func (s *store) insertLocked(it *item) {
	if old := s.items[it.key]; old != nil {
		s.lru.Remove(old.elem)
		s.bytes -= old.cost
		s.memBytes -= int64(len(old.body))
	}
	s.items[it.key] = it
	e := s.lru.Front()
	for e != nil && e.Value.(*item).access.After(it.access) {
		e = e.Next()
	}
	if e == nil {
		it.elem = s.lru.PushBack(it)
	} else {
		it.elem = s.lru.InsertBefore(it, e)
	}
	s.bytes += it.cost
}

// lookup returns the entry for key, or nil.
func (s *store) lookup(key []byte, now time.Time) lookupResult {
	// Most lookups only read: a hot entry whose access time is recent.
	s.mu.RLock()
	it := s.items[string(key)]
	if it == nil {
		s.mu.RUnlock()
		return lookupResult{}
	}
	if it.hits >= 2 && now.Sub(it.access) <= time.Second {
		r := lookupResult{key: it.key, rel: it.rel, m: it.m, body: it.body, hot: true}
		s.mu.RUnlock()
		return r
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if it = s.items[string(key)]; it == nil {
		return lookupResult{}
	}
	if now.Sub(it.access) > time.Second {
		it.access = now
		s.lru.MoveToFront(it.elem)
	}
	if it.hits < 2 {
		it.hits++
	}
	return lookupResult{key: it.key, rel: it.rel, m: it.m, body: it.body, hot: it.hits >= 2}
}

// wantsMemory reports whether a body of m's size may be kept in memory.
func (s *store) wantsMemory(m *meta) bool {
	return m.Size <= s.memObj && s.memMax > 0
}

// keepMemory stores a copy of the body of key's entry, if it is still m
// and the memory bound allows.
func (s *store) keepMemory(key string, m *meta, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.items[key]
	if it == nil || it.m != m || it.body != nil || s.memBytes+int64(len(b)) > s.memMax {
		return
	}
	it.body = b
	s.memBytes += int64(len(b))
}

// statBody checks, without opening it, that the body file is still the one
// m describes (for entries served from memory).
func (s *store) statBody(rel string, m *meta) bool {
	fi, err := os.Stat(s.abs(rel))
	return err == nil && m.sameFile(fi)
}

// openBody opens the body of an entry and checks that it is the file the
// sidecar describes.
func (s *store) openBody(rel string, m *meta) (*os.File, error) {
	f, err := openFile(s.abs(rel))
	if err != nil {
		return nil, errBodyGone
	}
	fi, err := f.Stat()
	if err == nil {
		if m.sameFile(fi) {
			return f, nil
		}
	}
	f.Close()
	return nil, errBodyGone
}

// drop removes key from the index and the disk if it still holds m.
func (s *store) drop(key string, m *meta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.items[key]; it != nil && it.m == m {
		s.removeLocked(it, true)
	}
}

func (s *store) removeLocked(it *item, files bool) {
	s.memBytes -= int64(len(it.body))
	delete(s.items, it.key)
	s.lru.Remove(it.elem)
	s.bytes -= it.cost
	if files {
		_ = os.Remove(s.abs(it.rel + metaSuffix))
		_ = os.Remove(s.abs(it.rel))
	}
}

// removeLaterLocked removes it from the index at once, which is what stops
// it being served, and queues its files for removeFiles: a purge does not
// wait for the file system (unlink can stall for milliseconds on a
// journal commit) and holds no lock while the files go.
func (s *store) removeLaterLocked(it *item) {
	s.removeLocked(it, false)
	s.unlinks = append(s.unlinks, unlink{rel: it.rel, dev: it.m.Dev, ino: it.m.Ino})
}

// unlink is a purged entry whose files are still to be removed.
type unlink struct {
	rel      string
	dev, ino uint64
}

// removeFiles removes the files of purged entries. A body is removed only
// if it is still the purged one (an entry stored again meanwhile under the
// same name keeps its files); its sidecar goes with it.
func (s *store) removeFiles() {
	s.mu.Lock()
	q := s.unlinks
	s.unlinks = nil
	s.mu.Unlock()
	for _, u := range q {
		fi, err := os.Lstat(s.abs(u.rel))
		if err != nil {
			_ = os.Remove(s.abs(u.rel + metaSuffix))
			continue
		}
		if dev, ino := fileID(fi); dev != u.dev || ino != u.ino {
			continue
		}
		_ = os.Remove(s.abs(u.rel + metaSuffix))
		_ = os.Remove(s.abs(u.rel))
	}
}

// tempFile creates a file for a body being written.
func (s *store) tempFile() (*os.File, error) {
	return os.CreateTemp(s.abs(tmpDir), "body-*")
}

// seq returns the current purge sequence number; a fill records it when it
// begins and commit refuses it if a purge matching its key came after.
func (s *store) seq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purgeSeq
}

func (s *store) purgedSinceLocked(start uint64, key string) bool {
	if s.purgeSeq-start >= purgeRing {
		return true
	}
	for q := start + 1; q <= s.purgeSeq; q++ {
		if s.purges[q%purgeRing].matches(key) {
			return true
		}
	}
	return false
}

// commit moves a fully written body into place and writes its sidecar,
// unless a purge that covers key was applied after startSeq. m.Dev, m.Ino
// and m.Size must describe tmp.
func (s *store) commit(key, rel string, m *meta, tmp string, startSeq uint64) error {
	side, err := m.encode()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.purgedSinceLocked(startSeq, key) {
		_ = os.Remove(tmp)
		return errPurged
	}
	dst := s.abs(rel)
	if err := s.makeParentLocked(rel); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	sideTmp, err := writeTemp(s.abs(tmpDir), side)
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	// Body first, then sidecar: in between, a reader sees the old sidecar
	// with the new body, whose inode does not match: a miss, never a mix.
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		_ = os.Remove(sideTmp)
		return fmt.Errorf("%w: %v", errNotStored, err)
	}
	if err := os.Rename(sideTmp, dst+metaSuffix); err != nil {
		_ = os.Remove(dst)
		_ = os.Remove(sideTmp)
		return fmt.Errorf("%w: %v", errNotStored, err)
	}
	s.insertLocked(&item{key: key, rel: rel, m: m, cost: m.Size + int64(len(side)), access: time.Now()})
	s.evictLocked()
	return nil
}

// makeParentLocked creates the directories above rel. A cached object that
// sits where a directory is needed ("/a" stored, "/a/b" arriving) is
// removed: the directory wins.
func (s *store) makeParentLocked(rel string) error {
	dir := path.Dir(rel)
	if err := os.MkdirAll(s.abs(dir), 0o755); err == nil {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := 1; i <= len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		fi, err := os.Lstat(s.abs(p))
		if err != nil {
			break
		}
		if !fi.IsDir() {
			for _, it := range s.items {
				if it.rel == p {
					s.removeLocked(it, false)
					break
				}
			}
			_ = os.Remove(s.abs(p))
			_ = os.Remove(s.abs(p + metaSuffix))
			break
		}
	}
	if err := os.MkdirAll(s.abs(dir), 0o755); err != nil {
		return fmt.Errorf("%w: %v", errNotStored, err)
	}
	return nil
}

// writeTemp writes b to a new file in dir and returns its name.
func writeTemp(dir string, b []byte) (string, error) {
	f, err := os.CreateTemp(dir, "meta-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// update replaces the metadata of an entry after a 304 revalidation; the
// body stays. It fails if the entry changed or was purged meanwhile.
func (s *store) update(key string, old, m *meta, startSeq uint64) error {
	side, err := m.encode()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.items[key]
	if it == nil || it.m != old || s.purgedSinceLocked(startSeq, key) {
		return errPurged
	}
	sideTmp, err := writeTemp(s.abs(tmpDir), side)
	if err != nil {
		return err
	}
	if err := os.Rename(sideTmp, s.abs(it.rel+metaSuffix)); err != nil {
		_ = os.Remove(sideTmp)
		return err
	}
	s.bytes += int64(len(side)) + m.Size - it.cost
	it.cost = int64(len(side)) + m.Size
	s.memBytes -= int64(len(it.body))
	it.body = nil
	it.m = m
	it.access = time.Now()
	s.lru.MoveToFront(it.elem)
	return nil
}

func (s *store) evictLocked() {
	for s.bytes > s.max {
		e := s.lru.Back()
		if e == nil {
			return
		}
		s.removeLocked(e.Value.(*item), true)
		s.st.evictions.Add(1)
	}
}

// expire removes entries not used since before cutoff.
func (s *store) expire(cutoff time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for e := s.lru.Back(); e != nil; {
		it := e.Value.(*item)
		if !it.access.Before(cutoff) {
			break
		}
		e = e.Prev()
		s.removeLocked(it, true)
		n++
	}
	s.st.evictions.Add(uint64(n))
	return n
}

func (s *store) recordPurgeLocked(prefix string, exact bool) {
	s.purgeSeq++
	s.purges[s.purgeSeq%purgeRing] = purgeRec{seq: s.purgeSeq, prefix: prefix, exact: exact}
}

// purgeKey removes one key.
func (s *store) purgeKey(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordPurgeLocked(key, true)
	if it := s.items[key]; it != nil {
		s.removeLaterLocked(it)
		return 1
	}
	return 0
}

// purgePrefix removes every key with the prefix host+pathPrefix. When the
// prefix names a directory its tree is renamed into the trash at once and
// deleted in the background.
func (s *store) purgePrefix(host, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := host + pathPrefix
	s.recordPurgeLocked(prefix, false)
	dir, isDir := dirPath(host, pathPrefix)
	if isDir {
		if err := s.trashLocked(dir); err != nil {
			isDir = false
		}
	}
	n := 0
	for key, it := range s.items {
		if strings.HasPrefix(key, prefix) {
			if isDir && strings.HasPrefix(it.rel, dir+"/") {
				s.removeLocked(it, false) // in the trash already
			} else {
				s.removeLaterLocked(it)
			}
			n++
		}
	}
	return n
}

// purgeBefore removes the entries t names that were fetched before the
// given time: a purge another member applied then, learnt late.
func (s *store) purgeBefore(t purgeTarget, before time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var prefix string
	exact := false
	switch t.kind {
	case purgeURL:
		prefix, exact = t.host+t.path, true
	case purgePrefix:
		prefix = t.host + t.path
	}
	s.recordPurgeLocked(prefix, exact)
	b := before.UnixNano()
	n := 0
	if exact {
		if it := s.items[prefix]; it != nil && it.m.ReqTime < b {
			s.removeLaterLocked(it)
			n++
		}
		return n
	}
	for key, it := range s.items {
		if strings.HasPrefix(key, prefix) && it.m.ReqTime < b {
			s.removeLaterLocked(it)
			n++
		}
	}
	return n
}

// setFloor makes the entries fetched before t suspect (see floor).
func (s *store) setFloor(t time.Time) {
	var v int64
	if !t.IsZero() {
		v = t.UnixNano()
	}
	s.floor.Store(v)
}

// purgeAll empties the store: every host tree goes to the trash.
func (s *store) purgeAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordPurgeLocked("", false)
	n := len(s.items)
	clear(s.items)
	s.lru.Init()
	s.bytes = 0
	s.memBytes = 0
	des, _ := os.ReadDir(s.root)
	for _, d := range des {
		if d.Name() != tmpDir && d.Name() != trashDir && d.Name() != stampName {
			_ = s.trashLocked(d.Name())
		}
	}
	return n
}

func (s *store) trashLocked(rel string) error {
	s.trashN++
	dst := s.abs(trashDir + "/" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(s.trashN, 10))
	err := os.Rename(s.abs(rel), dst)
	if err == nil {
		s.trashed.Store(true)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// emptyTrash deletes purged trees.
func (s *store) emptyTrash() {
	s.trashed.Store(false)
	des, _ := os.ReadDir(s.abs(trashDir))
	for _, d := range des {
		_ = os.RemoveAll(s.abs(trashDir + "/" + d.Name()))
	}
}

// size returns the number of entries and bytes held.
func (s *store) size() (int, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items), s.bytes
}

// sameFile reports whether fi is the body file m describes.
func (m *meta) sameFile(fi fs.FileInfo) bool {
	dev, ino := fileID(fi)
	return dev == m.Dev && ino == m.Ino && fi.Size() == m.Size && fi.ModTime().UnixNano() == m.MTime && fi.Mode().IsRegular()
}
