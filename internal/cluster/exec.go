package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
)

// ErrInterrupted means a cluster journal of an unfinished run exists.
var ErrInterrupted = errors.New("an earlier cluster rotation was interrupted")

// ErrNoJournal means there is no cluster rotation to resume.
var ErrNoJournal = errors.New("no cluster rotation journal")

// Report is the outcome of a cluster rotation.
type Report struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Program    k3s.Program `json:"program"`
	Journal    string      `json:"journal"`
	Resumed    bool        `json:"resumed,omitempty"`
	Started    time.Time   `json:"started"`
	Finished   time.Time   `json:"finished"`
	// Duration is the cluster's total time (this run); Downtime the sum of
	// the nodes' downtimes (each node is down alone: one at a time).
	Duration time.Duration `json:"duration"`
	Downtime time.Duration `json:"downtime"`
	Nodes    []NodeReport  `json:"nodes"`
	// Checks is the cluster verification after the last node.
	Checks   []NodeCheck `json:"checks,omitempty"`
	Verified bool        `json:"verified"`
	Error    string      `json:"error,omitempty"`
}

// NodeReport is one node's line of the report.
type NodeReport struct {
	Order    int    `json:"order"`
	Node     string `json:"node"`
	Role     Role   `json:"role"`
	Listener string `json:"listener,omitempty"`
	// State: "done", "done earlier" (a resumed run skipped it), "failed",
	// "not run".
	State    string        `json:"state"`
	Result   *NodeResult   `json:"result,omitempty"`
	Duration time.Duration `json:"duration"`
	Check    *NodeCheck    `json:"check,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// NodeError is the node that stopped the run.
type NodeError struct {
	Step    NodeStep
	Of      int
	Err     error
	Outcome string // the node's own report of where it ended
	Verify  bool   // the node rotated but its verification failed
}

func (e *NodeError) Error() string {
	where := fmt.Sprintf("node %s (%s, %d of %d)", e.Step.Node.Name, e.Step.Node.Role, e.Step.Order, e.Of)
	if e.Verify {
		return fmt.Sprintf("%s rotated, but its verification failed: %v; the run stops here, the nodes after it were not touched; fix it, then k3scert cluster rotate --resume", where, e.Err)
	}
	back := "its own k3scert rotate rolls itself back on failure (its journal on the node says how it ended)"
	if e.Outcome != "" {
		back = "its own k3scert rotate has rolled it back: " + e.Outcome
	}
	return fmt.Sprintf("%s failed: %v; %s; the nodes after it were not touched; fix the cause, then k3scert cluster rotate --resume continues with this node", where, e.Err, back)
}

func (e *NodeError) Unwrap() error { return e.Err }

// VerifyError is a cluster verification that found problems.
type VerifyError struct{ Problems []string }

func (e *VerifyError) Error() string {
	return "cluster verification failed: " + strings.Join(e.Problems, "; ")
}

// Preflighter is a Runner that can check, before anything is changed,
// that it reaches every node of the run (the SSH runner: ssh and the
// remote k3scert answer). Run and Resume call it when the Runner has it.
type Preflighter interface {
	Preflight(ctx context.Context, steps []NodeStep) error
}

func preflight(ctx context.Context, r Runner, steps []NodeStep) error {
	pf, ok := r.(Preflighter)
	if !ok || len(steps) == 0 {
		return nil
	}
	if err := pf.Preflight(ctx, steps); err != nil {
		return fmt.Errorf("preflight: %w; nothing was changed on any node", err)
	}
	return nil
}

// Run executes a cluster plan with a Runner: node by node in plan order,
// each start and outcome journaled (fsync'd) in journalPath; it stops at
// the first node that fails (that node's own rotation has rolled itself
// back) or whose verification fails; after the last node every node is
// verified again as the cluster. An unfinished journal at journalPath is
// refused (ErrInterrupted): Resume continues it.
func Run(ctx context.Context, p Plan, r Runner, journalPath string, now func() time.Time) (Report, error) {
	if len(p.Steps) == 0 {
		return Report{}, errors.New("the cluster plan has no nodes")
	}
	if st, err := ReadJournal(journalPath); err == nil && !st.Complete {
		return Report{}, fmt.Errorf("%w (%s): run again with --resume to continue it", ErrInterrupted, journalPath)
	}
	if err := preflight(ctx, r, p.Steps); err != nil {
		return Report{}, err
	}
	j, err := createJournal(journalPath, p, now())
	if err != nil {
		return Report{}, err
	}
	defer j.close()
	return run(ctx, p, r, j, journalPath, JournalState{Nodes: map[string]NodeState{}}, now)
}

// Resume continues the cluster rotation of journalPath: done nodes are
// skipped; a node that was started but not
// recorded done (or failed) is handed to Runner.Resume, which finishes
// it from the node's own journal. want, when it has steps, must rotate the
// same nodes in the same order as the recorded plan, and is then the plan
// that runs (its arguments, options and agent concurrency); without steps
// the recorded plan runs.
func Resume(ctx context.Context, want Plan, r Runner, journalPath string, now func() time.Time) (Report, error) {
	st, err := ReadJournal(journalPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Report{}, fmt.Errorf("%w at %s: nothing to resume", ErrNoJournal, journalPath)
	}
	if err != nil {
		return Report{}, err
	}
	if st.Complete {
		return Report{}, fmt.Errorf("%s: the cluster rotation already completed; nothing to resume", journalPath)
	}
	if len(want.Steps) > 0 && !want.same(st.Plan) {
		return Report{}, fmt.Errorf("%s: the inventory no longer matches the interrupted run's plan (nodes, order, roles or hosts changed); resume with the inventory it started with", journalPath)
	}
	// The same nodes in the same order: the current inventory's arguments
	// and options apply (fixing a node's arguments is often the fix).
	plan := st.Plan
	if len(want.Steps) > 0 {
		plan = want
	}
	var todo []NodeStep
	for _, s := range plan.Steps {
		if st.Nodes[s.Node.Name] != NodeDone {
			todo = append(todo, s)
		}
	}
	if err := preflight(ctx, r, todo); err != nil {
		return Report{}, err
	}
	j, err := openJournal(journalPath)
	if err != nil {
		return Report{}, err
	}
	defer j.close()
	if err := j.write(record{T: recResume, At: now()}); err != nil {
		return Report{}, err
	}
	rep, err := run(ctx, plan, r, j, journalPath, st, now)
	rep.Resumed = true
	return rep, err
}

func run(ctx context.Context, p Plan, r Runner, j *journal, journalPath string, st JournalState, now func() time.Time) (Report, error) {
	rep := Report{APIVersion: report.APIVersion, Kind: "ClusterRotation", Program: p.Program, Journal: journalPath, Started: now().UTC()}
	for _, s := range p.Steps {
		rep.Nodes = append(rep.Nodes, NodeReport{Order: s.Order, Node: s.Node.Name, Role: s.Node.Role, Listener: s.Listener, State: "not run"})
	}
	finish := func(err error) (Report, error) {
		rep.Finished = now().UTC()
		rep.Duration = rep.Finished.Sub(rep.Started)
		rep.Downtime = 0
		for _, n := range rep.Nodes {
			if n.Result != nil {
				rep.Downtime += n.Result.Downtime
			}
		}
		if err != nil {
			rep.Error = err.Error()
		}
		return rep, err
	}
	var jmu sync.Mutex // agents may run concurrently: one journal writer at a time
	write := func(rec record) error {
		jmu.Lock()
		defer jmu.Unlock()
		return j.write(rec)
	}
	// doNode is one node's turn: started, its rotation (or the resume of
	// an interrupted one), its verification, done or failed.
	doNode := func(i int) error {
		s, nr := p.Steps[i], &rep.Nodes[i]
		state := st.Nodes[s.Node.Name]
		mode, call := "rotate", r.Rotate
		if state == NodeStarted || state == NodeFailed {
			mode, call = "resume", r.Resume
		}
		t0 := now()
		if err := write(record{T: recStarted, At: t0, Node: s.Node.Name, Order: s.Order, Mode: mode}); err != nil {
			return err
		}
		// An interrupt (Ctrl-C) lets the node in progress finish, its
		// verification included (a node cut off mid-rotation would be left
		// for its own --resume); the run stops before the next node.
		nctx := context.WithoutCancel(ctx)
		res, err := call(nctx, s)
		nr.Duration = now().Sub(t0)
		if res.Node != "" || !res.Finished.IsZero() || res.Outcome != "" {
			nr.Result = &res
		}
		if err != nil {
			nr.State, nr.Error = "failed", err.Error()
			write(record{T: recFailed, At: now(), Node: s.Node.Name, Order: s.Order, Result: nr.Result, Error: err.Error()})
			return &NodeError{Step: s, Of: len(p.Steps), Err: err, Outcome: res.Outcome}
		}
		c, verr := r.Verify(nctx, s.Node)
		nr.Check = &c
		if verr == nil && len(c.Problems) > 0 {
			verr = errors.New(strings.Join(c.Problems, "; "))
		}
		if verr != nil {
			nr.State, nr.Error = "failed", verr.Error()
			write(record{T: recFailed, At: now(), Node: s.Node.Name, Order: s.Order, Result: nr.Result, Check: &c, Error: "verify: " + verr.Error()})
			return &NodeError{Step: s, Of: len(p.Steps), Err: verr, Verify: true}
		}
		nr.State = "done"
		return write(record{T: recDone, At: now(), Node: s.Node.Name, Order: s.Order, Result: nr.Result, Check: &c})
	}
	var todo []int
	for i, s := range p.Steps {
		if st.Nodes[s.Node.Name] == NodeDone {
			nr := &rep.Nodes[i]
			nr.State = "done earlier"
			if res, ok := st.Results[s.Node.Name]; ok {
				nr.Result = &res
				nr.Duration = res.Finished.Sub(res.Started)
			}
			continue
		}
		todo = append(todo, i)
	}
	for len(todo) > 0 {
		// Servers one at a time; agents in batches of AgentConcurrency.
		n := 1
		if p.Steps[todo[0]].Node.Role == RoleAgent && p.AgentConcurrency > 1 {
			n = min(p.AgentConcurrency, len(todo))
		}
		batch := todo[:n]
		todo = todo[n:]
		if err := ctx.Err(); err != nil {
			return finish(fmt.Errorf("interrupted before node %s: %w; k3scert cluster rotate --resume continues", p.Steps[batch[0]].Node.Name, err))
		}
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for k, i := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[k] = doNode(i)
			}()
		}
		wg.Wait()
		for _, err := range errs { // the first failed node, in plan order
			if err != nil {
				return finish(err)
			}
		}
	}
	// The cluster, after the last node: every node on the wire again (a
	// later server's restart must not have broken an earlier one).
	var problems []string
	for _, s := range p.Steps {
		c, err := r.Verify(ctx, s.Node)
		if c.Node == "" {
			c.Node, c.Role = s.Node.Name, s.Node.Role
		}
		if err != nil {
			c.Problems = append(c.Problems, err.Error())
		}
		for _, pr := range c.Problems {
			problems = append(problems, s.Node.Name+": "+pr)
		}
		rep.Checks = append(rep.Checks, c)
		j.write(record{T: recVerified, At: now(), Node: s.Node.Name, Check: &c})
	}
	if len(problems) > 0 {
		j.write(record{T: recVerifyKO, At: now(), Error: strings.Join(problems, "; ")})
		return finish(&VerifyError{Problems: problems})
	}
	rep.Verified = true
	if err := j.write(record{T: recComplete, At: now()}); err != nil {
		return finish(err)
	}
	return finish(nil)
}

// Text renders the report for people.
func (r Report) Text() string {
	var b strings.Builder
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "  %d. %-20s %-6s %-13s", n.Order, n.Node, n.Role, n.State)
		if n.Result != nil && n.State != "not run" {
			fmt.Fprintf(&b, " took %6.1fs, down %5.1fs", n.Duration.Seconds(), n.Result.Downtime.Seconds())
		}
		if n.Error != "" {
			fmt.Fprintf(&b, "  %s", n.Error)
		}
		b.WriteString("\n")
	}
	for _, c := range r.Checks {
		status := "ok"
		if len(c.Problems) > 0 {
			status = strings.Join(c.Problems, "; ")
		}
		na := ""
		if !c.ServedNotAfter.IsZero() {
			na = " serves until " + c.ServedNotAfter.UTC().Format("2006-01-02")
		}
		kc := ""
		if c.Role == RoleServer {
			kc = fmt.Sprintf(", kubectl ok=%v", c.KubectlOK)
		}
		fmt.Fprintf(&b, "  verify %-20s%s%s: %s\n", c.Node, na, kc, status)
	}
	fmt.Fprintf(&b, "cluster: %.1fs in all, %.1fs of node downtime (one node at a time); journal %s\n", r.Duration.Seconds(), r.Downtime.Seconds(), r.Journal)
	return b.String()
}
