package rotate_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/rotate"
)

// TestMain lets this test binary act as a second k3scert: with
// K3SCERT_ROTATE_HELPER set it runs one rotation of the plan in that file
// and exits.
func TestMain(m *testing.M) {
	if plan := os.Getenv("K3SCERT_ROTATE_HELPER"); plan != "" {
		os.Exit(helperRotate(plan))
	}
	os.Exit(m.Run())
}

// stdinService: Stop blocks until stdin closes, so the parent decides
// when the rotation that holds the lock may go on.
type stdinService struct{}

func (stdinService) Name() string { return "helper k3s" }
func (stdinService) Stop(ctx context.Context) error {
	fmt.Println("stopping")
	io.Copy(io.Discard, os.Stdin)
	return nil
}
func (stdinService) Start(ctx context.Context) error { return nil }

func helperRotate(planFile string) int {
	b, err := os.ReadFile(planFile)
	if err != nil {
		fmt.Println("helper:", err)
		return 1
	}
	var p rotate.Plan
	if err := json.Unmarshal(b, &p); err != nil {
		fmt.Println("helper:", err)
		return 1
	}
	clock := func() time.Time { return install.Add(time.Minute) }
	e := &rotate.Executor{Plan: p, Service: stdinService{}, Now: clock, Command: "k3scert rotate --yes (helper)",
		Secrets: rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: p.Node.DataDir, Program: k3s.K3s})}
	err = e.Apply(context.Background())
	var le *rotate.LockedError
	switch {
	case err == nil:
		fmt.Println("rotated")
		return 0
	case errors.As(err, &le):
		fmt.Println("locked:", err)
		return 3
	}
	fmt.Println("failed:", err)
	return 1
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bytes.Buffer
	mu    *sync.Mutex
}

func startHelper(t *testing.T, planFile string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "K3SCERT_ROTATE_HELPER="+planFile)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin, out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stdout = syncWriter{h}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return h
}

type syncWriter struct{ h *helper }

func (w syncWriter) Write(p []byte) (int, error) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.h.out.Write(p)
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

