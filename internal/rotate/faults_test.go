package rotate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/rotate"
)

// stateService stands in for K3s in the fault tests: it knows whether K3s
// runs, and can fail, or hang in, its next stop or start.
type stateService struct {
	mu                             sync.Mutex
	running                        bool
	calls                          []string
	stopFail, startFail, startHang int
}

func (s *stateService) Name() string { return "fake k3s" }

func (s *stateService) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "stop")
	if s.stopFail > 0 {
		s.stopFail--
		return errors.New("systemctl stop: unit busy (injected)")
	}
	s.running = false
	return nil
}

func (s *stateService) Start(ctx context.Context) error {
	s.mu.Lock()
	s.calls = append(s.calls, "start")
	if s.startHang > 0 {
		s.startHang--
		s.mu.Unlock()
		<-ctx.Done() // a Type=notify unit that never sends READY
		return ctx.Err()
	}
	defer s.mu.Unlock()
	if s.startFail > 0 {
		s.startFail--
		return errors.New("k3s exited: failed to start (injected)")
	}
	s.running = true
	return nil
}

func (s *stateService) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// mountTmpfs mounts a tmpfs of size bytes at dir, unmounted at cleanup.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the fault tests (needs root and CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() { unmount(t, dir) })
}

func unmount(t *testing.T, dir string) {
	if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
		t.Errorf("umount %s: %v: %s", dir, err, out)
	}
}

// bindReadOnly makes dir read-only with a bind mount over itself.
func bindReadOnly(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("bind mount: %v: %s", err, out)
	}
	t.Cleanup(func() { unmount(t, dir) })
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
}

func chattr(t *testing.T, flag, path string) {
	t.Helper()
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr not installed")
	}
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v: %s", flag, path, err, out)
	}
}

func immutable(t *testing.T, path string) {
	t.Helper()
	chattr(t, "+i", path)
	t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
}

// fill writes to dir until its file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// Smaller writes until not even 512 bytes fit.
	for _, n := range []int{4096, 512} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

// fillLeaving fills dir's file system until about free bytes are left.
func fillLeaving(t *testing.T, dir string, free int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	if avail <= free {
		return
	}
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, avail-free)); err != nil {
		t.Fatal(err)
	}
}

// snapshot records every entry the rotation may touch with its kind,
// mode, owner and content hash, plus the secret: "identical" means equal
// snapshots.
func snapshot(t *testing.T, dataDir, kubeconfig string, secrets func(context.Context) (rotate.SecretStore, error)) map[string]string {
	t.Helper()
	out := map[string]string{}
	walk := func(root string) {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if strings.HasPrefix(d.Name(), rotate.JournalName) || strings.HasPrefix(d.Name(), ".k3scert") || d.Name() == rotate.LockName {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return nil
			}
			st := fi.Sys().(*syscall.Stat_t)
			v := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				tgt, _ := os.Readlink(p)
				v += " -> " + tgt
			case fi.Mode().IsRegular() && fi.Size() > hugeFile:
				// An airgap tarball (realnode): compared by size and
				// mtime, never read, as the rotation must never read it.
				v += fmt.Sprintf(" size %d mtime %d", fi.Size(), fi.ModTime().UnixNano())
			case fi.Mode().IsRegular():
				b, _ := os.ReadFile(p)
				h := sha256.Sum256(b)
				v += " " + hex.EncodeToString(h[:8])
			}
			out[p] = v
			return nil
		})
	}
	walk(filepath.Join(dataDir, "server"))
	walk(filepath.Join(dataDir, "agent"))
	if kubeconfig != "" {
		walk(kubeconfig)
	}
	if secrets != nil {
		s := readSecret(t, secrets)
		h := sha256.Sum256(append(append([]byte{}, s.Data["tls.crt"]...), s.Data["tls.key"]...))
		out["secret"] = hex.EncodeToString(h[:8])
	}
	// kine's SQLite files change on every open; the secret is compared
	// through kine instead.
	for p := range out {
		if strings.Contains(p, "/server/db/") || strings.HasSuffix(p, "/server/db") {
			delete(out, p)
		}
	}
	return out
}

