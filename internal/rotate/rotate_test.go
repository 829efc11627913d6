package rotate_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/rotate"
	corev1 "k8s.io/api/core/v1"
)

// fakeService stands in for systemd in the executor tests that run no
// processes: Start does to the files what a K3s server start does
// (k3sgen.Start: renewal per profile, k3s.yaml rewritten, agent files
// fetched), and it records what the executor asked for.
type fakeService struct {
	calls    *[]string
	gen      *k3sgen.Options
	clock    func() time.Time
	startErr error
}

func (f fakeService) Name() string                   { return "fake k3s" }
func (f fakeService) Stop(ctx context.Context) error { *f.calls = append(*f.calls, "stop"); return nil }
func (f fakeService) Start(ctx context.Context) error {
	*f.calls = append(*f.calls, "start")
	if f.gen != nil {
		if _, err := k3sgen.Start(*f.gen, f.clock()); err != nil {
			return err
		}
	}
	return f.startErr
}

// install is the generated nodes' clock: they are installed then, moved
// 421 days and restarted, so "now" in their frame is install (facts: the
// lab's time travel).
var install = time.Date(2020, 7, 26, 4, 53, 44, 0, time.UTC)

func genOpts(dataDir, kubeconfig string) *k3sgen.Options {
	return &k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileV118, Kubeconfig: kubeconfig, Listener: true}
}

// hashTree maps every regular file under the trees a rotation touches to
// its SHA-256, so "byte-identical" can be asserted.
func hashTree(t *testing.T, dataDir string, extra ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range []string{"server/tls", "server/cred"} {
		_ = filepath.WalkDir(filepath.Join(dataDir, root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), rotate.JournalName) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(b)
			out[p] = hex.EncodeToString(s[:])
			return nil
		})
	}
	for _, p := range extra {
		if b, err := os.ReadFile(p); err == nil {
			s := sha256.Sum256(b)
			out[p] = hex.EncodeToString(s[:])
		}
	}
	return out
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	for p, h := range want {
		if got[p] != h {
			t.Errorf("%s: differs after rollback", p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: left behind after rollback", p)
		}
	}
}

// genNodeWithDatastore generates a v1.18 node in the reference failure
// state (files renewed, listener expired) with a real kine SQLite
// datastore holding the listener secret.
func genNodeWithDatastore(t *testing.T) (dataDir, kubeconfig string) {
	t.Helper()
	return genNodeIn(t, t.TempDir())
}

