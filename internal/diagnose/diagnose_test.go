package diagnose_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/report"
	corev1 "k8s.io/api/core/v1"
)

// TestCodesTable: every code is documented in All, unique, well-formed.
func TestCodesTable(t *testing.T) {
	seen := map[string]bool{}
	for i, c := range diagnose.All {
		if seen[c.ID] || !strings.HasPrefix(c.ID, "K3C") || len(c.ID) != 6 || c.Name == "" || c.Summary == "" || c.Severity.Rank() == 0 {
			t.Errorf("bad code %+v", c)
		}
		seen[c.ID] = true
		if i > 0 && diagnose.All[i-1].ID >= c.ID {
			t.Errorf("All not sorted at %s", c.ID)
		}
		if c.Doc() != "docs/findings/"+c.ID+".md" {
			t.Errorf("doc %s", c.Doc())
		}
	}
	for _, id := range []string{"K3C001", "K3C002", "K3C003", "K3C004", "K3C010", "K3C101", "K3C102", "K3C103",
		"K3C201", "K3C202", "K3C301", "K3C302", "K3C303", "K3C900"} {
		if !seen[id] {
			t.Errorf("code %s missing from All", id)
		}
	}
}

// TestCleanNode: a freshly started node of every profile has no finding.
func TestCleanNode(t *testing.T) {
	for _, p := range k3s.Profiles {
		t.Run(p.Name, func(t *testing.T) {
			n := newNode(t, p, t0)
			r := n.Check(t0)
			if len(r.Findings) != 0 || r.Summary.ExitCode != report.ExitOK || r.Summary.Status != "OK" {
				dump(t, r)
				t.Fatal("fresh node is not clean")
			}
			if r.Node.Profile != p.Name || r.Node.Role != "server" || r.Node.Program != "k3s" || r.Node.RenewDays != p.RenewDays {
				t.Errorf("node %+v", r.Node)
			}
			if len(r.Certificates) < 30 {
				t.Errorf("only %d certificates", len(r.Certificates))
			}
			for _, c := range r.Certificates {
				if c.Status != "OK" {
					t.Errorf("%s #%d: %s", c.Location, c.Index, c.Status)
				}
			}
		})
	}
}

// wantCode asserts that r has code at the given location suffixes with severity.
func wantCode(t *testing.T, r report.Report, code string, sev report.Severity, locSuffixes ...string) []report.Finding {
	t.Helper()
	fs := findings(r, code)
	if len(fs) == 0 {
		dump(t, r)
		t.Fatalf("no %s", code)
	}
	for _, suf := range locSuffixes {
		found := false
		for _, f := range fs {
			if strings.HasSuffix(f.Location, suf) {
				found = true
				if f.Severity != sev {
					t.Errorf("%s at %s: severity %s, want %s", code, f.Location, f.Severity, sev)
				}
				if f.Message == "" || f.Remedy == "" || f.Doc != "docs/findings/"+code+".md" {
					t.Errorf("%s at %s: incomplete %+v", code, f.Location, f)
				}
			}
		}
		if !found {
			dump(t, r)
			t.Errorf("no %s at ...%s", code, suf)
		}
	}
	return fs
}

func noCode(t *testing.T, r report.Report, code string) {
	t.Helper()
	if fs := findings(r, code); len(fs) > 0 {
		dump(t, r)
		t.Errorf("unexpected %s", code)
	}
}

// TestK3C001Expired: a year and more after the start, every leaf has expired.
func TestK3C001Expired(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	r := n.Check(t0.Add(400 * day))
	fs := wantCode(t, r, "K3C001", report.Critical, "server/tls/client-admin.crt", "server/tls/serving-kube-apiserver.crt",
		"agent/client-kubelet.crt", "server/tls/dynamic-cert.json", "k3s.yaml (user default)")
	if r.Summary.ExitCode != report.ExitCritical {
		t.Errorf("exit %d", r.Summary.ExitCode)
	}
	for _, f := range fs {
		if !strings.Contains(f.Message, "expired 2021-07-26 09:00:00 UTC") {
			t.Errorf("message %q", f.Message)
		}
	}
	noCode(t, r, "K3C010")
}