// hugeFile: larger regular files are not hashed by snapshot.
const hugeFile = 64 << 20

func diffSnapshots(before, after map[string]string) []string {
	var d []string
	for p, v := range before {
		if after[p] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", p, v, after[p]))
		}
	}
	for p, v := range after {
		if _, ok := before[p]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", p, v))
		}
	}
	sort.Strings(d)
	return d
}

type faultCase struct {
	step, fault string
	inject      func(t *testing.T, env *faultEnv)
	want        string // "identical" or "renewed"
	errHas      []string
	errHasNot   []string
}

type faultEnv struct {
	root, dataDir, kubeconfig string
	plan                      rotate.Plan
	svc                       *stateService
	verifyFail                bool
}

var (
	diskFull = func(t *testing.T, env *faultEnv) { fill(t, env.root) }
)

// TestFailurePathMatrix injects a fault at each step — a full disk on a
// small tmpfs, an immutable (chattr +i) or read-only (bind mount)
// directory, an unwritable datastore, a failed, hanging or refused
// stop/start, a failed verify — and checks where the node ends: K3s
// running, and the node identical to before (every entry, mode, owner,
// the secret) or renewed. Run with -v to print the matrix.
func TestFailurePathMatrix(t *testing.T) {
	cases := []faultCase{
		{step: rotate.StepPreflight, fault: "disk full", inject: diskFull, want: "identical", errHas: []string{"no space left on device", "never stopped"}},
		{step: rotate.StepPreflight, fault: "disk nearly full (256 KiB left)", inject: func(t *testing.T, env *faultEnv) {
			fillLeaving(t, env.root, 256<<10)
		}, want: "identical", errHas: []string{"not enough free space", "never stopped"}},
		{step: rotate.StepPreflight, fault: "backup dir immutable", inject: func(t *testing.T, env *faultEnv) {
			os.MkdirAll(env.plan.BackupDir, 0o700)
			immutable(t, env.plan.BackupDir)
		}, want: "identical", errHas: []string{"backup directory cannot be written", "never stopped"}},
		{step: rotate.StepPreflight, fault: "backup dir read-only mount", inject: func(t *testing.T, env *faultEnv) {
			os.MkdirAll(env.plan.BackupDir, 0o700)
			bindReadOnly(t, env.plan.BackupDir)
		}, want: "identical", errHas: []string{"read-only file system", "never stopped"}},
		{step: rotate.StepPreflight, fault: "datastore immutable", inject: func(t *testing.T, env *faultEnv) {
			immutable(t, filepath.Join(env.dataDir, "server/db/state.db"))
		}, want: "identical", errHas: []string{"datastore", "never stopped"}},
		{step: rotate.StepStop, fault: "stop fails", inject: func(t *testing.T, env *faultEnv) { env.svc.stopFail = 1 }, want: "identical", errHas: []string{"unit busy", "nothing was changed"}},
		{step: rotate.StepStop, fault: "disk full", inject: diskFull, want: "identical", errHas: []string{"no space left on device", "nothing was changed"}},
		{step: rotate.StepBackup, fault: "disk full", inject: diskFull, want: "identical", errHas: []string{"no space left on device", "nothing was changed"}},
		{step: rotate.StepBackup, fault: "backup dir immutable", inject: func(t *testing.T, env *faultEnv) {
			os.MkdirAll(env.plan.BackupDir, 0o700)
			immutable(t, env.plan.BackupDir)
		}, want: "identical", errHas: []string{"operation not permitted", "nothing was changed"}},
		{step: rotate.StepBackup, fault: "backup dir read-only mount", inject: func(t *testing.T, env *faultEnv) {
			os.MkdirAll(env.plan.BackupDir, 0o700)
			bindReadOnly(t, env.plan.BackupDir)
		}, want: "identical", errHas: []string{"read-only file system", "nothing was changed"}},
		{step: rotate.StepLeaves, fault: "disk full", inject: diskFull, want: "identical", errHas: []string{"no space left on device", "rolled back"}},
		{step: rotate.StepLeaves, fault: "server/tls read-only mount", inject: func(t *testing.T, env *faultEnv) {
			bindReadOnly(t, filepath.Join(env.dataDir, "server/tls"))
		}, want: "identical", errHas: []string{"read-only file system", "rolled back"}},
		{step: rotate.StepLeaves, fault: "server/tls immutable", inject: func(t *testing.T, env *faultEnv) {
			immutable(t, filepath.Join(env.dataDir, "server/tls"))
		}, want: "identical", errHas: []string{"operation not permitted", "rolled back"}},
		{step: rotate.StepListener, fault: "disk full", inject: diskFull, want: "identical", errHas: []string{"no space left on device", "rolled back"}},
		{step: rotate.StepListener, fault: "datastore disk full", inject: func(t *testing.T, env *faultEnv) {
			fill(t, filepath.Join(env.dataDir, "server/db"))
		}, want: "identical", errHas: []string{"no space left on device", "rolled back"}},
		{step: rotate.StepListener, fault: "datastore immutable", inject: func(t *testing.T, env *faultEnv) {
			immutable(t, filepath.Join(env.dataDir, "server/db/state.db"))
		}, want: "identical", errHas: []string{"operation not permitted", "rolled back"}},
		// After the renewal a full disk changes nothing the rotation needs
		// (the journal's last page usually has room for its records): the
		// node is renewed, or, when a record cannot be written, rolled back.
		{step: rotate.StepStart, fault: "disk full", inject: diskFull, want: "either"},
		{step: rotate.StepStart, fault: "start fails", inject: func(t *testing.T, env *faultEnv) { env.svc.startFail = 1 }, want: "identical", errHas: []string{"failed to start", "rolled back"}},
		{step: rotate.StepStart, fault: "start hangs (Type=notify, no READY)", inject: func(t *testing.T, env *faultEnv) { env.svc.startHang = 1 }, want: "identical", errHas: []string{"did not finish within", "rolled back"}},
		{step: rotate.StepVerify, fault: "disk full", inject: diskFull, want: "either"},
		{step: rotate.StepVerify, fault: "verify fails", inject: func(t *testing.T, env *faultEnv) { env.verifyFail = true }, want: "identical", errHas: []string{"served an expired certificate", "rolled back"}},
		{step: rotate.StepVerify, fault: "backup dir read-only mount (after the backup)", inject: func(t *testing.T, env *faultEnv) {
			bindReadOnly(t, env.plan.BackupDir)
		}, want: "renewed"},
	}
	var rows []string
	var mu sync.Mutex
	for _, c := range cases {
		t.Run(c.step+"/"+c.fault, func(t *testing.T) {
			row := runFault(t, c)
			mu.Lock()
			rows = append(rows, row)
			mu.Unlock()
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nfailure-path matrix (step x fault -> end state):\n")
	fmt.Fprintf(&b, "| %-13s | %-45s | %-8s | %-9s | %s\n", "step", "fault", "running", "node", "report")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	t.Log(b.String())
}

func runFault(t *testing.T, c faultCase) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mnt")
	mountTmpfs(t, root, 24<<20)
	dataDir, kc := genNodeIn(t, root)
	if strings.HasPrefix(c.fault, "datastore disk full") {
		// The datastore on its own small volume.
		db := filepath.Join(dataDir, "server/db")
		b, err := os.ReadFile(filepath.Join(db, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, x := range []string{"state.db-wal", "state.db-shm"} {
			os.Remove(filepath.Join(db, x))
		}
		mountTmpfs(t, db, 2<<20)
		if err := os.WriteFile(filepath.Join(db, "state.db"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	clock := func() time.Time { return install.Add(time.Minute) }
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	env := &faultEnv{root: root, dataDir: dataDir, kubeconfig: kc, svc: &stateService{running: true}}
	env.plan = planFor(t, dataDir, kc, clock())
	before := snapshot(t, dataDir, kc, secrets)
	idx := -1
	for _, s := range env.plan.Steps {
		if s.Name == c.step {
			idx = s.Index
		}
	}
	if idx < 0 {
		t.Fatalf("no step %s", c.step)
	}
	e := &rotate.Executor{Plan: env.plan, Service: env.svc, Secrets: secrets, Now: clock, StartTimeout: 500 * time.Millisecond,
		Verify: func(ctx context.Context, p rotate.Plan) error {
			if env.verifyFail {
				return errors.New("kube-apiserver served an expired certificate (injected)")
			}
			return verifyFiles(dataDir, kc, clock())
		},
	}
	if idx == 0 {
		c.inject(t, env)
	} else {
		e.BeforeStep = func(i int) {
			if i == idx {
				c.inject(t, env)
			}
		}
	}
	err := e.Apply(context.Background())
	// Lift the faults before looking (the fault's own cleanups run later).
	for _, f := range []string{"server/tls", "server/db/state.db", "server/" + rotate.BackupDirName} {
		exec.Command("chattr", "-i", filepath.Join(dataDir, f)).Run()
	}
	filler, _ := filepath.Glob(filepath.Join(root, "filler-*"))
	dbFiller, _ := filepath.Glob(filepath.Join(dataDir, "server/db/filler-*"))
	for _, f := range append(filler, dbFiller...) {
		os.Remove(f)
	}
	after := snapshot(t, dataDir, kc, secrets)
	diffs := diffSnapshots(before, after)
	state := "identical"
	if len(diffs) > 0 {
		state = "renewed"
		if verr := verifyFiles(dataDir, kc, clock()); verr != nil {
			state = "MIXED"
			t.Errorf("node neither as before nor renewed: %v\n%s", verr, strings.Join(diffs, "\n"))
		}
	}
	if !env.svc.isRunning() {
		t.Errorf("K3s is not running at the end (calls %v): %v", env.svc.calls, err)
	}
	if state != c.want && (c.want != "either" || state == "MIXED") {
		t.Errorf("end state %s, want %s: %v\n%s", state, c.want, err, strings.Join(diffs, "\n"))
	}
	msg := "ok"
	if err != nil {
		msg = err.Error()
	}
	if c.want == "identical" && err == nil {
		t.Errorf("no error reported")
	}
	for _, h := range c.errHas {
		if err == nil || !strings.Contains(err.Error(), h) {
			t.Errorf("error %q lacks %q", msg, h)
		}
	}
	if err != nil && strings.Contains(err.Error(), "revision mismatch") && !strings.Contains(err.Error(), "kine reported it as") {
		t.Errorf("a write failure reported as a conflict: %v", err)
	}
	var re *rotate.RunError
	if err != nil && !errors.As(err, &re) {
		t.Errorf("error is not a *RunError (no end state): %v", err)
	}
	if c.want == "either" && (err == nil) != (state == "renewed") {
		t.Errorf("state %s but error %v", state, err)
	}
	if re != nil && (!re.Outcome.Running || (state == "identical") != re.Outcome.Identical) {
		t.Errorf("reported outcome %+v disagrees with the node (%s)", re.Outcome, state)
	}
	running := "yes"
	if !env.svc.isRunning() {
		running = "NO"
	}
	msg = strings.ReplaceAll(msg, dataDir, "<data-dir>")
	if len(msg) > 220 {
		msg = msg[:220] + "..."
	}
	return fmt.Sprintf("| %-13s | %-45s | %-8s | %-9s | %s", c.step, c.fault, running, state, msg)
}

// verifyFiles is the verify of the fault tests: check on the files finds
// nothing critical.
func verifyFiles(dataDir, kc string, at time.Time) error {
	r, _, err := check.Run(context.Background(), check.Options{DataDir: dataDir, Profile: "v1.18", AdminKubeconfig: kc, At: at, NoEndpoint: true})
	if err != nil {
		return err
	}
	for _, f := range r.Findings {
		if f.Severity == report.Critical {
			return fmt.Errorf("critical %s %s: %s", f.Code, f.Location, f.Message)
		}
	}
	return nil
}
