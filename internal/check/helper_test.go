package check_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/report"
)

// t0 is the first start of the reference verification (facts §3.5).
var t0 = time.Date(2020, 7, 26, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// node is a generated K3s server node in a temporary directory.
type node struct {
	t   *testing.T
	o   k3sgen.Options
	kc  string // the admin kubeconfig K3s writes (k3s.yaml)
	cfg string // an empty K3s config.yaml
}

func newNode(t *testing.T, prof k3s.Profile, now time.Time, mods ...func(*k3sgen.Options)) *node {
	t.Helper()
	tmp := t.TempDir()
	n := &node{t: t, kc: filepath.Join(tmp, "k3s.yaml"), cfg: filepath.Join(tmp, "config.yaml")}
	n.o = k3sgen.Options{DataDir: filepath.Join(tmp, "k3s"), Program: k3s.K3s, Profile: prof, Listener: true, Kubeconfig: n.kc}
	for _, m := range mods {
		m(&n.o)
	}
	if err := os.WriteFile(n.cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n.start(now)
	return n
}

// start emulates `systemctl start k3s` at now.
func (n *node) start(now time.Time) k3sgen.Result {
	n.t.Helper()
	res, err := k3sgen.Start(n.o, now)
	if err != nil {
		n.t.Fatalf("start: %v", err)
	}
	return res
}

// advance moves the node's clock forward by days (files re-signed into the past).
func (n *node) advance(days int) {
	n.t.Helper()
	if _, err := k3sgen.Advance(n.o.DataDir, n.kc, days); err != nil {
		n.t.Fatalf("advance: %v", err)
	}
}

func (n *node) path(rel string) string { return filepath.Join(n.o.DataDir, filepath.FromSlash(rel)) }

func (n *node) options(at time.Time) check.Options {
	return check.Options{DataDir: n.o.DataDir, Profile: n.o.Profile.Name, At: at, AdminKubeconfig: n.kc,
		ConfigFile: n.cfg, NoEndpoint: true}
}

// check runs k3scert check on the node at time at.
func (n *node) check(at time.Time, mod ...func(*check.Options)) report.Report {
	n.t.Helper()
	o := n.options(at)
	for _, m := range mod {
		m(&o)
	}
	r, _, err := check.Run(context.Background(), o)
	if err != nil {
		n.t.Fatalf("check: %v", err)
	}
	return r
}

func (n *node) copyFile(from, to string) {
	n.t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		n.t.Fatal(err)
	}
}

// findings returns the findings with the given code.
func findings(r report.Report, code string) []report.Finding {
	var out []report.Finding
	for _, f := range r.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// codes lists the distinct codes of a report.
func codes(r report.Report) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if !seen[f.Code] {
			seen[f.Code] = true
			out = append(out, f.Code)
		}
	}
	return out
}

func dump(t *testing.T, r report.Report) {
	t.Helper()
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(string(f.Severity) + " " + f.Code + " " + f.Location + "\n    " + f.Message + "\n")
	}
	t.Logf("findings (exit %d):\n%s", r.Summary.ExitCode, b.String())
}
