package rotate

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/k3scert/k3scert/internal/source"
)

// record is one journal line. The first line carries the plan.
type record struct {
	T      string    `json:"t"`
	At     time.Time `json:"at"`
	Step   int       `json:"step,omitempty"`
	Name   string    `json:"name,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Error  string    `json:"error,omitempty"`
	Backup string    `json:"backup,omitempty"`
	Plan   *Plan     `json:"plan,omitempty"`
}

// journal appends records and fsyncs each one, so that after a crash the
// file says exactly which steps completed.
type journal struct {
	f *os.File
}

func createJournal(path string, p Plan, now time.Time) (*journal, error) {
	if err := os.MkdirAll(dirOf(path), 0o700); err != nil {
		return nil, err
	}
	// An ended journal from an earlier rotation is kept beside, not lost
	// (sub-second name; never over an existing one).
	if _, err := os.Lstat(path); err == nil {
		old := fmt.Sprintf("%s.%s", path, now.UTC().Format("20060102T150405.000000000Z"))
		for i := 2; ; i++ {
			if _, err := os.Lstat(old); errors.Is(err, os.ErrNotExist) {
				break
			}
			old = fmt.Sprintf("%s.%s-%d", path, now.UTC().Format("20060102T150405.000000000Z"), i)
		}
		if err := os.Rename(path, old); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{f: f}
	if err := j.write(record{T: "plan", At: now, Plan: &p}); err != nil {
		f.Close()
		os.Remove(path) // a journal without its plan is no journal
		return nil, err
	}
	return j, syncDir(dirOf(path))
}

// openJournal opens a journal to append. A torn last line (a crash
// mid-write) is cut off first, so the next record starts on its own line
// and the journal stays readable.
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if n := fi.Size(); n > 0 {
		// Find the end of the last complete line.
		const chunk = 4096
		end := int64(-1)
		for off := n; off > 0 && end < 0; {
			start := max(off-chunk, 0)
			buf := make([]byte, off-start)
			if _, err := f.ReadAt(buf, start); err != nil {
				f.Close()
				return nil, fmt.Errorf("journal: %w", err)
			}
			if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
				end = start + int64(i) + 1
			}
			off = start
		}
		if end < 0 {
			end = 0
		}
		if end != n {
			if err := f.Truncate(end); err != nil {
				f.Close()
				return nil, fmt.Errorf("journal: cut the torn last line: %w", err)
			}
		}
	}
	return &journal{f: f}, nil
}

func (j *journal) write(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal %s: %w", j.f.Name(), err)
	}
	return j.f.Sync()
}

func (j *journal) close() { j.f.Close() }

// JournalState is what a journal says about a rotation.
type JournalState struct {
	Plan     Plan
	Done     []string // step names completed, in order
	NextStep int      // the first step not completed
	Backup   string
	End      string // "complete", "rolledback", "aborted", or "" while unfinished
	Failed   string // the last error, if any
}

// Closed reports whether the rotation ended (nothing to resume or undo).
func (s JournalState) Closed() bool { return s.End != "" }

// ReadJournal parses a journal. A torn last line (a crash mid-write) is
// ignored: its step did not complete.
func ReadJournal(path string) (JournalState, error) {
	var st JournalState
	f, err := os.Open(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	first := true
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var rec record
			if jerr := json.Unmarshal(line, &rec); jerr != nil {
				// A torn line with a later record appended to it (written
				// by an older k3scert that did not cut torn lines): the
				// torn part never completed; the appended record counts.
				i := bytes.LastIndex(line, []byte(`{"t":`))
				if i <= 0 || json.Unmarshal(line[i:], &rec) != nil {
					return st, fmt.Errorf("journal %s: corrupt line: %v", path, jerr)
				}
			}
			if first {
				if rec.T != "plan" || rec.Plan == nil {
					return st, fmt.Errorf("journal %s: first record is not a plan", path)
				}
				st.Plan = *rec.Plan
				first = false
			}
			switch rec.T {
			case "done":
				st.Done = append(st.Done, rec.Name)
				st.NextStep = rec.Step + 1
				if rec.Backup != "" {
					st.Backup = rec.Backup
				}
			case "failed":
				st.Failed = rec.Error
			case "complete", "rolledback", "aborted":
				st.End = rec.T
			case "rollback-begin":
				st.End = ""
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
	}
	if first {
		return st, errors.New("journal " + path + " is empty")
	}
	return st, nil
}

// Fingerprint hashes a file for a plan's inputs.
func Fingerprint(path string) (FileState, error) {
	// Bounded and non-blocking: a FIFO or a huge file in place of a
	// certificate must not hang or exhaust the plan (source.ReadFile).
	b, err := source.ReadFile(path)
	if err != nil {
		return FileState{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return FileState{}, err
	}
	h := sha256.Sum256(b)
	return FileState{Path: path, SHA256: hex.EncodeToString(h[:]), Size: int64(len(b)), ModTime: fi.ModTime().UTC()}, nil
}

// CheckInputs refuses a stale plan: a file it was built from changed.
func CheckInputs(in []FileState) error {
	for _, want := range in {
		got, err := Fingerprint(want.Path)
		if err != nil {
			return fmt.Errorf("plan is stale: %s: %v; plan again", want.Path, err)
		}
		if got.SHA256 != want.SHA256 {
			return fmt.Errorf("plan is stale: %s changed since the plan was made; plan again", want.Path)
		}
	}
	return nil
}
