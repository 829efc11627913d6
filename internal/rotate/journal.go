package rotate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/k3scert/k3scert/internal/source"

	"github.com/k3scert/k3scert/internal/jsonl"
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

// journal appends records and fsyncs each one (internal/jsonl), so that
// after a crash the file says exactly which steps completed.
type journal struct{ l *jsonl.Log }

func createJournal(path string, p Plan, now time.Time) (*journal, error) {
	l, err := jsonl.Create(path, "journal", record{T: "plan", At: now, Plan: &p}, now)
	if err != nil {
		return nil, err
	}
	return &journal{l: l}, nil
}

// openJournal opens a journal to append. A torn last line (a crash
// mid-write) is cut off first, so the next record starts on its own line
// and the journal stays readable.
func openJournal(path string) (*journal, error) {
	l, err := jsonl.Open(path, "journal")
	if err != nil {
		return nil, err
	}
	return &journal{l: l}, nil
}

func (j *journal) write(r record) error { return j.l.Append(r) }

func (j *journal) close() { j.l.Close() }

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
	first := true
	err := jsonl.Lines(path, func(line []byte) error {
		var rec record
		if jerr := json.Unmarshal(line, &rec); jerr != nil {
			// A torn line with a later record appended to it (written
			// by an older k3scert that did not cut torn lines): the
			// torn part never completed; the appended record counts.
			i := bytes.LastIndex(line, []byte(`{"t":`))
			if i <= 0 || json.Unmarshal(line[i:], &rec) != nil {
				return fmt.Errorf("journal %s: corrupt line: %v", path, jerr)
			}
		}
		if first {
			if rec.T != "plan" || rec.Plan == nil {
				return fmt.Errorf("journal %s: first record is not a plan", path)
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
		return nil
	})
	if err != nil {
		return st, err
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
