package rotate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/rotate"
)

// oddNode is a server node the way operators leave them: the server CA
// key kept outside the data dir and linked in, certificates owned by
// another user, odd modes (a world-readable key, a setgid cert), a FIFO
// and a user's file in server/tls that K3s does not know.
func oddNode(t *testing.T) (dataDir, kc, vaultKey string) {
	t.Helper()
	dataDir, kc = genNodeWithDatastore(t)
	tls := filepath.Join(dataDir, "server/tls")
	vault := filepath.Join(t.TempDir(), "vault")
	if err := os.MkdirAll(vault, 0o700); err != nil {
		t.Fatal(err)
	}
	vaultKey = filepath.Join(vault, "server-ca.key")
	if err := os.Rename(filepath.Join(tls, "server-ca.key"), vaultKey); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(vaultKey, filepath.Join(tls, "server-ca.key")); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chown(filepath.Join(tls, "client-admin.crt"), 65534, 65534))
	must(os.Chown(filepath.Join(tls, "client-admin.key"), 65534, 65533))
	must(os.Chmod(filepath.Join(tls, "client-admin.key"), 0o644))
	must(os.Chmod(filepath.Join(tls, "client-scheduler.crt"), 0o640|os.ModeSetgid))
	must(os.Chown(filepath.Join(dataDir, "server/cred/admin.kubeconfig"), 1000, 1000))
	must(os.Chown(filepath.Join(tls, "etcd"), 65534, 65534))
	must(os.Chmod(filepath.Join(tls, "etcd"), 0o750))
	must(syscall.Mkfifo(filepath.Join(tls, "k3s-debug.fifo"), 0o600))
	must(os.WriteFile(filepath.Join(tls, "operator-notes.txt"), []byte("do not touch\n"), 0o644))
	return dataDir, kc, vaultKey
}

// A failed rotation rolls back exactly: every recorded entry comes back
// with its type, symlink target, mode, owner and group; the CA key behind
// the symlink is never written; what the backup never held (the FIFO,
// the user's file, a file that appears after the backup) is untouched.
func TestRollbackIsExact(t *testing.T) {
	for _, how := range []string{"verify fails", "killed after listener, then --rollback"} {
		t.Run(how, func(t *testing.T) {
			dataDir, kc, vaultKey := oddNode(t)
			clock := func() time.Time { return install.Add(time.Minute) }
			secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
			vaultBefore, _ := os.ReadFile(vaultKey)
			before := snapshot(t, dataDir, kc, secrets)
			p := planFor(t, dataDir, kc, clock())
			svc := &stateService{running: true}
			late := filepath.Join(dataDir, "server/tls/appeared-after-backup.txt")
			e := &rotate.Executor{Plan: p, Service: svc, Secrets: secrets, Now: clock,
				Verify: func(context.Context, rotate.Plan) error { return errors.New("injected verify failure") },
				AfterStep: func(i int) error {
					if p.Steps[i].Name == rotate.StepBackup {
						if err := os.WriteFile(late, []byte("x"), 0o600); err != nil {
							t.Fatal(err)
						}
					}
					if how != "verify fails" && p.Steps[i].Name == rotate.StepListener {
						return rotate.ErrKilled
					}
					return nil
				}}
			err := e.Apply(context.Background())
			if how == "verify fails" {
				if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "identical") {
					t.Fatalf("err = %v, want a rollback to an identical node", err)
				}
			} else {
				if !errors.Is(err, rotate.ErrKilled) {
					t.Fatalf("err = %v", err)
				}
				// the renewal happened: the node differs now
				if len(diffSnapshots(before, snapshot(t, dataDir, kc, secrets))) == 0 {
					t.Fatal("nothing changed before the kill")
				}
				e2 := &rotate.Executor{Service: svc, Secrets: secrets, Now: clock}
				if err := rotate.Rollback(context.Background(), e2, p.Journal); err != nil {
					t.Fatalf("rollback: %v", err)
				}
			}
			after := snapshot(t, dataDir, kc, secrets)
			delete(after, late)
			if d := diffSnapshots(before, after); len(d) > 0 {
				t.Errorf("not identical after rollback:\n%s", strings.Join(d, "\n"))
			}
			if b, err := os.ReadFile(late); err != nil || string(b) != "x" {
				t.Errorf("a file the backup never held was touched: %v", err)
			}
			if fi, err := os.Lstat(filepath.Join(dataDir, "server/tls/k3s-debug.fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
				t.Errorf("the FIFO the backup never held is gone: %v", err)
			}
			if v, _ := os.ReadFile(vaultKey); string(v) != string(vaultBefore) {
				t.Errorf("the CA key outside the data dir was written")
			}
			if !svc.isRunning() {
				t.Errorf("K3s not running after the rollback")
			}
		})
	}
}

