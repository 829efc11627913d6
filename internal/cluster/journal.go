package cluster

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/k3scert/k3scert/internal/jsonl"
)

// The cluster journal has the house style of the node journal
// (internal/jsonl, shared with internal/rotate/journal.go): one JSON record a line, each fsync'd; the
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

// journal is the cluster journal: JSON lines, each fsync'd (internal/jsonl).
type journal struct{ l *jsonl.Log }

func createJournal(path string, p Plan, now time.Time) (*journal, error) {
	l, err := jsonl.Create(path, "cluster journal", record{T: recPlan, At: now, Plan: &p}, now)
	if err != nil {
		return nil, err
	}
	return &journal{l: l}, nil
}

// openJournal opens a journal to append, cutting a torn last line first.
func openJournal(path string) (*journal, error) {
	l, err := jsonl.Open(path, "cluster journal")
	if err != nil {
		return nil, err
	}
	return &journal{l: l}, nil
}

func (j *journal) write(r record) error { return j.l.Append(r) }

func (j *journal) close() { j.l.Close() }

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
	first := true
	err := jsonl.Lines(path, func(line []byte) error {
		var rec record
		if jerr := json.Unmarshal(line, &rec); jerr != nil {
			return fmt.Errorf("cluster journal %s: corrupt line: %v", path, jerr)
		}
		if first {
			if rec.T != recPlan || rec.Plan == nil {
				return fmt.Errorf("cluster journal %s: first record is not a plan", path)
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
		return nil
	})
	if err != nil {
		return st, err
	}
	if first {
		return st, fmt.Errorf("cluster journal %s is empty", path)
	}
	return st, nil
}
