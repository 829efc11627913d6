package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/lab"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// `run all` replays one release line per dynamiclistener era, each with
// the listener code that line shipped.
func TestRunAllIsEveryEra(t *testing.T) {
	ps, err := labProfiles("", true)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := lab.Lines()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(lines) || len(ps) < 5 {
		t.Fatalf("run all replays %d profiles, want one per era (%d)", len(ps), len(lines))
	}
	seen := map[string]bool{}
	for i, p := range ps {
		if p.Name != lines[i].Profile.Name {
			t.Errorf("profile %d: %s, want %s", i, p.Name, lines[i].Profile.Name)
		}
		seen[lines[i].Listener.Release] = true
	}
	if len(seen) != len(lines) {
		t.Errorf("eras %v: some listener release replayed twice", seen)
	}
	if ps, _ := labProfiles("", false); len(ps) != 1 || ps[0].Name != "v1.18" {
		t.Errorf("default profile %v, want v1.18 (the reference)", ps)
	}
}

func TestCompletion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "run", ""}, []string{"scenario1", "scenario2", "all"}},
		{[]string{"__complete", "run", "all", "--remedy", ""}, lab.Remedies},
		{[]string{"__complete", "run", "all", "--profile", ""}, []string{"v1.18", "current", "v1.21.8"}},
		{[]string{"__complete", "run", "all", "-o", ""}, []string{"table", "json"}},
	} {
		out, err := run(t, tt.args...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("%v: %q missing from\n%s", tt.args, w, out)
			}
		}
	}
}

func TestRunRejectsUnknownScenario(t *testing.T) {
	if _, err := run(t, "run", "scenario9", "--profile", "v1.18", "--root", t.TempDir()); err == nil {
		t.Fatal("run scenario9: no error")
	}
}

func TestRunHAArguments(t *testing.T) {
	out, err := run(t, "__complete", "run", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ha-expired", "ha-preventive"} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("%q missing from the completion of run:\n%s", w, out)
		}
	}
	for _, args := range [][]string{
		{"run", "ha-nothing", "--root", t.TempDir()},
		{"run", "ha-expired", "--remedy", "seed", "--root", t.TempDir()},
		{"run", "ha-preventive", "--remedy", "none", "--root", t.TempDir()},
		{"run", "scenario1", "--servers", "2", "--root", t.TempDir()},
		{"run", "ha-expired", "-o", "yaml", "--root", t.TempDir()},
	} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestUpClusterRejectsFixedPorts(t *testing.T) {
	if _, err := run(t, "up", "--servers", "3", "--kine-port", "20000", "--root", t.TempDir()); err == nil || !strings.Contains(err.Error(), "single node") {
		t.Fatalf("up --servers 3 --kine-port: %v", err)
	}
}
