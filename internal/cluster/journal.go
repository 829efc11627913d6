package cluster

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

// The cluster journal has the house style of the node journal
// (internal/rotate/journal.go): one JSON record a line, each fsync'd; the
// first record carries the plan; a torn last line (a crash mid-write) is
// ignored when read and cut off before the next append.

// Record types of the cluster journal.
const (
	recPlan     = "plan"
	recResume   = "resume"
	recStarted  = "started"
	recDone     = "done"
	recFailed   = "failed"
	recVerified = "verified"
	recComplete = "complete"
	recVerifyKO = "verify-failed"
)

type record struct {
	T      string      `json:"t"`
	At     time.Time   `json:"at"`
	Node   string      `json:"node,omitempty"`
	Order  int         `json:"order,omitempty"`
	Mode   string      `json:"mode,omitempty"` // started: "rotate" or "resume"
	Result *NodeResult `json:"result,omitempty"`
	Check  *NodeCheck  `json:"check,omitempty"`
	Error  string      `json:"error,omitempty"`
	Plan   *Plan       `json:"plan,omitempty"`
}

type journal struct{ f *os.File }

func createJournal(path string, p Plan, now time.Time) (*journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		// An ended journal of an earlier run is kept beside, not lost.
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
		return nil, fmt.Errorf("cluster journal: %w", err)
	}
	j := &journal{f: f}
	if err := j.write(record{T: recPlan, At: now, Plan: &p}); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return j, syncDir(filepath.Dir(path))
}

// openJournal opens a journal to append, cutting a torn last line first.
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster journal: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cluster journal: %w", err)
	}
	if end := int64(bytes.LastIndexByte(b, '\n') + 1); end != int64(len(b)) {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("cluster journal: cut the torn last line: %w", err)
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
		return fmt.Errorf("cluster journal %s: %w", j.f.Name(), err)
	}
	return j.f.Sync()
}

func (j *journal) close() { j.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// NodeState is what the journal says about one node.
type NodeState string

// Node states in a cluster journal.
const (
	NodePending NodeState = ""        // not started
	NodeStarted NodeState = "started" // started, no outcome recorded (the run was interrupted)
	NodeDone    NodeState = "done"
	NodeFailed  NodeState = "failed"
)

// JournalState is what a cluster journal says.
type JournalState struct {
	Plan     Plan
	Nodes    map[string]NodeState
	Results  map[string]NodeResult
	Errors   map[string]string
	Complete bool // every node done and the cluster verified
}

// ReadJournal parses a cluster journal; a torn last line is ignored.
func ReadJournal(path string) (JournalState, error) {
	st := JournalState{Nodes: map[string]NodeState{}, Results: map[string]NodeResult{}, Errors: map[string]string{}}
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
				return st, fmt.Errorf("cluster journal %s: corrupt line: %v", path, jerr)
			}
			if first {
				if rec.T != recPlan || rec.Plan == nil {
					return st, fmt.Errorf("cluster journal %s: first record is not a plan", path)
				}
				st.Plan = *rec.Plan
				first = false
			}
			switch rec.T {
			case recStarted:
				st.Nodes[rec.Node] = NodeStarted
				st.Complete = false
			case recDone:
				st.Nodes[rec.Node] = NodeDone
				if rec.Result != nil {
					st.Results[rec.Node] = *rec.Result
				}
			case recFailed:
				st.Nodes[rec.Node] = NodeFailed
				st.Errors[rec.Node] = rec.Error
			case recComplete:
				st.Complete = true
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
		return st, fmt.Errorf("cluster journal %s is empty", path)
	}
	return st, nil
}
