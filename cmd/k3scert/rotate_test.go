package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/rotate"
)

// A data dir k3scert may not read says "permission denied" (and to run as
// root), not "is this a k3s data dir?". Run as user nobody through
// setpriv, with this test binary acting as k3scert.
func TestRotatePermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a data dir another user cannot read")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	root, err := os.MkdirTemp("", "k3scert-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(root, "k3s")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileCurrent}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dataDir, "server"), 0o700); err != nil {
		t.Fatal(err)
	}
	// This test binary runs as "k3scert" when called by that name.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "k3scert")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "rotate", "-d", dataDir, "--dry-run", "--no-endpoints")
	cmd.Env = append(os.Environ(), "HOME="+root)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("exit %v, want 3: %s", err, out)
	}
	if !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "run it as root") || strings.Contains(string(out), "data dir?") {
		t.Errorf("output %q, want permission denied and a hint to run as root", out)
	}
}

// A rotation outlives the session that started it: SIGHUP (a dropped ssh
// connection) and a closed stdout/stderr (EPIPE) do not kill it between
// the stop and the start; it runs to its end and journals it. Here the
// start fails twice (the rotation's and the rollback's), so the end is a
// rollback that could not start K3s — reached, not cut off.
func TestRotateSurvivesHangup(t *testing.T) {
	root := t.TempDir()
	dataDir := filepath.Join(root, "k3s")
	kc := filepath.Join(root, "k3s.yaml")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileCurrent, Kubeconfig: kc}, time.Now().AddDate(0, 0, -400)); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "k3scert") // this test binary runs as k3scert by that name
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(root, "started")
	cmd := exec.Command(bin, "rotate", "-d", dataDir, "--admin-kubeconfig", kc, "--config", filepath.Join(root, "none.yaml"), "--no-endpoints", "--yes",
		"--stop-cmd", "true", "--start-cmd", "touch "+started+"; sleep 1; false")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the rotation is inside its start (K3s stopped), then hang
	// up and close the reading end of its output.
	for i := 0; i < 600; i++ {
		if _, err := os.Stat(started); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	stdout.Close()
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("rotate was killed by %v mid-rotation (%v)", ws.Signal(), err)
	}
	st, jerr := rotate.ReadJournal(rotate.JournalPath(dataDir, k3s.RoleServer))
	if jerr != nil {
		t.Fatal(jerr)
	}
	b, _ := os.ReadFile(rotate.JournalPath(dataDir, k3s.RoleServer))
	if !strings.Contains(string(b), `"t":"rollback-begin"`) || st.Failed == "" {
		t.Errorf("the rotation did not run to its end after the hangup: journal\n%s", b)
	}
}
