// Package checktest generates K3s nodes for the tests of check and diagnose
// (one helper, two users).
package checktest

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
	"github.com/k3scert/k3scert/internal/k3s/k3sgen/realnode"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// T0 is the first start of the reference verification (facts §3.5).
var T0 = time.Date(2020, 7, 26, 10, 0, 0, 0, time.UTC)

// Day is one Day.
const Day = 24 * time.Hour

// node is a generated K3s server node in a temporary directory.
// Node is a generated K3s server node in a temporary directory.
type Node struct {
	T   *testing.T
	O   k3sgen.Options
	KC  string // the admin kubeconfig K3s writes (k3s.yaml)
	Cfg string // an empty K3s config.yaml
}

// NewNode generates a node.
func NewNode(t *testing.T, prof k3s.Profile, now time.Time, mods ...func(*k3sgen.Options)) *Node {
	t.Helper()
	tmp := t.TempDir()
	n := &Node{T: t, KC: filepath.Join(tmp, "k3s.yaml"), Cfg: filepath.Join(tmp, "config.yaml")}
	n.O = k3sgen.Options{DataDir: filepath.Join(tmp, "k3s"), Program: k3s.K3s, Profile: prof, Listener: true, Kubeconfig: n.KC}
	for _, m := range mods {
		m(&n.O)
	}
	if err := os.WriteFile(n.Cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n.Start(now)
	return n
}

// start emulates `systemctl start k3s` at now.
func (n *Node) Start(now time.Time) k3sgen.Result {
	n.T.Helper()
	res, err := k3sgen.Start(n.O, now)
	if err != nil {
		n.T.Fatalf("start: %v", err)
	}
	return res
}

// advance moves the node's clock forward by days (files re-signed into the past).
func (n *Node) Advance(days int) {
	n.T.Helper()
	if _, err := k3sgen.Advance(n.O.DataDir, n.KC, days); err != nil {
		n.T.Fatalf("advance: %v", err)
	}
}

func (n *Node) Path(rel string) string { return filepath.Join(n.O.DataDir, filepath.FromSlash(rel)) }

func (n *Node) Options(at time.Time) check.Options {
	return check.Options{DataDir: n.O.DataDir, Profile: n.O.Profile.Name, At: at, AdminKubeconfig: n.KC,
		ConfigFile: n.Cfg, NoEndpoint: true, ConfigRoot: filepath.Dir(n.Cfg)}
}

// check runs k3scert check on the node at time at.
func (n *Node) Check(at time.Time, mod ...func(*check.Options)) report.Report {
	n.T.Helper()
	o := n.Options(at)
	for _, m := range mod {
		m(&o)
	}
	r, _, err := check.Run(context.Background(), o)
	if err != nil {
		n.T.Fatalf("check: %v", err)
	}
	return r
}

func (n *Node) CopyFile(from, to string) {
	n.T.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		n.T.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		n.T.Fatal(err)
	}
}

// Findings filters by code.
func Findings(r report.Report, code string) []report.Finding { return r.FindingsWith(code) }

// codes lists the distinct codes of a report.
// Codes lists finding codes.
func Codes(r report.Report) []string {
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

// Dump logs a report.
func Dump(t *testing.T, r report.Report) {
	t.Helper()
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString(string(f.Severity) + " " + f.Code + " " + f.Location + "\n    " + f.Message + "\n")
	}
	t.Logf("findings (exit %d):\n%s", r.Summary.ExitCode, b.String())
}

// RealOptions are the check options k3scert would use on a realnode node
// run without flags: the default data dir and every configuration file
// (config.yaml, drop-ins, unit) under the node's root, the row detected
// from the files, endpoints not probed.
func RealOptions(n *realnode.Node, at time.Time) check.Options {
	return check.Options{Program: n.O.Program, At: at, ConfigRoot: n.Root, NoEndpoint: true}
}

// CheckReal runs check on a realnode node.
func CheckReal(t testing.TB, n *realnode.Node, at time.Time, mod ...func(*check.Options)) (report.Report, *source.Inventory) {
	t.Helper()
	o := RealOptions(n, at)
	for _, m := range mod {
		m(&o)
	}
	r, inv, err := check.Run(context.Background(), o)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return r, inv
}
