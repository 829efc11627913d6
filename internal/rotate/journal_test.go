package rotate_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/rotate"
)

func TestResumeWithoutJournal(t *testing.T) {
	dataDir, _ := genNodeWithDatastore(t)
	j := rotate.JournalPath(dataDir, k3s.RoleServer)
	svc := &stateService{running: true}
	for name, f := range map[string]func(context.Context, *rotate.Executor, string) error{"resume": rotate.Resume, "rollback": rotate.Rollback} {
		err := f(context.Background(), &rotate.Executor{Service: svc, Now: func() time.Time { return install }}, j)
		if !errors.Is(err, rotate.ErrNoJournal) || !strings.Contains(err.Error(), "no interrupted rotation") {
			t.Errorf("%s without a journal: %v", name, err)
		}
	}
	if len(svc.calls) != 0 {
		t.Errorf("service touched: %v", svc.calls)
	}
}

// A journal whose plan has no steps is not "finished": K3s is started and
// the error says the journal is damaged.
func TestResumeEmptyPlan(t *testing.T) {
	dataDir, _ := genNodeWithDatastore(t)
	j := rotate.JournalPath(dataDir, k3s.RoleServer)
	plan := rotate.Plan{Node: report.Node{DataDir: dataDir, Program: "k3s", Role: "server"}, Journal: j}
	b, _ := json.Marshal(map[string]any{"t": "plan", "at": install, "plan": plan})
	if err := os.WriteFile(j, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := &stateService{running: false}
	err := rotate.Resume(context.Background(), &rotate.Executor{Service: svc, Now: func() time.Time { return install }}, j)
	if err == nil || !strings.Contains(err.Error(), "no steps") || !strings.Contains(err.Error(), "K3s was started") {
		t.Fatalf("resume of an empty plan: %v", err)
	}
	if !svc.isRunning() {
		t.Errorf("K3s left stopped")
	}
	if err := (&rotate.Executor{Plan: plan, Service: svc, Now: func() time.Time { return install }}).Apply(context.Background()); err == nil {
		t.Errorf("apply of an empty plan succeeded")
	}
}

// A crash mid-write leaves a torn last line; --resume cuts it before it
// appends, so the journal stays readable through any number of resumes.
func TestTornLineThenResume(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	clock := func() time.Time { return install.Add(time.Minute) }
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	p := planFor(t, dataDir, kc, clock())
	svc := &stateService{running: true}
	e := &rotate.Executor{Plan: p, Service: svc, Secrets: secrets, Now: clock, AfterStep: func(i int) error {
		if i == 2 {
			return rotate.ErrKilled
		}
		return nil
	}}
	if err := e.Apply(context.Background()); !errors.Is(err, rotate.ErrKilled) {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p.Journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"t":"begin","step":3,"name":"renew-le`) // the kill hit mid-write
	f.Close()
	if _, err := rotate.ReadJournal(p.Journal); err != nil {
		t.Fatalf("torn journal unreadable: %v", err)
	}
	e2 := &rotate.Executor{Service: svc, Secrets: secrets, Now: clock, AfterStep: func(i int) error {
		if i == 4 {
			return rotate.ErrKilled
		}
		return nil
	}}
	if err := rotate.Resume(context.Background(), e2, p.Journal); !errors.Is(err, rotate.ErrKilled) {
		t.Fatalf("first resume: %v", err)
	}
	st, err := rotate.ReadJournal(p.Journal)
	if err != nil || st.NextStep != 5 {
		t.Fatalf("journal after a resume over a torn line: next %d, %v", st.NextStep, err)
	}
	if err := rotate.Resume(context.Background(), &rotate.Executor{Service: svc, Secrets: secrets, Now: clock}, p.Journal); err != nil {
		t.Fatalf("second resume: %v", err)
	}
	if st, err := rotate.ReadJournal(p.Journal); err != nil || st.End != "complete" {
		t.Fatalf("journal: %+v %v", st.End, err)
	}
}

// A journal written by an older k3scert, with a record appended to a
// torn line, is still read: the torn part never completed.
func TestJournalTornLineWithAppendedRecord(t *testing.T) {
	j := filepath.Join(t.TempDir(), "journal")
	plan := rotate.Plan{Steps: []rotate.Step{{Index: 0, Name: "preflight"}, {Index: 1, Name: "stop"}}}
	pb, _ := json.Marshal(map[string]any{"t": "plan", "at": install, "plan": plan})
	body := string(pb) + "\n" + `{"t":"done","step":0,"name":"preflight","at":"2020-07-26T04:53:44Z"}` + "\n" +
		`{"t":"begin","step":1,"na{"t":"resume","at":"2020-07-26T04:53:44Z","step":1}` + "\n"
	if err := os.WriteFile(j, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := rotate.ReadJournal(j)
	if err != nil || st.NextStep != 1 {
		t.Fatalf("st %+v, err %v", st, err)
	}
}

// Two backups in the same second get different names.
func TestBackupNamesUnique(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	clock := func() time.Time { return install.Add(time.Minute) } // a frozen clock: same instant twice
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	var backups []string
	for range 2 {
		p := planFor(t, dataDir, kc, clock())
		e := &rotate.Executor{Plan: p, Service: &stateService{running: true}, Secrets: secrets, Now: clock}
		if err := e.Apply(context.Background()); err != nil {
			t.Fatal(err)
		}
		st, _ := rotate.ReadJournal(p.Journal)
		backups = append(backups, st.Backup)
	}
	if backups[0] == backups[1] {
		t.Fatalf("two rotations wrote the same backup %s", backups[0])
	}
	for _, b := range backups {
		if _, err := os.Stat(b); err != nil {
			t.Errorf("backup %s: %v", b, err)
		}
	}
	if old, _ := filepath.Glob(rotate.JournalPath(dataDir, k3s.RoleServer) + ".2020*"); len(old) != 1 {
		t.Errorf("the first journal was not kept beside: %v", old)
	}
}

// Every start has a deadline, even through a shell command whose child
// keeps running: the process group is killed and the error says so.
func TestCommandServiceDeadline(t *testing.T) {
	svc := rotate.CommandService{Label: "hanging k3s", StopCmd: "true", StartCmd: "sleep 600 & sleep 600"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := svc.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("start: %v, want a deadline error", err)
	}
	// systemd style: --no-block start, then poll is-active until active.
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.WriteFile(state, []byte("activating\n"), 0o600)
	poll := rotate.CommandService{Label: "unit", StartCmd: "true", ActiveCmd: "cat " + state, Poll: 10 * time.Millisecond}
	// Generous: on a loaded machine the first `cat` alone may take longer
	// than a short deadline, and the test needs at least one answer.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if err := poll.Start(ctx2); err == nil || !strings.Contains(err.Error(), `"activating"`) {
		t.Fatalf("never-active unit: %v", err)
	}
	os.WriteFile(state, []byte("failed\n"), 0o600)
	if err := poll.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "failed to start") {
		t.Fatalf("failed unit: %v", err)
	}
	os.WriteFile(state, []byte("active\n"), 0o600)
	if err := poll.Start(context.Background()); err != nil {
		t.Fatalf("active unit: %v", err)
	}
}

// The rollback's own start has a deadline and RKE2's force-restart is
// written before it, in both directions.
func TestRollbackStartDeadlineAndForceRestart(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	clock := func() time.Time { return install.Add(time.Minute) }
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	p := planFor(t, dataDir, kc, clock())
	p.ForceRestart = filepath.Join(dataDir, "force-restart")
	svc := &stateService{running: true, startHang: 2} // the start and the rollback's start hang
	e := &rotate.Executor{Plan: p, Service: svc, Secrets: secrets, Now: clock, StartTimeout: 200 * time.Millisecond}
	err := e.Apply(context.Background())
	var re *rotate.RunError
	if !errors.As(err, &re) || re.Outcome.Running || !strings.Contains(err.Error(), "NOT running") || !strings.Contains(err.Error(), "did not finish within") {
		t.Fatalf("err = %v, want a rollback whose start also timed out, reported as not running", err)
	}
	if !re.Outcome.Identical {
		t.Errorf("files not restored before the failed start: %+v", re.Outcome)
	}
	if _, err := os.Stat(p.ForceRestart); err != nil {
		t.Errorf("force-restart not written for the rollback's start: %v", err)
	}
}
