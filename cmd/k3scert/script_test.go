package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"k3scert": func() { os.Exit(run(os.Args[1:])) },
	})
}

// TestScript runs the CLI scripts in testdata/*.txt. Besides testscript's
// own commands they have:
//
//	gennode [-profile P] [-kubeconfig F] [-no-listener] DIR DATE   start a K3s node (k3sgen.Start) at DATE
//	advance DIR DAYS [KUBECONFIG]                                 move the node's clock forward (k3sgen.Advance)
//	exitcode N PROG ARGS...                                       run PROG, which must exit with N
//	tree DIR                                                      print every file under DIR with its size
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"gennode":  cmdGennode,
			"advance":  cmdAdvance,
			"exitcode": cmdExitcode,
			"tree":     cmdTree,
		},
		Setup: func(env *testscript.Env) error {
			// An empty config.yaml: no tls-san from the machine's K3s.
			return os.WriteFile(filepath.Join(env.WorkDir, "config.yaml"), nil, 0o600)
		},
	})
}

func cmdGennode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! gennode")
	}
	fs := flag.NewFlagSet("gennode", flag.ContinueOnError)
	prof := fs.String("profile", "current", "")
	kc := fs.String("kubeconfig", "", "")
	noListener := fs.Bool("no-listener", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		ts.Fatalf("usage: gennode [-profile P] [-kubeconfig F] [-no-listener] DIR DATE")
	}
	p, err := k3s.ProfileByName(*prof)
	ts.Check(err)
	now, err := time.Parse(time.RFC3339, fs.Arg(1))
	ts.Check(err)
	o := k3sgen.Options{DataDir: ts.MkAbs(fs.Arg(0)), Profile: p, Listener: !*noListener}
	if *kc != "" {
		o.Kubeconfig = ts.MkAbs(*kc)
	}
	_, err = k3sgen.Start(o, now)
	ts.Check(err)
}

func cmdAdvance(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: advance DIR DAYS [KUBECONFIG]")
	}
	days, err := strconv.Atoi(args[1])
	ts.Check(err)
	kc := ""
	if len(args) == 3 {
		kc = ts.MkAbs(args[2])
	}
	_, err = k3sgen.Advance(ts.MkAbs(args[0]), kc, days)
	ts.Check(err)
}

func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

func cmdTree(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tree DIR")
	}
	root := ts.MkAbs(args[0])
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		lines = append(lines, fmt.Sprintf("%s %d %s", filepath.ToSlash(rel), fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano)))
		return nil
	})
	ts.Check(err)
	sort.Strings(lines)
	fmt.Fprintln(ts.Stdout(), strings.Join(lines, "\n"))
}
