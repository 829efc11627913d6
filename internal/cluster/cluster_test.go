package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const inv3x2 = `
program: k3s
ssh:
  user: root
  port: 2222
  sudo: true
nodes:
  - {name: s1, role: server, host: 10.0.0.11, api: "10.0.0.11:6443"}
  - {name: s2, role: server, host: admin@10.0.0.12}
  - {name: s3, role: server, host: 10.0.0.13}
  - {name: a1, role: agent, host: 10.0.0.21}
  - {name: a2, role: agent, host: 10.0.0.22}
`

func TestParseInventory(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte(inv3x2))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Nodes[1].API != "10.0.0.12:6443" || inv.SSH.Port != 2222 || !inv.SSH.Sudo {
		t.Errorf("defaults/fields: %s", inv.JSON())
	}
	bad := map[string]string{
		"nodes: [{name: s1, role: server, hots: x}]":                                           `inventory bad.yaml: unknown field "hots"`,
		"sshh: {}\nnodes: [{name: s1, role: server}]":                                          `inventory bad.yaml: unknown field "sshh"`,
		"ssh: {usr: root}\nnodes: [{name: s1, role: server}]":                                  `inventory bad.yaml: unknown field "usr"`,
		"nodes: [{name: a1, role: agent}]":                                                     "no server",
		"nodes: [{name: s1, role: server}, {name: s1, role: server}]":                          "appears twice",
		"nodes: [{name: s1, role: server}, {name: a1, role: agent}, {name: s2, role: server}]": "a server after an agent",
		"nodes: [{name: s1, role: master}]":                                                    `role "master"`,
		"program: k0s\nnodes: [{name: s1, role: server}]":                                      `program "k0s"`,
		"nodes: [{name: s1, role: server, host: '-oProxyCommand=x'}]":                          "not an ssh destination",
		"nodes: [{name: s1, role: server, api: nohostport}]":                                   "want host:port",
		"ssh: {strictHostKeyChecking: maybe}\nnodes: [{name: s1, role: server}]":               "strictHostKeyChecking",
		"":          "empty",
		"nodes: []": "no nodes",
	}
	for in, want := range bad {
		_, err := ParseInventory("bad.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func FuzzParseInventory(f *testing.F) {
	f.Add([]byte(inv3x2))
	f.Add([]byte("nodes: [{name: s1, role: server}]"))
	f.Add([]byte("nodes: [{name: s1, role: server, x: 1}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := ParseInventory("f.yaml", b)
		if err != nil {
			return
		}
		// Whatever parses is a valid cluster: a plan exists, servers first.
		p, err := NewPlan(inv)
		if err != nil {
			t.Fatalf("valid inventory, no plan: %v", err)
		}
		if len(p.Steps) != len(inv.Nodes) || p.Steps[0].Node.Role != RoleServer || p.Steps[0].Listener != ListenerRenew {
			t.Fatalf("plan %+v", p)
		}
	})
}

func TestPlanOrder(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte(inv3x2))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(inv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		got = append(got, s.Node.Name+":"+s.Listener)
	}
	if want := "s1:renew s2:adopt s3:adopt a1: a2:"; strings.Join(got, " ") != want {
		t.Errorf("plan %q, want %q", strings.Join(got, " "), want)
	}
	p = p.WithCommands(func(s NodeStep) string { return "ssh " + s.Node.Host })
	sum := p.Summary()
	for _, n := range []string{"1. s1", "2. s2", "3. s3", "4. a1", "5. a2", "ssh admin@10.0.0.12"} {
		if !strings.Contains(sum, n) {
			t.Errorf("summary lacks %q:\n%s", n, sum)
		}
	}
}

// scripted is a Runner whose nodes succeed unless told to fail; it
// records every call.
type scripted struct {
	mu      sync.Mutex
	calls   []string
	fail    map[string]error // Rotate/Resume of the node fails
	badView map[string]string
	clock   *time.Time
}

func (s *scripted) res(st NodeStep, outcome string) NodeResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := *s.clock
	*s.clock = s.clock.Add(10 * time.Second)
	return NodeResult{Node: st.Node.Name, Role: st.Node.Role, Started: start, Finished: *s.clock, Downtime: 4 * time.Second, Outcome: outcome}
}

func (s *scripted) note(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *scripted) Rotate(_ context.Context, st NodeStep) (NodeResult, error) {
	s.note("rotate " + st.Node.Name + " " + st.Listener)
	if err := s.fail[st.Node.Name]; err != nil {
		return NodeResult{Node: st.Node.Name, Outcome: "rolled back from backup X: K3s is running again on its OLD certificates"}, err
	}
	return s.res(st, "complete"), nil
}

func (s *scripted) Resume(_ context.Context, st NodeStep) (NodeResult, error) {
	s.note("resume " + st.Node.Name)
	if err := s.fail[st.Node.Name]; err != nil {
		return NodeResult{}, err
	}
	return s.res(st, "complete"), nil
}

