package rotate

import (
	"errors"
	"time"

	"github.com/k3scert/k3scert/internal/report"
)

// Result is the machine-readable outcome of one `k3scert rotate -o json`
// run (printed after the plan), which a cluster rotation reads from each
// node: whether it completed, and if not where the node was left.
type Result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"` // "RotateResult"
	DataDir    string `json:"dataDir"`
	Role       string `json:"role"`
	// Action is "rotate" or "resume".
	Action          string `json:"action"`
	ClusterListener string `json:"clusterListener,omitempty"`
	Listener        string `json:"listener,omitempty"`
	OK              bool   `json:"ok"`
	// Outcome is "complete", or where a failure left the node
	// (Outcome.String: rolled back, running, on which certificates).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// FailedStep, Certs, Running and RolledBack detail a failure.
	FailedStep string `json:"failedStep,omitempty"`
	Certs      string `json:"certs,omitempty"`
	Running    bool   `json:"running"`
	RolledBack string `json:"rolledBack,omitempty"`
	// JournalEnd is how the node's journal ended: complete, rolledback,
	// aborted, or "" (unfinished, or no journal).
	JournalEnd string        `json:"journalEnd"`
	Journal    string        `json:"journal"`
	Backup     string        `json:"backup,omitempty"`
	Started    time.Time     `json:"started"`
	Finished   time.Time     `json:"finished"`
	Downtime   time.Duration `json:"downtime"`
}

// NewResult fills a Result from the run's error and the journal.
func NewResult(action, dataDir, role, journal string, err error, started, finished time.Time, downtime time.Duration) Result {
	r := Result{APIVersion: report.APIVersion, Kind: "RotateResult", DataDir: dataDir, Role: role, Action: action, Journal: journal,
		Started: started.UTC(), Finished: finished.UTC(), Downtime: downtime, OK: err == nil, Outcome: "complete", Running: true}
	if st, jerr := ReadJournal(journal); jerr == nil {
		r.JournalEnd, r.Backup = st.End, st.Backup
		r.ClusterListener, r.Listener = st.Plan.ClusterListener, st.Plan.Listener
	}
	if err != nil {
		r.Error = err.Error()
		r.Outcome = "failed before anything was changed"
		var re *RunError
		if errors.As(err, &re) {
			r.FailedStep, r.Certs, r.Running, r.RolledBack = re.Step, re.Outcome.Certs, re.Outcome.Running, re.Outcome.RolledBack
			r.Outcome = re.Outcome.String()
		}
	}
	return r
}