func writePlan(t *testing.T, p rotate.Plan) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Five k3scert processes launched together on one data dir: exactly one
// rotates; the four others are refused at once, name the holder (pid,
// start time, command) and exit non-zero; nothing of the winner's
// journal or backup is touched by them.
func TestFiveSimultaneousRotations(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	p := planFor(t, dataDir, kc, install.Add(time.Minute))
	planFile := writePlan(t, p)
	var hs []*helper
	for range 5 {
		hs = append(hs, startHelper(t, planFile))
	}
	// Four are refused while the fifth holds the lock (its stop waits
	// for its stdin); then every stdin is closed.
	exits := map[*helper]int{}
	var winner *helper
	for len(exits) < 4 {
		for _, h := range hs {
			if _, done := exits[h]; done {
				continue
			}
			if out := h.output(); strings.HasPrefix(out, "locked:") || strings.HasPrefix(out, "failed:") || strings.HasPrefix(out, "helper:") {
				exits[h] = 3
			} else if strings.HasPrefix(out, "stopping") {
				if winner != nil && winner != h {
					t.Fatalf("two rotations reached stop at once")
				}
				winner = h
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the children's output, not a timed assertion
	}
	for winner == nil {
		for _, h := range hs {
			if _, done := exits[h]; !done && strings.HasPrefix(h.output(), "stopping") {
				winner = h
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, h := range hs {
		h.stdin.Close()
	}
	for !strings.Contains(winner.output(), "rotated") && !strings.Contains(winner.output(), "failed") {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(winner.output(), "rotated") {
		t.Fatalf("the lock holder did not rotate: %s", winner.output())
	}
	pid := strconv.Itoa(winner.cmd.Process.Pid)
	for _, h := range hs {
		if h == winner {
			continue
		}
		out := h.output()
		if !strings.HasPrefix(out, "locked:") || !strings.Contains(out, "pid "+pid) || !strings.Contains(out, "started 20") || !strings.Contains(out, "(helper)") {
			t.Errorf("a second rotation said %q, want a refusal naming pid %s, its start time and command", out, pid)
		}
	}
	st, err := rotate.ReadJournal(p.Journal)
	if err != nil || st.End != "complete" || len(st.Done) != len(p.Steps) {
		t.Errorf("journal: %+v %v", st, err)
	}
	if old, _ := filepath.Glob(p.Journal + ".*"); len(old) != 0 {
		t.Errorf("journals renamed by a loser: %v", old)
	}
	if bs, _ := filepath.Glob(filepath.Join(p.BackupDir, "rotate-*.tar.gz")); len(bs) != 1 {
		t.Errorf("backups %v, want exactly one", bs)
	}
}

// A holder killed with SIGKILL: the kernel drops its flock; the next
// invocation takes the lock, and reports the dead holder with its step
// and what the journal says — the lock is never silently broken.
func TestStaleLockReported(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	p := planFor(t, dataDir, kc, install.Add(time.Minute))
	h := startHelper(t, writePlan(t, p))
	for !strings.HasPrefix(h.output(), "stopping") {
		if out := h.output(); strings.Contains(out, "failed") || strings.Contains(out, "locked") || strings.Contains(out, "helper:") {
			t.Fatalf("helper ended: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// While it lives, a rollback is refused and names it.
	clock := func() time.Time { return install.Add(2 * time.Minute) }
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	svc := &stateService{running: false}
	err := rotate.Rollback(context.Background(), &rotate.Executor{Service: svc, Secrets: secrets, Now: clock}, p.Journal)
	if !errors.Is(err, rotate.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", h.cmd.Process.Pid)) {
		t.Fatalf("rollback during a live rotation: %v, want refused naming the holder", err)
	}
	if len(svc.calls) != 0 {
		t.Fatalf("the refused rollback touched the service: %v", svc.calls)
	}
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
	var warnings []string
	e := &rotate.Executor{Service: svc, Secrets: secrets, Now: clock, Progress: func(ev rotate.Event) {
		if ev.State == "warning" {
			warnings = append(warnings, ev.Detail)
		}
	}}
	if err := rotate.Rollback(context.Background(), e, p.Journal); err != nil {
		t.Fatalf("rollback after the holder died: %v", err)
	}
	want := fmt.Sprintf("previous holder pid %d", h.cmd.Process.Pid)
	if len(warnings) != 1 || !strings.Contains(warnings[0], want) || !strings.Contains(warnings[0], "died at step stop") || !strings.Contains(warnings[0], "completed 1 of 7 steps") {
		t.Errorf("warnings %q, want one naming %s, its step and the journal", warnings, want)
	}
	if !svc.isRunning() {
		t.Errorf("K3s not started by the rollback")
	}
	// The record is released now: the next holder sees nothing stale.
	l, err := rotate.AcquireLock(dataDir, rotate.LockOwner{PID: os.Getpid(), Command: "test"})
	if err != nil || l.Stale != nil {
		t.Fatalf("lock after a clean release: %v stale=%v", err, l.Stale)
	}
	l.Release()
}

// The lock record survives in the file for a human too.
func TestLockRecordReadable(t *testing.T) {
	dir := t.TempDir()
	l, err := rotate.AcquireLock(dir, rotate.LockOwner{PID: 4242, Started: install, Command: "k3scert rotate --yes"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetStep("listener")
	f, err := os.Open(rotate.LockPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(f).ReadString('\n')
	f.Close()
	if !strings.Contains(line, `"pid":4242`) || !strings.Contains(line, `"step":"listener"`) {
		t.Errorf("lock record %q", line)
	}
	_, err = rotate.AcquireLock(dir, rotate.LockOwner{PID: 1})
	if !errors.Is(err, rotate.ErrLocked) || !strings.Contains(err.Error(), "pid 4242") || !strings.Contains(err.Error(), "at step listener") {
		t.Errorf("second acquire: %v", err)
	}
	l.Release()
}
