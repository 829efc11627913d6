package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	corev1 "k8s.io/api/core/v1"
)

// beforeEnv names another k3scert binary (say, built from main before a
// slimming commit) that the budget benchmarks and TestSameReport measure
// beside the one built from this tree.
const beforeEnv = "K3SCERT_BENCH_BEFORE"

// kineSchema is kine's table as kine creates it in SQLite (kine v0.17.5
// pkg/drivers/sqlite/sqlite.go:27-38), so the fixture has a datastore that
// both binaries read.
const kineSchema = `CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, created INTEGER,
	deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB)`

// reportNode is one generated node and how check is pointed at it.
type reportNode struct {
	name string
	gen  func(dir string) error
	args []string // besides -d, --admin-kubeconfig, --config, --at, -o json
}

func reportNodes() []reportNode {
	server := func(p k3s.Profile, prog k3s.Program, advance int, db bool) func(string) error {
		return func(dir string) error {
			dd := filepath.Join(dir, "data")
			o := k3sgen.Options{DataDir: dd, Program: prog, Profile: p, Listener: true, Kubeconfig: filepath.Join(dir, "k3s.yaml")}
			if _, err := k3sgen.Start(o, at.AddDate(-1, 0, 0)); err != nil {
				return err
			}
			if advance > 0 {
				if _, err := k3sgen.Advance(dd, filepath.Join(dir, "k3s.yaml"), advance); err != nil {
					return err
				}
			}
			if db {
				if err := writeListenerDB(dd, prog); err != nil {
					return err
				}
			}
			return os.WriteFile(filepath.Join(dir, "config.yaml"), nil, 0o600)
		}
	}
	agent := func(dir string) error {
		srv := filepath.Join(dir, "server-data")
		if _, err := k3sgen.Start(k3sgen.Options{DataDir: srv, Listener: true}, at.AddDate(0, -2, 0)); err != nil {
			return err
		}
		o := k3sgen.Options{DataDir: filepath.Join(dir, "data"), AgentOnly: true, ServerDataDir: srv}
		if _, err := k3sgen.Start(o, at.AddDate(0, -2, 0)); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "config.yaml"), nil, 0o600)
	}
	quiet := []string{"--no-endpoints", "--secret", "none"}
	return []reportNode{
		{"current", server(k3s.ProfileCurrent, k3s.K3s, 0, false), quiet},
		{"current-expired", server(k3s.ProfileCurrent, k3s.K3s, 400, false), quiet},
		{"v1.18-expired", server(k3s.ProfileV118, k3s.K3s, 421, false), quiet},
		{"rke2", server(k3s.ProfileCurrent, k3s.RKE2, 0, false), append([]string{"--program", "rke2"}, quiet...)},
		{"agent", agent, quiet},
		{"secret-from-datastore", server(k3s.ProfileCurrent, k3s.K3s, 30, true), []string{"--no-endpoints", "--secret", "datastore"}},
		{"no-datastore", server(k3s.ProfileCurrent, k3s.K3s, 0, false), []string{"--no-endpoints", "--secret", "datastore"}},
	}
}

// writeListenerDB stores the node's dynamic-cert.json Secret in a kine
// SQLite database at server/db/state.db, as kube-apiserver would.
func writeListenerDB(dd string, prog k3s.Program) error {
	l := k3s.ListenerSpec(prog)
	b, err := os.ReadFile(filepath.Join(dd, filepath.FromSlash(l.JSONPath)))
	if err != nil {
		return err
	}
	var sec corev1.Secret
	if err := json.Unmarshal(b, &sec); err != nil {
		return err
	}
	path := filepath.Join(dd, filepath.FromSlash(k3s.DatastoreSpec(prog).SQLite))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	if err != nil {
		return err
	}
	if _, err := db.Exec(kineSchema); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	st, err := datastore.OpenSQLite(path, "")
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = datastore.Secrets{Store: st}.Put(context.Background(), l.SecretKey(), &sec)
	return err
}

// checkJSON runs `check -o json` and returns its stdout; exit codes 0–3
// are verdicts.
func checkJSON(t *testing.T, bin, dir string, args []string) []byte {
	t.Helper()
	a := append([]string{"check", "-d", filepath.Join(dir, "data"), "--admin-kubeconfig", filepath.Join(dir, "k3s.yaml"),
		"--config", filepath.Join(dir, "config.yaml"), "--at", at.Format(time.RFC3339), "-o", "json"}, args...)
	cmd := exec.Command(bin, a...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	var ee *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", bin, err)
	}
	if out.Len() == 0 {
		t.Fatalf("%s %v: no report; stderr:\n%s", bin, a, errb.String())
	}
	return out.Bytes()
}

// TestSameReport: slimming must not change what k3scert reports. It runs
// `check -o json` of the binary built from this tree and of $K3SCERT_BENCH_BEFORE
// (`make bench-budget BEFORE=…`) on generated nodes (K3s current and
// v1.18, expired, RKE2, an agent, the listener Secret from a kine
// database, a missing datastore) and requires byte-identical reports. The
// judgement time is fixed, so the reports have no timing field to mask.
func TestSameReport(t *testing.T) {
	before := os.Getenv(beforeEnv)
	if before == "" {
		t.Skip(beforeEnv + " is not set: no earlier k3scert binary to compare with (make bench-budget BEFORE=path/to/k3scert)")
	}
	after := k3scertBin(t)
	for _, n := range reportNodes() {
		t.Run(n.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := n.gen(dir); err != nil {
				t.Fatal(err)
			}
			a, b := checkJSON(t, after, dir, n.args), checkJSON(t, before, dir, n.args)
			if !bytes.Equal(a, b) {
				_ = os.WriteFile(filepath.Join(os.TempDir(), "k3scert-samereport-"+n.name+"-after.json"), a, 0o600)
				_ = os.WriteFile(filepath.Join(os.TempDir(), "k3scert-samereport-"+n.name+"-before.json"), b, 0o600)
				t.Fatalf("check -o json differs (%d vs %d bytes; both written to %s/k3scert-samereport-%s-*.json)", len(a), len(b), os.TempDir(), n.name)
			}
			t.Logf("%d bytes identical", len(a))
		})
	}
}