// TestK3C002RenewWindow: the window is 120 days on current, 90 before.
func TestK3C002RenewWindow(t *testing.T) {
	tests := []struct {
		prof  k3s.Profile
		after int
		want  bool
	}{
		{k3s.ProfileCurrent, 300, true}, // 65 days left
		{k3s.ProfileCurrent, 250, true}, // 115 days left
		{k3s.ProfileV119, 250, false},   // 115 days left, window 90
		{k3s.ProfileV119, 280, true},    // 85 days left
		{k3s.ProfileV118, 280, true},
		{k3s.ProfileV118, 200, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/+%dd", tt.prof.Name, tt.after), func(t *testing.T) {
			n := newNode(t, tt.prof, t0)
			r := n.Check(t0.Add(time.Duration(tt.after) * day))
			if !tt.want {
				noCode(t, r, "K3C002")
				if r.Summary.ExitCode != report.ExitOK {
					t.Errorf("exit %d", r.Summary.ExitCode)
				}
				return
			}
			wantCode(t, r, "K3C002", report.Warning, "server/tls/client-admin.crt", "server/tls/etcd/client.crt")
			if r.Summary.ExitCode != report.ExitWarning {
				t.Errorf("exit %d, want 1", r.Summary.ExitCode)
			}
			for _, c := range r.Certificates {
				if !c.IsCA && c.Status != "WARNING" {
					t.Errorf("%s: %s, want WARNING", c.Location, c.Status)
				}
			}
		})
	}
}

// TestK3C003NotYetValid: judged before the start (a clock set back).
func TestK3C003NotYetValid(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	r := n.Check(t0.Add(-2 * time.Hour))
	wantCode(t, r, "K3C003", report.Critical, "server/tls/client-admin.crt", "server/tls/server-ca.crt")
	if r.Summary.ExitCode != report.ExitCritical {
		t.Errorf("exit %d", r.Summary.ExitCode)
	}
}

// TestK3C004Missing: a deleted certificate K3s expects.
func TestK3C004Missing(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	for _, f := range []string{"server/tls/client-admin.crt", "server/tls/client-scheduler.crt"} {
		if err := os.Remove(n.Path(f)); err != nil {
			t.Fatal(err)
		}
	}
	r := n.Check(t0)
	wantCode(t, r, "K3C004", report.Warning, "server/tls/client-admin.crt", "server/tls/client-scheduler.crt")
	if got := len(findings(r, "K3C004")); got != 2 {
		t.Errorf("%d K3C004, want 2", got)
	}
}

// TestK3C010CAExpiring: nine years on, restarts keep renewing leaves but
// the CAs (never renewed) have less than a year left.
func TestK3C010CAExpiring(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	n.Advance(3400)
	if err := os.Remove(n.Path("server/tls/dynamic-cert.json")); err != nil {
		t.Fatal(err)
	}
	n.Start(t0)
	r := n.Check(t0)
	fs := wantCode(t, r, "K3C010", report.Warning, "server/tls/server-ca.crt", "server/tls/client-ca.crt",
		"server/tls/request-header-ca.crt", "server/tls/etcd/server-ca.crt", "server/tls/etcd/peer-ca.crt")
	if len(fs) != 5 {
		t.Errorf("%d K3C010, want one per CA (5)", len(fs))
	}
	if !slices.Equal(codes(r), []string{"K3C010"}) || r.Summary.ExitCode != report.ExitWarning {
		dump(t, r)
		t.Errorf("codes %v exit %d", codes(r), r.Summary.ExitCode)
	}
	if !strings.Contains(fs[0].Message, "in 249 days") {
		t.Errorf("message %q", fs[0].Message)
	}
}

// TestK3C101Listener: the reference failure and its early warnings.
func TestK3C101Listener(t *testing.T) {
	tests := []struct {
		name    string
		prof    k3s.Profile
		advance int
		restart bool
		want    report.Severity // "" = no K3C101
		exit    int
	}{
		// Reference scenario 1: files renewed, dynamic-cert.json expired.
		{"reference", k3s.ProfileV118, 420, true, report.Critical, report.ExitCritical},
		{"reference-current", k3s.ProfileCurrent, 420, true, report.Critical, report.ExitCritical},
		// v1.18 never renews the listener: a warning long before it expires.
		{"v1.18-earlier", k3s.ProfileV118, 300, true, report.Warning, report.ExitWarning},
		// current renews it itself: information only.
		{"current-earlier", k3s.ProfileCurrent, 300, true, report.Info, report.ExitWarning},
		{"v1.19-earlier", k3s.ProfileV119, 300, true, report.Info, report.ExitWarning},
		// Everything expired together: K3C001, but no drift to report.
		{"all-expired", k3s.ProfileV118, 420, false, "", report.ExitCritical},
		{"fresh", k3s.ProfileV118, 0, false, "", report.ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.prof, t0)
			if tt.advance > 0 {
				n.Advance(tt.advance)
			}
			if tt.restart {
				n.Start(t0)
			}
			r := n.Check(t0)
			if tt.want == "" {
				noCode(t, r, "K3C101")
			} else {
				fs := wantCode(t, r, "K3C101", tt.want, "server/tls/dynamic-cert.json")
				if len(fs) != 1 {
					t.Errorf("%d K3C101", len(fs))
				}
				if tt.want == report.Critical && !strings.Contains(fs[0].Message, "x509: certificate has expired") {
					t.Errorf("message %q", fs[0].Message)
				}
				if tt.want == report.Warning && !strings.Contains(fs[0].Message, "never renews") {
					t.Errorf("message %q", fs[0].Message)
				}
			}
			if r.Summary.ExitCode != tt.exit {
				dump(t, r)
				t.Errorf("exit %d, want %d", r.Summary.ExitCode, tt.exit)
			}
		})
	}
}

