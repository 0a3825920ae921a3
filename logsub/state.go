package logsub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateVersion is the version of the committed-state file.
const stateVersion = 1

// maxStateSize bounds the committed-state file a Store reads.
const maxStateSize = 64 << 20

// state is what a Store commits after every fsync: how far each open file
// is durable, and which records of which publisher epochs those bytes hold.
type state struct {
	Version int          `json:"version"`
	Files   []stateFile  `json:"files"`
	Seen    []stateEpoch `json:"seen"`
}

type stateFile struct {
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
}

type stateEpoch struct {
	Group     string     `json:"group"`
	Publisher string     `json:"publisher"`
	Epoch     uint64     `json:"epoch"`
	Ranges    []SeqRange `json:"ranges"`
}

// decodeState parses and validates a committed-state file.
func decodeState(data []byte) (*state, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadState, len(data))
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadState, st.Version)
	}
	for _, f := range st.Files {
		if f.Path == "" || f.Offset < 0 {
			return nil, fmt.Errorf("%w: file %q at offset %d", ErrBadState, f.Path, f.Offset)
		}
	}
	for _, e := range st.Seen {
		for i, r := range e.Ranges {
			if r.Lo > r.Hi || (i > 0 && r.Lo <= e.Ranges[i-1].Hi+1) {
				return nil, fmt.Errorf("%w: %s epoch %d: ranges not sorted and disjoint", ErrBadState, e.Publisher, e.Epoch)
			}
		}
	}
	return &st, nil
}

func encodeState(st *state) []byte {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		panic(err) // only plain types: cannot fail
	}
	return append(b, '\n')
}

// readState reads the committed-state file; a missing file is an empty state.
func readState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logsub: %w", err)
	}
	st, err := decodeState(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// writeState replaces the committed-state file atomically and durably:
// write a temporary file, fsync it, rename it over path, fsync the directory.
func writeState(path string, st *state) error {
	dir := filepath.Dir(path)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("logsub: state: %w", err)
	}
	_, err = f.Write(encodeState(st))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("logsub: state: %w", err)
	}
	return nil
}

// truncateTo cuts every file named in st back to its committed offset,
// removing lines written after the last commit. A file shorter than its
// offset (moved away and recreated) is left alone.
func truncateTo(st *state) (cut int64, err error) {
	for _, f := range st.Files {
		fi, err := os.Stat(f.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return cut, fmt.Errorf("logsub: %w", err)
		}
		if fi.Size() <= f.Offset {
			continue
		}
		if err := os.Truncate(f.Path, f.Offset); err != nil {
			return cut, fmt.Errorf("logsub: %w", err)
		}
		cut += fi.Size() - f.Offset
	}
	return cut, nil
}