// A successful rotation keeps owners and group of what it rewrote, and
// writes keys 0600 (a world-readable key does not stay world-readable).
func TestRotateKeepsOwnersAndWritesKeys0600(t *testing.T) {
	dataDir, kc, _ := oddNode(t)
	clock := func() time.Time { return install.Add(time.Minute) }
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	p := planFor(t, dataDir, kc, clock())
	e := &rotate.Executor{Plan: p, Service: &stateService{running: true}, Secrets: secrets, Now: clock}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	owner := func(p string) (int, int, os.FileMode) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return int(st.Uid), int(st.Gid), fi.Mode()
	}
	tls := filepath.Join(dataDir, "server/tls")
	if u, g, _ := owner(filepath.Join(tls, "client-admin.crt")); u != 65534 || g != 65534 {
		t.Errorf("client-admin.crt owner %d:%d, want 65534:65534", u, g)
	}
	if u, g, m := owner(filepath.Join(tls, "client-admin.key")); u != 65534 || g != 65533 || m.Perm() != 0o600 {
		t.Errorf("client-admin.key %d:%d %v, want 65534:65533 -rw-------", u, g, m)
	}
	for _, l := range p.Leaves {
		if _, _, m := owner(l.Key); m.Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", l.Key, m)
		}
	}
	if fi, err := os.Lstat(filepath.Join(tls, "server-ca.key")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the CA key symlink was replaced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.BackupDir, rotate.ReserveName)); !os.IsNotExist(err) {
		t.Errorf("the rollback reservation is left behind: %v", err)
	}
}

// Entries a backup cannot put back make the preflight refuse, naming
// them, before anything is stopped.
func TestPreflightRefusesUnrepresentable(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	clock := func() time.Time { return install.Add(time.Minute) }
	dir := filepath.Join(dataDir, "server/tls/kube-scheduler")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "kube-scheduler.crt")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p := planFor(t, dataDir, kc, clock())
	svc := &stateService{running: true}
	err := (&rotate.Executor{Plan: p, Service: svc, Now: clock}).Apply(context.Background())
	var ue *rotate.UnrepresentableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "FIFO") || !strings.Contains(err.Error(), "never stopped") {
		t.Fatalf("err = %v, want a preflight refusal naming the FIFO", err)
	}
	if len(svc.calls) != 0 {
		t.Errorf("service calls %v", svc.calls)
	}
}

// The backup holds only the files the table names: never containerd's
// root, images or kubelet state. An agent's rollback leaves containerd
// files created after the backup alone; the backup is a streamed tar.gz
// whose members are the table's files, the secret and the manifest.
func TestAgentBackupScope(t *testing.T) {
	server, _ := genNodeWithDatastore(t)
	agentDir := filepath.Join(t.TempDir(), "var/lib/rancher/k3s")
	gen := &k3sgen.Options{DataDir: agentDir, Profile: k3s.ProfileV118, AgentOnly: true, ServerDataDir: server}
	if _, err := k3sgen.Start(*gen, install.Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	junk := map[string]string{
		"agent/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/etc/ssl/ca.crt": "expired CA",
		"agent/images/airgap.tar":                      "image",
		"agent/etc/containerd/certs.d/registry/ca.crt": "registry CA",
		"agent/kubelet/pki/kubelet.crt":                "kubelet",
		"agent/tls-1700000000/client-kubelet.crt":      "k3s certificate rotate backup",
		"agent/pod-manifests/x.yaml":                   "manifest",
	}
	for rel, c := range junk {
		p := filepath.Join(agentDir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clock := func() time.Time { return install.Add(time.Minute) }
	o := check.Options{DataDir: agentDir, Profile: "v1.18", At: clock(), NoEndpoint: true}
	in, err := rotate.Gather(context.Background(), o, "", "fake k3s-agent", "none")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, agentDir, "", nil)
	svc := &stateService{running: true}
	late := filepath.Join(agentDir, "agent/containerd/io.containerd.metadata.v1.bolt/meta.db")
	var backup string
	e := &rotate.Executor{Plan: p, Service: svc, Now: clock,
		Verify: func(context.Context, rotate.Plan) error { return errors.New("injected verify failure") },
		AfterStep: func(i int) error {
			if p.Steps[i].Name == rotate.StepBackup {
				st, _ := rotate.ReadJournal(p.Journal)
				backup = st.Backup
			}
			if p.Steps[i].Name == rotate.StepStart { // the agent's first start writes containerd state
				os.MkdirAll(filepath.Dir(late), 0o755)
				return os.WriteFile(late, []byte("new state"), 0o600)
			}
			return nil
		}}
	if err := e.Apply(context.Background()); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err = %v, want a rollback", err)
	}
	if b, err := os.ReadFile(late); err != nil || string(b) != "new state" {
		t.Errorf("containerd state created after the backup did not survive the rollback: %v", err)
	}
	after := snapshot(t, agentDir, "", nil)
	delete(after, late)
	delete(after, filepath.Dir(late))
	if d := diffSnapshots(before, after); len(d) > 0 {
		t.Errorf("agent not identical after rollback:\n%s", strings.Join(d, "\n"))
	}
	// The backup's members.
	names := backupMembers(t, backup)
	for _, name := range names {
		rel := strings.TrimPrefix(name, "data/")
		if strings.HasPrefix(name, "data/agent/") && strings.Count(rel, "/") > 1 {
			t.Errorf("backup holds %s: not a file the table names", name)
		}
	}
	if len(names) < 8 || names[len(names)-1] != "manifest.json" {
		t.Errorf("backup members %v: want the agent's table files and manifest.json last", names)
	}
	if !strings.Contains(filepath.Base(backup), ".") || !strings.Contains(filepath.Base(backup), "000000000Z") {
		t.Errorf("backup name %s: want sub-second resolution", backup)
	}
}
