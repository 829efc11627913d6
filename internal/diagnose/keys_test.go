package diagnose_test

import (
	"os"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
)

// TestK3C304KeyModeTooOpen: a key file with any bit beyond 0600 is a
// finding; 0600 and 0400 are not.
func TestK3C304KeyModeTooOpen(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	for rel, mode := range map[string]os.FileMode{
		"server/tls/client-ca.key":              0o644,
		"server/tls/server-ca.key":              0o640,
		"server/tls/client-admin.key":           0o700,
		"server/tls/serving-kube-apiserver.key": 0o400,
	} {
		if err := os.Chmod(n.Path(rel), mode); err != nil {
			t.Fatal(err)
		}
	}
	r := n.Check(t0)
	got := map[string]string{}
	for _, f := range findings(r, "K3C304") {
		got[f.Location] = f.Message
		if f.Severity != "warning" || !strings.Contains(f.Remedy, "chmod 0600 "+f.Location) {
			t.Errorf("%s: severity %s, remedy %q", f.Location, f.Severity, f.Remedy)
		}
	}
	want := map[string]string{
		"server/tls/client-ca.key":    "mode 0644 (-rw-r--r--): every user on the node",
		"server/tls/server-ca.key":    "mode 0640 (-rw-r-----): the file's group",
		"server/tls/client-admin.key": "mode 0700 (-rwx------): no one else (but it is marked executable)",
	}
	for rel, msg := range want {
		if m, ok := got[n.Path(rel)]; !ok || !strings.Contains(m, msg) {
			t.Errorf("%s: got %q, want it to contain %q", rel, m, msg)
		}
	}
	if len(got) != len(want) {
		dump(t, r)
		t.Errorf("%d K3C304 findings, want %d: %v", len(got), len(want), got)
	}
	if r.Summary.ExitCode < 1 {
		t.Errorf("exit %d with world-readable CA keys", r.Summary.ExitCode)
	}
}

// TestK3C304FreshNode: k3sgen writes keys 0600 as K3s does: no finding.
func TestK3C304FreshNode(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	if fs := findings(n.Check(t0), "K3C304"); len(fs) != 0 {
		t.Errorf("fresh node: %v", fs)
	}
}