// secretFrom returns a getter that yields the listener secret encoded in b.
func secretFrom(t *testing.T, b []byte) func(*check.Options) {
	t.Helper()
	var s corev1.Secret
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return func(o *check.Options) {
		o.Secret = func(context.Context) (*corev1.Secret, string, error) { return &s, "datastore", nil }
	}
}

// TestK3C102ListenerCopies: dynamic-cert.json deleted alone, so the
// listener signed a new certificate while the secret kept the old one.
func TestK3C102ListenerCopies(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	old, err := os.ReadFile(n.Path("server/tls/dynamic-cert.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("same", func(t *testing.T) {
		r := n.Check(t0, secretFrom(t, old))
		noCode(t, r, "K3C102")
		if len(findings(r, "K3C900")) > 0 || r.Summary.ExitCode != 0 {
			dump(t, r)
			t.Error("not clean")
		}
		found := false
		for _, c := range r.Certificates {
			found = found || (c.Source == "secret" && c.Via == "datastore" && c.Name == "listener")
		}
		if !found {
			t.Error("secret certificate not in report")
		}
	})
	t.Run("differ", func(t *testing.T) {
		if err := os.Remove(n.Path("server/tls/dynamic-cert.json")); err != nil {
			t.Fatal(err)
		}
		n.Start(t0.Add(day))
		r := n.Check(t0.Add(day), secretFrom(t, old))
		wantCode(t, r, "K3C102", report.Warning, "server/tls/dynamic-cert.json")
	})
}

// TestK3C201KubeconfigStale: a copy of k3s.yaml made before a renewal.
func TestK3C201KubeconfigStale(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	cp := filepath.Join(t.TempDir(), "copy.yaml")
	n.CopyFile(n.KC, cp)
	withCopy := func(o *check.Options) { o.Kubeconfigs = []string{cp} }
	noCode(t, n.Check(t0, withCopy), "K3C201")
	n.Start(t0.Add(300 * day)) // inside the window: client-admin renewed, k3s.yaml rewritten
	t.Run("valid", func(t *testing.T) {
		r := n.Check(t0.Add(300*day), withCopy)
		wantCode(t, r, "K3C201", report.Warning, "copy.yaml (user default)")
		if len(findings(r, "K3C201")) != 1 {
			t.Error("k3s.yaml itself reported")
		}
		noCode(t, r, "K3C202")
	})
	t.Run("expired", func(t *testing.T) {
		r := n.Check(t0.Add(400*day), withCopy)
		fs := wantCode(t, r, "K3C201", report.Critical, "copy.yaml (user default)")
		if !strings.Contains(fs[0].Message, "x509: certificate has expired") {
			t.Errorf("message %q", fs[0].Message)
		}
	})
}

// TestK3C202KubeconfigCA: a kubeconfig that trusts another cluster's CA.
func TestK3C202KubeconfigCA(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	other := newNode(t, k3s.ProfileCurrent, t0)
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cp := filepath.Join(t.TempDir(), "copy.yaml")
	b := k3sgen.AdminKubeconfig("https://127.0.0.1:6443", read(other.Path("server/tls/server-ca.crt")),
		read(n.Path("server/tls/client-admin.crt")), read(n.Path("server/tls/client-admin.key")))
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := n.Check(t0, func(o *check.Options) { o.Kubeconfigs = []string{cp} })
	wantCode(t, r, "K3C202", report.Warning, "copy.yaml (user default)")
	noCode(t, r, "K3C201")
}

// TestK3C301KeyMismatch: the key of another certificate.
func TestK3C301KeyMismatch(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	n.CopyFile(n.Path("server/tls/client-controller.key"), n.Path("server/tls/client-admin.key"))
	r := n.Check(t0)
	fs := wantCode(t, r, "K3C301", report.Critical, "server/tls/client-admin.key")
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "client-admin.crt") {
		t.Errorf("%+v", fs)
	}
	if r.Summary.ExitCode != report.ExitCritical {
		t.Errorf("exit %d", r.Summary.ExitCode)
	}
}

