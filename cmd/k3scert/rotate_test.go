package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
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
