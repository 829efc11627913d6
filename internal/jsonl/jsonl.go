// Package jsonl is the append-only journal both rotations keep: one JSON
// record per line, each fsync'd, so that after a crash the file says
// exactly which records were written. A torn last line (a crash mid-write)
// is ignored by readers and cut before the next append, so the journal
// stays readable. A node's `k3scert rotate` and the cluster rotation share
// it; what the records mean is theirs.
package jsonl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Log is an open journal, appending.
type Log struct {
	f    *os.File
	what string // "journal", "cluster journal": the prefix of errors
}

// Create starts a journal at path with first as its first record. An
// ended journal of an earlier run at path is kept beside it under a
// sub-second name (never over an existing one), not lost. A journal
// without its first record is no journal: on failure nothing is left.
func Create(path, what string, first any, now time.Time) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		stamp := now.UTC().Format("20060102T150405.000000000Z")
		old := fmt.Sprintf("%s.%s", path, stamp)
		for i := 2; ; i++ {
			if _, err := os.Lstat(old); errors.Is(err, os.ErrNotExist) {
				break
			}
			old = fmt.Sprintf("%s.%s-%d", path, stamp, i)
		}
		if err := os.Rename(path, old); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	l := &Log{f: f, what: what}
	if err := l.Append(first); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return l, SyncDir(filepath.Dir(path))
}

// Open opens a journal to append. A torn last line is cut off first, so
// the next record starts on its own line.
func Open(path, what string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if n := fi.Size(); n > 0 {
		// The end of the last complete line, read backwards in chunks.
		const chunk = 4096
		end := int64(-1)
		for off := n; off > 0 && end < 0; {
			start := max(off-chunk, 0)
			buf := make([]byte, off-start)
			if _, err := f.ReadAt(buf, start); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
				end = start + int64(i) + 1
			}
			off = start
		}
		end = max(end, 0)
		if end != n {
			if err := f.Truncate(end); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: cut the torn last line: %w", what, err)
			}
		}
	}
	return &Log{f: f, what: what}, nil
}

// Append writes one record and fsyncs it.
func (l *Log) Append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s %s: %w", l.what, l.f.Name(), err)
	}
	return l.f.Sync()
}

// Close closes the journal.
func (l *Log) Close() { l.f.Close() }

// Lines calls visit with every complete line of the journal at path, in
// order; a torn last line is not visited.
func Lines(path string, visit func(line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if verr := visit(line); verr != nil {
				return verr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// SyncDir fsyncs a directory, so that a file created or renamed in it
// survives a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