// TestK3C302ChainBroken: a leaf or listener certificate from another CA.
func TestK3C302ChainBroken(t *testing.T) {
	tests := []struct{ files []string }{
		{[]string{"server/tls/client-admin.crt", "server/tls/client-admin.key"}},
		{[]string{"server/tls/etcd/client.crt", "server/tls/etcd/client.key"}},
		{[]string{"server/tls/dynamic-cert.json"}},
	}
	other := newNode(t, k3s.ProfileCurrent, t0)
	for _, tt := range tests {
		t.Run(filepath.Base(tt.files[0]), func(t *testing.T) {
			n := newNode(t, k3s.ProfileCurrent, t0)
			for _, f := range tt.files {
				n.CopyFile(other.Path(f), n.Path(f))
			}
			r := n.Check(t0)
			wantCode(t, r, "K3C302", report.Critical, tt.files[0])
			noCode(t, r, "K3C301")
		})
	}
}

// TestK3C303SANMissing: a --tls-san or node IP the serving certificates lack.
func TestK3C303SANMissing(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	r := n.Check(t0, func(o *check.Options) {
		o.TLSSANs = []string{"k3s.example.com"}
		o.NodeIPs = []string{"192.168.1.10"}
	})
	fs := wantCode(t, r, "K3C303", report.Warning, "server/tls/serving-kube-apiserver.crt", "server/tls/dynamic-cert.json")
	for _, f := range fs {
		if !strings.Contains(f.Message, "k3s.example.com, 192.168.1.10") {
			t.Errorf("message %q", f.Message)
		}
	}
	// tls-san read from config.yaml.
	if err := os.WriteFile(n.Cfg, []byte("tls-san:\n  - k3s.example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantCode(t, n.Check(t0), "K3C303", report.Warning, "server/tls/serving-kube-apiserver.crt")
	// A node started with them has no finding.
	m := newNode(t, k3s.ProfileCurrent, t0, func(o *k3sgen.Options) {
		o.TLSSANs = []string{"k3s.example.com"}
		o.NodeIPs = []net.IP{net.ParseIP("192.168.1.10")}
	})
	r = m.Check(t0, func(o *check.Options) {
		o.TLSSANs = []string{"k3s.example.com"}
		o.NodeIPs = []string{"192.168.1.10"}
	})
	if len(r.Findings) != 0 {
		dump(t, r)
		t.Error("findings on a node with the SANs")
	}
}

// TestK3C900Unreadable: a corrupt certificate; the scan goes on.
func TestK3C900Unreadable(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	if err := os.WriteFile(n.Path("server/tls/client-admin.crt"), []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := n.Check(t0)
	fs := wantCode(t, r, "K3C900", report.Warning, "server/tls/client-admin.crt")
	if !strings.Contains(fs[0].Message, "bad_pem") {
		t.Errorf("message %q", fs[0].Message)
	}
	noCode(t, r, "K3C004") // unreadable is not missing
	if len(r.Certificates) < 30 {
		t.Errorf("scan stopped: %d certificates", len(r.Certificates))
	}
}

// TestExitCodes maps severities to the monitoring-plugin exit codes.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		sevs   []report.Severity
		status string
		exit   int
	}{
		{nil, "OK", 0},
		{[]report.Severity{report.Info}, "OK", 0},
		{[]report.Severity{report.Info, report.Warning}, "WARNING", 1},
		{[]report.Severity{report.Warning, report.Critical, report.Info}, "CRITICAL", 2},
		{[]report.Severity{report.Critical}, "CRITICAL", 2},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			r := report.Report{}
			for _, s := range tt.sevs {
				r.Findings = append(r.Findings, report.Finding{Severity: s})
			}
			r.Summarize()
			if r.Summary.Status != tt.status || r.Summary.ExitCode != tt.exit {
				t.Errorf("got %s/%d, want %s/%d", r.Summary.Status, r.Summary.ExitCode, tt.status, tt.exit)
			}
		})
	}
	if report.ExitUnknown != 3 {
		t.Error("ExitUnknown != 3")
	}
	// A missing data dir is UNKNOWN: an error, not a report.
	_, _, err := check.Run(context.Background(), check.Options{DataDir: filepath.Join(t.TempDir(), "nope"), NoEndpoint: true, At: t0})
	if err == nil || !strings.Contains(err.Error(), "data dir not found") {
		t.Errorf("err = %v", err)
	}
}

// TestPure: the same inventory and time always give the same report.
func TestPure(t *testing.T) {
	n := newNode(t, k3s.ProfileV118, t0)
	n.Advance(420)
	n.Start(t0)
	_, inv, err := check.Run(context.Background(), n.Options(t0))
	if err != nil {
		t.Fatal(err)
	}
	in := diagnose.Input{Inventory: inv, Program: k3s.K3s, Profile: k3s.ProfileV118, At: t0,
		Node: report.Node{DataDir: n.O.DataDir, Program: "k3s", Role: "server"}}
	a, _ := json.Marshal(diagnose.Run(in))
	b, _ := json.Marshal(diagnose.Run(in))
	if string(a) != string(b) {
		t.Error("diagnose.Run is not deterministic")
	}
}