// genNodeIn is genNodeWithDatastore under root (e.g. a small tmpfs).
func genNodeIn(t *testing.T, root string) (dataDir, kubeconfig string) {
	t.Helper()
	dataDir = filepath.Join(root, "var/lib/rancher/k3s")
	kubeconfig = filepath.Join(root, "etc/rancher/k3s/k3s.yaml")
	o := k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileV118, Kubeconfig: kubeconfig, Listener: true}
	if _, err := k3sgen.Start(o, install); err != nil {
		t.Fatal(err)
	}
	if _, err := k3sgen.Advance(dataDir, kubeconfig, 421); err != nil {
		t.Fatal(err)
	}
	if _, err := k3sgen.Start(o, install); err != nil { // restart: files renewed, listener not
		t.Fatal(err)
	}
	db := filepath.Join(dataDir, "server/db/state.db")
	if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "server/tls/dynamic-cert.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sec corev1.Secret
	if err := jsonUnmarshal(b, &sec); err != nil {
		t.Fatal(err)
	}
	// A fresh state.db has no kine table yet: create the key through kine
	// itself (rev 0 = create), as kube-apiserver's first write would.
	ds, err := datastore.OpenNode(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Store.Close()
	enc, err := datastore.EncodeSecret(&sec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Store.Put(context.Background(), k3s.ListenerSpec(k3s.K3s).SecretKey(), enc, 0); err != nil {
		t.Fatal(err)
	}
	return dataDir, kubeconfig
}

func planFor(t *testing.T, dataDir, kubeconfig string, now time.Time) rotate.Plan {
	t.Helper()
	o := check.Options{DataDir: dataDir, Profile: "v1.18", AdminKubeconfig: kubeconfig, At: now, NoEndpoint: true}
	in, err := rotate.Gather(context.Background(), o, rotate.MethodRenew, "fake k3s", rotate.DescribeDatastore(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// For every step k: kill the executor right after step k, then --resume
// completes the rotation, and (on a second copy) --rollback restores the
// node's files and secret byte for byte.
func TestCrashAtEveryStep(t *testing.T) {
	probe, kc := genNodeWithDatastore(t)
	steps := planFor(t, probe, kc, time.Now()).Steps
	for k := range steps {
		for _, mode := range []string{"resume", "rollback"} {
			t.Run(steps[k].Name+"/"+mode, func(t *testing.T) {
				dataDir, kubeconfig := genNodeWithDatastore(t)
				var calls []string
				clock := func() time.Time { return install.Add(time.Minute) }
				svc := fakeService{calls: &calls, gen: genOpts(dataDir, kubeconfig), clock: clock}
				secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
				before := hashTree(t, dataDir, kubeconfig)
				secBefore := readSecret(t, secrets)
				p := planFor(t, dataDir, kubeconfig, clock())
				e := &rotate.Executor{Plan: p, Service: svc, Secrets: secrets, Now: clock,
					AfterStep: func(i int) error {
						if i == k {
							return rotate.ErrKilled
						}
						return nil
					}}
				if err := e.Apply(context.Background()); !errors.Is(err, rotate.ErrKilled) {
					t.Fatalf("apply: %v, want the simulated kill", err)
				}
				// A new rotation refuses while the journal is unfinished.
				if k < len(steps)-1 {
					e2 := &rotate.Executor{Plan: p, Service: svc, Secrets: secrets, Now: clock}
					if err := e2.Apply(context.Background()); !errors.Is(err, rotate.ErrInterrupted) {
						t.Fatalf("second apply: %v, want ErrInterrupted", err)
					}
				}
				e3 := &rotate.Executor{Service: svc, Secrets: secrets, Now: clock}
				switch mode {
				case "resume":
					err := rotate.Resume(context.Background(), e3, p.Journal)
					if k == len(steps)-1 {
						if err != nil {
							t.Fatalf("resume after the last step: %v", err)
						}
					} else if err != nil {
						t.Fatalf("resume: %v", err)
					}
					st, err := rotate.ReadJournal(p.Journal)
					if err != nil || st.End != "complete" {
						t.Fatalf("journal after resume: %+v %v", st.End, err)
					}
					r := checkAt(t, dataDir, kubeconfig, clock())
					for _, f := range r.Findings {
						if f.Severity == report.Critical {
							t.Errorf("after resume: critical %s %s: %s", f.Code, f.Location, f.Message)
						}
					}
					sec := readSecret(t, secrets)
					js := readJSON(t, dataDir)
					if string(sec.Data["tls.crt"]) != string(js.Data["tls.crt"]) {
						t.Errorf("after resume: secret and dynamic-cert.json differ")
					}
				case "rollback":
					// Compare the files as the restore left them: a K3s
					// start would fetch fresh agent files right after.
					e3.Service = fakeService{calls: &calls, clock: clock}
					if err := rotate.Rollback(context.Background(), e3, p.Journal); err != nil {
						t.Fatalf("rollback: %v", err)
					}
					sameTree(t, before, hashTree(t, dataDir, kubeconfig))
					if got := readSecret(t, secrets); string(got.Data["tls.crt"]) != string(secBefore.Data["tls.crt"]) || string(got.Data["tls.key"]) != string(secBefore.Data["tls.key"]) {
						t.Errorf("secret not restored")
					}
					if calls[len(calls)-1] != "start" {
						t.Errorf("service not started after rollback: %v", calls)
					}
				}
			})
		}
	}
}

func checkAt(t *testing.T, dataDir, kubeconfig string, at time.Time) report.Report {
	t.Helper()
	r, _, err := check.Run(context.Background(), check.Options{DataDir: dataDir, Profile: "v1.18", AdminKubeconfig: kubeconfig, At: at, NoEndpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readSecret(t *testing.T, open func(context.Context) (rotate.SecretStore, error)) *corev1.Secret {
	t.Helper()
	st, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Get(context.Background())
	if err != nil || s == nil {
		t.Fatalf("secret: %v %v", s, err)
	}
	return s
}

func readJSON(t *testing.T, dataDir string) *corev1.Secret {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "server/tls/dynamic-cert.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := jsonUnmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// Bad input: a missing CA key and the key of another CA stop the rotation
// in preflight with nothing changed; a read-only leaf directory fails in
// renew-leaves and is rolled back.
func TestBadInput(t *testing.T) {
	clock := func() time.Time { return install.Add(time.Minute) }
	t.Run("missing CA key", func(t *testing.T) {
		dataDir, kc := genNodeWithDatastore(t)
		p := planFor(t, dataDir, kc, clock())
		os.Remove(filepath.Join(dataDir, "server/tls/client-ca.key"))
		before := hashTree(t, dataDir, kc)
		var calls []string
		err := (&rotate.Executor{Plan: p, Service: fakeService{calls: &calls, clock: clock}, Now: clock}).Apply(context.Background())
		if err == nil || !strings.Contains(err.Error(), "client-ca.key") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("err = %v, want a preflight error naming client-ca.key", err)
		}
		sameTree(t, before, hashTree(t, dataDir, kc))
		if len(calls) != 0 {
			t.Errorf("service touched: %v", calls)
		}
	})
	t.Run("CA key of another CA", func(t *testing.T) {
		dataDir, kc := genNodeWithDatastore(t)
		p := planFor(t, dataDir, kc, clock())
		other, _ := os.ReadFile(filepath.Join(dataDir, "server/tls/server-ca.key"))
		if err := os.WriteFile(filepath.Join(dataDir, "server/tls/client-ca.key"), other, 0o600); err != nil {
			t.Fatal(err)
		}
		var calls []string
		err := (&rotate.Executor{Plan: p, Service: fakeService{calls: &calls, clock: clock}, Now: clock}).Apply(context.Background())
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("err = %v, want a key mismatch", err)
		}
	})
	t.Run("stale plan", func(t *testing.T) {
		dataDir, kc := genNodeWithDatastore(t)
		p := planFor(t, dataDir, kc, clock())
		f := filepath.Join(dataDir, "server/tls/client-admin.crt")
		b, _ := os.ReadFile(f)
		os.WriteFile(f, append(b, '\n'), 0o644)
		var calls []string
		err := (&rotate.Executor{Plan: p, Service: fakeService{calls: &calls, clock: clock}, Now: clock}).Apply(context.Background())
		if err == nil || !strings.Contains(err.Error(), "stale") {
			t.Fatalf("err = %v, want a stale plan", err)
		}
	})
	t.Run("verification fails", func(t *testing.T) {
		dataDir, kc := genNodeWithDatastore(t)
		p := planFor(t, dataDir, kc, clock())
		before := hashTree(t, dataDir, kc)
		var calls []string
		secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
		e := &rotate.Executor{Plan: p, Service: fakeService{calls: &calls, clock: clock}, Secrets: secrets, Now: clock,
			Verify: func(context.Context, rotate.Plan) error { return errors.New("k3s did not come back") }}
		err := e.Apply(context.Background())
		if err == nil || !strings.Contains(err.Error(), "rolled back") {
			t.Fatalf("err = %v, want rollback", err)
		}
		sameTree(t, before, hashTree(t, dataDir, kc))
		if strings.Join(calls, ",") != "stop,start,stop,start" {
			t.Errorf("service calls %v, want stop,start,stop,start", calls)
		}
	})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// A stale copied kubeconfig (K3C201) is refreshed with the current admin
// credentials; other fields stay; a backup is written.
func TestRefreshKubeconfig(t *testing.T) {
	dataDir, kubeconfig := genNodeWithDatastore(t)
	// k3s.yaml was shifted with the node: its client certificate is the
	// old, expired one; the files hold the renewed one.
	// A copy made before the last renewal: an older admin certificate
	// signed by the same client CA.
	copyPath := filepath.Join(t.TempDir(), "remote.yaml")
	caB, _ := os.ReadFile(filepath.Join(dataDir, "server/tls/client-ca.crt"))
	caKB, _ := os.ReadFile(filepath.Join(dataDir, "server/tls/client-ca.key"))
	cas, _ := pki.ParseCerts(caB)
	caKey, _, _ := pki.ParseKey(caKB)
	oldKey, _ := pki.NewECKey()
	old, err := pki.SignLeaf(pki.LeafRequest{CN: "system:admin", Orgs: []string{"system:masters"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore: install.Add(-400 * 24 * time.Hour), NotAfter: install.Add(-35 * 24 * time.Hour)}, oldKey.Public(), cas[0], caKey)
	if err != nil {
		t.Fatal(err)
	}
	oldKeyPEM, _ := pki.EncodeKey(oldKey)
	serverCA, _ := os.ReadFile(filepath.Join(dataDir, "server/tls/server-ca.crt"))
	b := k3sgen.AdminKubeconfig("https://k3s.example.internal:6443", serverCA, pki.EncodeCerts(old, cas[0]), oldKeyPEM)
	if err := os.WriteFile(copyPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	at := install.Add(time.Minute)
	r := checkWith(t, dataDir, kubeconfig, at, copyPath)
	if len(r.FindingsWith("K3C201")) == 0 {
		t.Fatalf("no K3C201 before refresh")
	}
	res, err := rotate.RefreshKubeconfig(copyPath, dataDir, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Users) != 1 || res.Backup == "" {
		t.Fatalf("refresh result %+v", res)
	}
	if bb, _ := os.ReadFile(res.Backup); string(bb) != string(b) {
		t.Errorf("backup does not hold the original")
	}
	nb, _ := os.ReadFile(copyPath)
	if !strings.Contains(string(nb), "https://k3s.example.internal:6443") {
		t.Errorf("server URL not preserved:\n%s", nb)
	}
	r = checkWith(t, dataDir, kubeconfig, at, copyPath)
	for _, f := range r.FindingsWith("K3C201") {
		if strings.Contains(f.Location, copyPath) {
			t.Errorf("still stale after refresh: %s", f.Message)
		}
	}
}

func checkWith(t *testing.T, dataDir, kubeconfig string, at time.Time, copies ...string) report.Report {
	t.Helper()
	r, _, err := check.Run(context.Background(), check.Options{DataDir: dataDir, Profile: "v1.18", AdminKubeconfig: kubeconfig, At: at, NoEndpoint: true, Kubeconfigs: copies})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// An agent node: the plan restarts the agent (after the servers) and
// verifies the certificates it fetched; the agent's files before were
// expired. The fake service's start fetches from the server as an agent
// start does.
func TestAgentRotation(t *testing.T) {
	server, _ := genNodeWithDatastore(t)
	agentDir := filepath.Join(t.TempDir(), "var/lib/rancher/k3s")
	gen := &k3sgen.Options{DataDir: agentDir, Profile: k3s.ProfileV118, AgentOnly: true, ServerDataDir: server}
	old := install.Add(-400 * 24 * time.Hour)
	if _, err := k3sgen.Start(*gen, old); err != nil { // fetched long ago
		t.Fatal(err)
	}
	clock := func() time.Time { return install.Add(time.Minute) }
	o := check.Options{DataDir: agentDir, Profile: "v1.18", At: clock(), NoEndpoint: true}
	r, _, err := check.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Node.Role != "agent" || len(r.FindingsWith("K3C001")) == 0 {
		t.Fatalf("agent node: role %s, %d expired findings; want agent with expired certificates", r.Node.Role, len(r.FindingsWith("K3C001")))
	}
	in, err := rotate.Gather(context.Background(), o, "", "fake k3s-agent", "none")
	if err != nil {
		t.Fatal(err)
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "preflight,stop,backup,start,verify" {
		t.Fatalf("agent plan steps %v", names)
	}
	var calls []string
	e := &rotate.Executor{Plan: p, Service: fakeService{calls: &calls, gen: gen, clock: clock}, Now: clock,
		// No kubelet runs here; TestAgentRotateVerify compares a served one.
		Verify: rotate.Verifier{Check: o, Now: clock, Timeout: time.Second, NoKubelet: true}.Verify}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatalf("agent rotation: %v", err)
	}
	r, _, _ = check.Run(context.Background(), o)
	if n := len(r.FindingsWith("K3C001")); n != 0 {
		t.Errorf("after the agent rotation %d certificates are still expired", n)
	}
}

// A v1.18 node whose datastore stops with K3s (embedded etcd: no
// state.db): its dynamiclistener (v0.2.0) lets the old secret overwrite a
// renewed dynamic-cert.json at start and it has no regenerate trigger
// (audit W4), so the plan renews the secret through the API before the
// stop, and --method regenerate is refused with the reason. Every row is
// covered by TestEmbeddedEtcdListenerPerRow.
func TestPlanWithoutOfflineSecret(t *testing.T) {
	root := t.TempDir()
	dataDir := filepath.Join(root, "var/lib/rancher/k3s")
	kc := filepath.Join(root, "etc/rancher/k3s/k3s.yaml")
	o := k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileV118, Kubeconfig: kc, Listener: true}
	if _, err := k3sgen.Start(o, install); err != nil {
		t.Fatal(err)
	}
	if _, err := k3sgen.Advance(dataDir, kc, 421); err != nil {
		t.Fatal(err)
	}
	if _, err := k3sgen.Start(o, install); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "server/db/etcd"), 0o700); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return install.Add(time.Minute) }
	co := check.Options{DataDir: dataDir, Profile: "v1.18", AdminKubeconfig: kc, At: clock(), NoEndpoint: true}
	in, err := rotate.Gather(context.Background(), co, rotate.MethodRenew, "fake k3s", rotate.DescribeDatastore(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	if p.Listener != rotate.ListenerOnline || p.SecretKey != "" || !strings.Contains(p.Summary(), "k3s-io/k3s#5163") {
		t.Fatalf("plan: listener %q, secret key %q:\n%s", p.Listener, p.SecretKey, p.Summary())
	}
	in.Method = rotate.MethodRegenerate
	if _, err := rotate.NewPlan(in); err == nil || !strings.Contains(err.Error(), "k3s-io/k3s#5163") || !strings.Contains(err.Error(), "embedded etcd") {
		t.Fatalf("regenerate plan: %v, want a refusal naming the datastore and the reason", err)
	}
}

// --method regenerate removes the leaves and both listener copies; the K3s
// start (k3sgen.Start in the fake service, Listener: true for the JSON)
// creates fresh ones with new keys.
func TestRegenerate(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	clock := func() time.Time { return install.Add(time.Minute) }
	o := check.Options{DataDir: dataDir, Profile: "v1.18", AdminKubeconfig: kc, At: clock(), NoEndpoint: true}
	in, err := rotate.Gather(context.Background(), o, rotate.MethodRegenerate, "fake k3s", rotate.DescribeDatastore(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dataDir, "server/tls/client-admin.key"))
	var calls []string
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	e := &rotate.Executor{Plan: p, Service: fakeService{calls: &calls, gen: genOpts(dataDir, kc), clock: clock}, Secrets: secrets, Now: clock}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dataDir, "server/tls/client-admin.key"))
	if len(keyAfter) == 0 || string(keyAfter) == string(keyBefore) {
		t.Errorf("client-admin.key not regenerated")
	}
	st, _ := secrets(context.Background())
	s, err := st.Get(context.Background())
	st.Close()
	if err != nil || s != nil {
		t.Errorf("secret after regenerate: %v %v, want deleted (the listener recreates it on start)", s, err)
	}
	r := checkAt(t, dataDir, kc, clock())
	for _, f := range r.Findings {
		if f.Severity == report.Critical {
			t.Errorf("critical after regenerate: %s %s", f.Code, f.Message)
		}
	}
}

// A data dir the rotation cannot write to: tests run as root, which
// ignores permission bits, so the backup directory's path is taken by a
// regular file instead. The preflight sees it before anything is stopped;
// the node is as before. (Faults after the preflight: faults_test.go.)
func TestUnwritableDataDir(t *testing.T) {
	dataDir, kc := genNodeWithDatastore(t)
	clock := func() time.Time { return install.Add(time.Minute) }
	p := planFor(t, dataDir, kc, clock())
	if err := os.WriteFile(p.BackupDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, dataDir, kc)
	var calls []string
	secrets := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: dataDir, Program: k3s.K3s})
	err := (&rotate.Executor{Plan: p, Service: fakeService{calls: &calls, clock: clock}, Secrets: secrets, Now: clock}).Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "preflight") || !strings.Contains(err.Error(), "not a directory") || !strings.Contains(err.Error(), "never stopped") {
		t.Fatalf("err = %v, want a preflight refusal naming the backup directory", err)
	}
	sameTree(t, before, hashTree(t, dataDir, kc))
	if len(calls) != 0 {
		t.Errorf("service calls %v, want none", calls)
	}
}