func (s *scripted) Verify(_ context.Context, n Node) (NodeCheck, error) {
	s.note("verify " + n.Name)
	s.mu.Lock()
	c := NodeCheck{Node: n.Name, Role: n.Role, ServedNotAfter: s.clock.AddDate(1, 0, 0), KubectlOK: n.Role == RoleServer}
	s.mu.Unlock()
	if p := s.badView[n.Name]; p != "" {
		c.Problems = []string{p}
	}
	return c, nil
}

func testPlan(t *testing.T) Plan {
	inv, err := ParseInventory("inv.yaml", []byte(inv3x2))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(inv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunStopsAtFailedNodeAndResumes(t *testing.T) {
	p := testPlan(t)
	clock := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	jp := filepath.Join(t.TempDir(), "cluster.journal")
	r := &scripted{fail: map[string]error{"s2": errors.New("verify: :6443 serves an expired certificate")}, clock: &clock}
	rep, err := Run(context.Background(), p, r, jp, now)
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Step.Node.Name != "s2" {
		t.Fatalf("err %v, want a NodeError at s2", err)
	}
	if !strings.Contains(err.Error(), "rolled it back") || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("error does not say the node rolled back and how to go on: %v", err)
	}
	if want := "rotate s1 renew,verify s1,rotate s2 adopt"; strings.Join(r.calls, ",") != want {
		t.Errorf("calls %v, want %s", r.calls, want)
	}
	if rep.Nodes[0].State != "done" || rep.Nodes[1].State != "failed" || rep.Nodes[2].State != "not run" {
		t.Errorf("report states %+v", rep.Nodes)
	}
	st, err := ReadJournal(jp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Nodes["s1"] != NodeDone || st.Nodes["s2"] != NodeFailed || st.Nodes["s3"] != NodePending || st.Complete {
		t.Errorf("journal %+v", st.Nodes)
	}
	// A new run refuses the unfinished journal.
	if _, err := Run(context.Background(), p, r, jp, now); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("second run: %v, want ErrInterrupted", err)
	}
	// A torn last line (a crash mid-write) is tolerated and cut.
	f, _ := os.OpenFile(jp, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"t":"done","node":"s2"`)
	f.Close()
	r.calls, r.fail = nil, nil
	rep, err = Resume(context.Background(), p, r, jp, now)
	if err != nil {
		t.Fatal(err)
	}
	want := "resume s2,verify s2,rotate s3 adopt,verify s3,rotate a1 ,verify a1,rotate a2 ,verify a2,verify s1,verify s2,verify s3,verify a1,verify a2"
	if strings.Join(r.calls, ",") != want {
		t.Errorf("resume calls\n %s\nwant\n %s", strings.Join(r.calls, ","), want)
	}
	if !rep.Verified || !rep.Resumed || rep.Nodes[0].State != "done earlier" || len(rep.Checks) != 5 {
		t.Errorf("report %+v", rep)
	}
	if rep.Downtime != 5*4*time.Second { // s1 from the journal, s2..a2 now
		t.Errorf("downtime %v", rep.Downtime)
	}
	st, err = ReadJournal(jp)
	if err != nil || !st.Complete {
		t.Fatalf("journal after resume: %+v %v", st, err)
	}
	b, _ := os.ReadFile(jp)
	if strings.Contains(string(b), `"node":"s2"{`) {
		t.Error("torn line not cut")
	}
	// Complete: nothing to resume; a new run starts a new journal.
	if _, err := Resume(context.Background(), p, r, jp, now); err == nil || !strings.Contains(err.Error(), "already completed") {
		t.Errorf("resume after complete: %v", err)
	}
	r.calls = nil
	if _, err := Run(context.Background(), p, r, jp, now); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(jp + ".*"); len(m) != 1 {
		t.Errorf("the ended journal was not kept beside: %v", m)
	}
}

func TestResumeRefusesAnotherPlan(t *testing.T) {
	p := testPlan(t)
	clock := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	jp := filepath.Join(t.TempDir(), "cluster.journal")
	r := &scripted{fail: map[string]error{"s1": errors.New("boom")}, clock: &clock}
	if _, err := Run(context.Background(), p, r, jp, now); err == nil {
		t.Fatal("no error")
	}
	q := p
	q.Steps = slices.Clone(p.Steps[:4])
	if _, err := Resume(context.Background(), q, r, jp, now); err == nil || !strings.Contains(err.Error(), "no longer matches") {
		t.Errorf("resume with another inventory: %v", err)
	}
	if _, err := Resume(context.Background(), Plan{}, r, filepath.Join(t.TempDir(), "none"), now); !errors.Is(err, ErrNoJournal) {
		t.Errorf("resume without a journal: %v", err)
	}
	// The same nodes with fixed arguments: the resumed run uses them.
	fixed := p
	fixed.Steps = slices.Clone(p.Steps)
	fixed.Steps[0].Node.RotateArgs = []string{"--start-cmd", "fixed"}
	r.fail = nil
	var seen []string
	rr := &argsRunner{scripted: r, seen: &seen}
	if _, err := Resume(context.Background(), fixed, rr, jp, now); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || seen[0] != "s1 --start-cmd fixed" {
		t.Errorf("the resumed run did not use the inventory's fixed arguments: %v", seen)
	}
}

func TestClusterVerificationFailure(t *testing.T) {
	p := testPlan(t)
	clock := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	jp := filepath.Join(t.TempDir(), "cluster.journal")
	r := &scripted{clock: &clock, badView: map[string]string{"a2": "agent/serving-kubelet.crt expired"}}
	rep, err := Run(context.Background(), p, r, jp, func() time.Time { return clock })
	var ne *NodeError
	if !errors.As(err, &ne) || !ne.Verify || ne.Step.Node.Name != "a2" {
		t.Fatalf("err %v", err)
	}
	if rep.Verified || rep.Nodes[4].State != "failed" {
		t.Errorf("report %+v", rep)
	}
}

// Agents in batches: a failure inside a batch lets the batch finish, then
// stops the run before the next batch; servers stay one at a time.
func TestAgentConcurrency(t *testing.T) {
	inv, err := ParseInventory("inv.yaml", []byte("nodes:\n- {name: s1, role: server}\n- {name: s2, role: server}\n- {name: a1, role: agent}\n- {name: a2, role: agent}\n- {name: a3, role: agent}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPlan(inv)
	p.AgentConcurrency = 2
	clock := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &scripted{clock: &clock, fail: map[string]error{"a2": errors.New("boom")}}
	jp := filepath.Join(t.TempDir(), "j")
	rep, err := Run(context.Background(), p, r, jp, func() time.Time { return clock })
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Step.Node.Name != "a2" {
		t.Fatalf("err %v", err)
	}
	got := map[string]string{}
	for _, n := range rep.Nodes {
		got[n.Node] = n.State
	}
	if got["s1"] != "done" || got["s2"] != "done" || got["a1"] != "done" || got["a2"] != "failed" || got["a3"] != "not run" {
		t.Errorf("states %v", got)
	}
	if !slices.Contains(r.calls, "rotate a1 ") || slices.Contains(r.calls, "rotate a3 ") || strings.Join(r.calls[:4], ",") != "rotate s1 renew,verify s1,rotate s2 adopt,verify s2" {
		t.Errorf("calls %v", r.calls)
	}
	st, _ := ReadJournal(jp)
	if st.Nodes["a1"] != NodeDone || st.Nodes["a2"] != NodeFailed || st.Nodes["a3"] != NodePending {
		t.Errorf("journal %v", st.Nodes)
	}
}

func TestQuoteAndResultParsing(t *testing.T) {
	for in, want := range map[string]string{
		"plain":             "plain",
		"/var/lib/k3s":      "/var/lib/k3s",
		"a b":               "'a b'",
		"it's":              `'it'\''s'`,
		"":                  "''",
		"$(rm -rf /)":       "'$(rm -rf /)'",
		"--stop-cmd=a;b":    "'--stop-cmd=a;b'",
		"K=V /bin/x --flag": "'K=V /bin/x --flag'",
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
	out := []byte(`{"apiVersion":"x","kind":"Plan","steps":[]}
{"apiVersion":"x","kind":"RotateResult","ok":false,"outcome":"rolled back","journalEnd":"rolledback","downtime":5}
`)
	res, err := ParseRotateResult(out)
	if err != nil || res.OK || res.JournalEnd != "rolledback" || res.Downtime != 5 {
		t.Errorf("result %+v %v", res, err)
	}
	if _, err := ParseRotateResult([]byte(`{"kind":"Plan"}`)); err == nil || !strings.Contains(err.Error(), "no rotation result") {
		t.Errorf("plan only: %v", err)
	}
	if _, err := ParseRotateResult([]byte("k3scert: error: boom\n")); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("text: %v", err)
	}
	r := &SSHRunner{Inv: Inventory{Program: "k3s", SSH: SSHOptions{Sudo: true, K3scert: "/opt/k3scert", Args: []string{"-d", "/srv/k3s dir"}},
		Nodes: []Node{{Name: "s1", Role: RoleServer, Host: "ops@s1", API: "s1:6443"}}}}
	got := r.Command(NodeStep{Node: r.Inv.Nodes[0], Listener: ListenerRenew})
	want := `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=15 -o ServerAliveInterval=15 -- ops@s1 'sudo -n /opt/k3scert rotate -o json --yes --cluster-listener renew -d '\''/srv/k3s dir'\'''`
	if got != want {
		t.Errorf("command\n %s\nwant\n %s", got, want)
	}
	if d := r.dataDir(r.Inv.Nodes[0]); d != "/srv/k3s dir" {
		t.Errorf("data dir %q", d)
	}
}

// argsRunner records the arguments each node is rotated or resumed with.
type argsRunner struct {
	*scripted
	seen *[]string
}

func (a *argsRunner) Resume(ctx context.Context, st NodeStep) (NodeResult, error) {
	*a.seen = append(*a.seen, st.Node.Name+" "+strings.Join(st.Node.RotateArgs, " "))
	return a.scripted.Resume(ctx, st)
}
