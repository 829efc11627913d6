package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/cluster"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/rotate"
	"k8s.io/client-go/rest"
)

// requireLab is the lab tests' convention (internal/lab/lab_test.go): skip
// only when the binaries are absent AND the lab is not required; with
// K3SCERT_LAB_REQUIRED=1 a missing binary fails.
func requireLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab tests start real processes; skipped with -short")
	}
	if _, err := lab.FindBins(); err != nil {
		if os.Getenv("K3SCERT_LAB_REQUIRED") == "1" {
			t.Fatalf("lab required (K3SCERT_LAB_REQUIRED=1) but: %v", err)
		}
		t.Skipf("LAB TESTS NOT RUN: %v", err)
	}
}

func startNode(t *testing.T, root string) *lab.Node {
	t.Helper()
	n, err := lab.New(lab.Options{Root: root, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

func kubectl(t *testing.T, n *lab.Node, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := n.Kubectl(ctx, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// k3scertBinary builds the product binary once, static as the image ships
// it (the Makefile's `static` target: cgo for go-sqlite3, linked with
// -static), so that it runs in a node's root without its libraries.
func k3scertBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "k3scert-suc-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "k3scert")
		cmd := exec.Command("go", "build", "-tags", "netgo,osusergo,sqlite_omit_load_extension",
			"-ldflags", "-linkmode external -extldflags -static", "-o", builtBin, "./cmd/k3scert")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

const crdPath = "../../deploy/suc/crd-plans.upgrade.cattle.io.yaml"

func installCRD(t *testing.T, n *lab.Node) {
	t.Helper()
	kubectl(t, n, "apply", "-f", crdPath)
	kubectl(t, n, "wait", "--for=condition=Established", "--timeout=120s", "crd/plans.upgrade.cattle.io")
}

func writeManifest(t *testing.T, o cluster.PlansOptions) (string, []byte) {
	t.Helper()
	objs, err := cluster.Manifest(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cluster.RenderYAML(objs)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func labOptions() cluster.PlansOptions {
	return cluster.PlansOptions{Image: "ghcr.io/k3scert/k3scert:v0.2.0", RunID: "lab-1"}
}

// TestSucLabAPI runs the generated manifest against a real kube-apiserver
// (the lab node's, on kine) with the upstream CRD installed: a
// server-side strict dry-run accepts it and rejects an unknown field; then
// wait-plan, as the plans' own ServiceAccount with the generated RBAC,
// waits for the server plan and returns once the nodes carry its label.
func TestSucLabAPI(t *testing.T) {
	requireLab(t)
	n := startNode(t, t.TempDir())
	installCRD(t, n)
	kubectl(t, n, "create", "namespace", cluster.DefaultSUCNamespace)
	path, good := writeManifest(t, labOptions())

	t.Run("dry-run", func(t *testing.T) {
		out := kubectl(t, n, "apply", "--dry-run=server", "--validate=strict", "-f", path)
		t.Logf("dry-run:\n%s", out)
		for _, want := range []string{"plan.upgrade.cattle.io/k3scert-server created (server dry run)", "plan.upgrade.cattle.io/k3scert-agent created (server dry run)",
			"serviceaccount/k3scert-rotate created (server dry run)", "clusterrole.rbac.authorization.k8s.io/k3scert-rotate-system-upgrade-nodes created (server dry run)"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry-run output lacks %q", want)
			}
		}
		for _, c := range []struct{ from, to, why string }{
			{"  concurrency: 1\n", "  concurency: 1\n", `unknown field "spec.concurency"`},
			{"    image: ghcr.io/k3scert/k3scert:v0.2.0\n  serviceAccountName", "    image: ghcr.io/k3scert/k3scert:v0.2.0\n    env: []\n  serviceAccountName", `unknown field "spec.prepare.env"`},
			{"  concurrency: 1\n", "  concurrency: one\n", "spec.concurrency"},
		} {
			bad := strings.Replace(string(good), c.from, c.to, 1)
			p := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err := n.Kubectl(ctx, "apply", "--dry-run=server", "--validate=strict", "-f", p)
			cancel()
			if err == nil || !strings.Contains(out, c.why) {
				t.Errorf("a plan with %q: err %v, output:\n%s\nwant the server to reject it with %q", c.to, err, out, c.why)
			}
		}
	})

	t.Run("wait-plan", func(t *testing.T) {
		kubectl(t, n, "apply", "-f", path)
		// Least privilege, as the server judges it.
		as := "--as=system:serviceaccount:" + cluster.DefaultSUCNamespace + ":" + cluster.DefaultSUCAccount
		for verb, want := range map[string]string{"get nodes": "yes", "list nodes": "yes", "patch nodes": "no", "watch nodes": "no",
			"list secrets -A": "no", "get plans.upgrade.cattle.io -n system-upgrade": "yes", "update plans.upgrade.cattle.io -n system-upgrade": "no"} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, _ := n.Kubectl(ctx, append(append([]string{"auth", "can-i"}, strings.Fields(verb)...), as)...)
			cancel()
			lines := strings.Split(strings.TrimSpace(out), "\n") // a warning may come first
			if got := strings.TrimSpace(lines[len(lines)-1]); got != want {
				t.Errorf("can-i %s as the job's account: %q, want %s", verb, out, want)
			}
		}
		applyNodes(t, n, []struct{ name, extra string }{
			{"s1", "    node-role.kubernetes.io/control-plane: \"true\"\n"},
			{"s2", "    node-role.kubernetes.io/control-plane: \"true\"\n"},
			{"s3", "    node-role.kubernetes.io/control-plane: \"true\"\n    plan.upgrade.cattle.io/k3scert-server: disabled\n"},
			{"a1", ""},
		})
		cfg, kc := saAccess(t, n)
		w, err := cluster.NewPlanWatcher(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		reports := make(chan string, 100)
		type result struct {
			pr  cluster.PlanProgress
			err error
		}
		done := make(chan result, 1)
		go func() {
			pr, err := w.WaitPlan(ctx, cluster.DefaultSUCNamespace, cluster.DefaultServerPlan, cluster.WaitOptions{Interval: 100 * time.Millisecond,
				Report: func(s string) { t.Logf("wait-plan: %s", s); reports <- s }})
			done <- result{pr, err}
		}()
		expect := func(sub string) {
			t.Helper()
			for {
				select {
				case s := <-reports:
					if strings.Contains(s, sub) {
						return
					}
				case r := <-done:
					t.Fatalf("wait-plan returned (%+v, %v) while waiting for a report %q", r.pr, r.err, sub)
				case <-ctx.Done():
					t.Fatalf("no report %q before the deadline", sub)
				}
			}
		}
		notReturned := func() {
			t.Helper()
			select {
			case r := <-done:
				t.Fatalf("wait-plan returned before every server was done: %+v %v", r.pr, r.err)
			default:
			}
		}
		// No status yet: the controller has not resolved the plan.
		expect("has not resolved it yet")
		kubectl(t, n, "patch", "plan", cluster.DefaultServerPlan, "-n", cluster.DefaultSUCNamespace, "--subresource=status", "--type=merge",
			"-p", `{"status":{"latestVersion":"lab-1","latestHash":"h1","applying":["s1"]}}`)
		expect("0/2 nodes done, waiting for s1, s2 (applying: s1)")
		notReturned()
		kubectl(t, n, "label", "node", "s1", "plan.upgrade.cattle.io/k3scert-server=h1")
		expect("1/2 nodes done, waiting for s2")
		notReturned()
		kubectl(t, n, "label", "node", "s2", "plan.upgrade.cattle.io/k3scert-server=h0") // an earlier run's hash
		notReturned()
		kubectl(t, n, "label", "--overwrite", "node", "s2", "plan.upgrade.cattle.io/k3scert-server=h1")
		r := <-done
		if r.err != nil || !r.pr.Complete() || !reflect.DeepEqual(r.pr.Selected, []string{"s1", "s2"}) {
			t.Fatalf("wait-plan: %+v %v", r.pr, r.err)
		}

		// The command line the agent plan's prepare step runs, with the
		// ServiceAccount's credentials in a kubeconfig instead of the pod's.
		_, agent, err := cluster.SUCPlans(labOptions())
		if err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{}, agent.Spec.Prepare.Args...), "--kubeconfig", kc, "--namespace", cluster.DefaultSUCNamespace, "--timeout=2m")
		cli := exec.CommandContext(ctx, k3scertBinary(t), args...)
		cli.Env = append(os.Environ(), "SYSTEM_UPGRADE_PLAN_LATEST_VERSION=lab-1") // as the controller sets it
		out, err := cli.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "plan system-upgrade/k3scert-server is complete on every node it selects") {
			t.Fatalf("k3scert %s: %v\n%s", strings.Join(args, " "), err, out)
		}

		// A new run: the agent of run lab-2 must not pass on the servers'
		// labels of run lab-1 while the controller has not yet resolved the
		// server plan's new version.
		go func() {
			pr, err := w.WaitPlan(ctx, cluster.DefaultSUCNamespace, cluster.DefaultServerPlan, cluster.WaitOptions{Interval: 100 * time.Millisecond, Version: "lab-2",
				Report: func(s string) { t.Logf("wait-plan lab-2: %s", s); reports <- s }})
			done <- result{pr, err}
		}()
		expect(`is at version "lab-1", waiting for the controller to resolve "lab-2"`)
		notReturned()
		kubectl(t, n, "patch", "plan", cluster.DefaultServerPlan, "-n", cluster.DefaultSUCNamespace, "--subresource=status", "--type=merge",
			"-p", `{"status":{"latestVersion":"lab-2","latestHash":"h2","applying":["s2"]}}`)
		expect("0/2 nodes done, waiting for s1, s2 (applying: s2)")
		notReturned()
		kubectl(t, n, "label", "--overwrite", "node", "s1", "s2", "plan.upgrade.cattle.io/k3scert-server=h2")
		if r := <-done; r.err != nil || !r.pr.Complete() || r.pr.LatestVersion != "lab-2" {
			t.Fatalf("wait-plan lab-2: %+v %v", r.pr, r.err)
		}

		// A plan that selects nothing is an error, not an endless wait.
		kubectl(t, n, "patch", "plan", cluster.DefaultAgentPlan, "-n", cluster.DefaultSUCNamespace, "--type=merge",
			"-p", `{"spec":{"nodeSelector":{"matchLabels":{"no-such-label":"x"}}}}`)
		kubectl(t, n, "patch", "plan", cluster.DefaultAgentPlan, "-n", cluster.DefaultSUCNamespace, "--subresource=status", "--type=merge",
			"-p", `{"status":{"latestHash":"h9"}}`)
		if _, err := w.WaitPlan(ctx, cluster.DefaultSUCNamespace, cluster.DefaultAgentPlan, cluster.WaitOptions{Interval: 100 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "selects no node") {
			t.Errorf("empty plan: %v", err)
		}
	})
}

// saAccess is the plans' ServiceAccount's access to the lab apiserver (a
// TokenRequest token; straight to the apiserver port with the server CA),
// as a rest.Config and as a kubeconfig file.
func saAccess(t *testing.T, n *lab.Node) (*rest.Config, string) {
	t.Helper()
	token := strings.TrimSpace(kubectl(t, n, "create", "token", cluster.DefaultSUCAccount, "-n", cluster.DefaultSUCNamespace))
	cfg := &rest.Config{Host: "https://127.0.0.1:" + strconv.Itoa(n.Ports().APIServer), BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(n.DataDir(), "server", "tls", "server-ca.crt")}}
	kc := filepath.Join(t.TempDir(), "sa.kubeconfig")
	kcText := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: %s\n    certificate-authority: %s\nusers:\n- name: sa\n  user:\n    token: %s\ncontexts:\n- name: lab\n  context: {cluster: lab, user: sa}\ncurrent-context: lab\n",
		cfg.Host, cfg.TLSClientConfig.CAFile, token)
	if err := os.WriteFile(kc, []byte(kcText), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, kc
}

func applyNodes(t *testing.T, n *lab.Node, nodes []struct{ name, extra string }) {
	t.Helper()
	var b bytes.Buffer
	for _, x := range nodes {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels:\n    kubernetes.io/hostname: %s\n%s", x.name, x.name, x.extra)
	}
	p := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, n, "apply", "-f", p)
}

// TestSucLabJobCommand runs the server plan's job command line — exactly
// the generated command and arguments, with the controller's /host
// replaced by a running lab node's root — as root: the binary installs
// itself into the node's root, chroots there and runs `k3scert rotate
// --yes`, which stops the node, renews its certificates, starts it and
// verifies it on the wire. The lab's seams are ordinary rotate flags given
// through --rotate-arg (the node's ports and profile; --stop-cmd and
// --start-cmd driving the in-test node through two FIFOs in its root, run
// by a /bin/sh copied into it).
func TestSucLabJobCommand(t *testing.T) {
	requireLab(t)
	requireRoot(t)
	bin := k3scertBinary(t)
	root := t.TempDir()
	n := startNode(t, root)
	if err := shellInto(root); err != nil {
		t.Fatal(err)
	}
	ctl := startLabCtl(t, root, n.Stop, func(ctx context.Context) error { _, err := n.Start(ctx); return err })

	ports := n.Ports()
	o := labOptions()
	o.RotateArgs = []string{"--profile=" + n.Profile().Name,
		"--supervisor-port=" + strconv.Itoa(ports.Supervisor), "--apiserver-port=" + strconv.Itoa(ports.APIServer),
		labStopCmd, labStartCmd}
	srv, _, err := cluster.SUCPlans(o)
	if err != nil {
		t.Fatal(err)
	}
	// The YAML an operator applies carries the same command line.
	_, y := writeManifest(t, o)
	ps, err := cluster.DecodePlansStrict(y)
	if err != nil || !reflect.DeepEqual(ps[0].Spec.Upgrade, srv.Spec.Upgrade) {
		t.Fatalf("decoded server plan differs: %v", err)
	}
	args := jobArgs(t, srv, root)

	// The API side of a server job: the plan (resolved by the "controller":
	// status patched here), the node objects, the job's ServiceAccount.
	installCRD(t, n)
	kubectl(t, n, "create", "namespace", cluster.DefaultSUCNamespace)
	mp, _ := writeManifest(t, o)
	kubectl(t, n, "apply", "-f", mp)
	applyNodes(t, n, []struct{ name, extra string }{
		{"lab-node", "    node-role.kubernetes.io/control-plane: \"true\"\n"},
		{"other-server", "    node-role.kubernetes.io/control-plane: \"true\"\n"},
	})
	kubectl(t, n, "patch", "plan", cluster.DefaultServerPlan, "-n", cluster.DefaultSUCNamespace, "--subresource=status", "--type=merge",
		"-p", `{"status":{"latestVersion":"lab-1","latestHash":"hj","applying":["lab-node"]}}`)
	_, kc := saAccess(t, n)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// job runs the plan's command line on the lab node as the controller
	// would on node lab-node (its env: SYSTEM_UPGRADE_NODE_NAME; the pod's
	// ServiceAccount: $KUBECONFIG here).
	job := func(name string) (string, lab.Step, lab.Step, []string) {
		t.Helper()
		ctl.reset()
		before := n.Observe(ctx, "before "+name, "", 0)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "SYSTEM_UPGRADE_NODE_NAME=lab-node", "KUBECONFIG="+kc)
		out, err := cmd.CombinedOutput()
		t.Logf("%s: %s %s\n%s", name, bin, strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("%s: job command failed: %v", name, err)
		}
		after := n.Observe(ctx, "after "+name, "", 0)
		acts := ctl.actions()
		t.Logf("%s: labctl %v; before: served %.12s json %.12s; after: served %.12s json %.12s kubectl %v %s", name, acts,
			before.ServedSHA256, before.DynamicCertSHA256, after.ServedSHA256, after.DynamicCertSHA256, after.KubectlOK, after.KubectlError)
		if !reflect.DeepEqual(acts, []string{"stop=ok", "start=ok"}) {
			t.Errorf("%s: service actions %v, want one stop and one start", name, acts)
		}
		for _, id := range lab.ObservedFiles {
			if !after.FilesNotAfter[id].After(before.FilesNotAfter[id]) {
				t.Errorf("%s: %s notAfter %s, before %s: not renewed", name, id, after.FilesNotAfter[id], before.FilesNotAfter[id])
			}
		}
		if !after.KubectlOK || after.ServedNotAfter == nil || !after.ServedNotAfter.After(after.VirtualDate.Add(300*24*time.Hour)) {
			t.Errorf("%s: kubectl %v %s, served notAfter %v", name, after.KubectlOK, after.KubectlError, after.ServedNotAfter)
		}
		if after.ServedSHA256 != after.DynamicCertSHA256 || after.SecretSHA256 != after.DynamicCertSHA256 {
			t.Errorf("%s: listener copies differ: served %.12s json %.12s secret %.12s", name, after.ServedSHA256, after.DynamicCertSHA256, after.SecretSHA256)
		}
		return string(out), before, after, acts
	}

	// The run's first server: renews the shared listener secret.
	out, before, after, _ := job("first server")
	for _, want := range []string{"installed /usr/local/bin/k3scert on the node", "lab-node's listener part: renew", "--cluster-listener=renew",
		"running in the node's root", "k3scert: rotated"} {
		if !strings.Contains(out, want) {
			t.Errorf("first server: job output lacks %q", want)
		}
	}
	if after.ServedSHA256 == before.ServedSHA256 || after.DynamicCertSHA256 == before.DynamicCertSHA256 {
		t.Errorf("first server: listener certificate not renewed")
	}
	inst, err := os.ReadFile(filepath.Join(root, "usr", "local", "bin", "k3scert"))
	self, _ := os.ReadFile(bin)
	if err != nil || !bytes.Equal(inst, self) {
		t.Errorf("binary not installed in the node's root: %v", err)
	}
	// The journal and the backup stay on the node, next to the installed
	// binary that can resume or roll them back.
	if _, err := os.Stat(filepath.Join(n.DataDir(), "server", "tls", ".k3scert-rotate.journal")); err != nil {
		t.Errorf("no journal on the node: %v", err)
	}
	if b, _ := filepath.Glob(filepath.Join(n.DataDir(), "server", ".k3scert-backups", "rotate-*.tar.gz")); len(b) != 1 {
		t.Errorf("backups on the node: %v, want one", b)
	}

	// Another server completed the plan first (the controller labelled
	// it): this server adopts the renewed secret and serves it unchanged.
	kubectl(t, n, "label", "node", "other-server", "plan.upgrade.cattle.io/k3scert-server=hj")
	out, _, after2, _ := job("later server")
	for _, want := range []string{"lab-node's listener part: adopt, other-server already rotated in this run", "--cluster-listener=adopt", "k3scert: rotated"} {
		if !strings.Contains(out, want) {
			t.Errorf("later server: job output lacks %q", want)
		}
	}
	if strings.Contains(out, "installed /usr/local/bin/k3scert") {
		t.Errorf("later server: reinstalled the same binary")
	}
	if after2.ServedSHA256 != after.ServedSHA256 {
		t.Errorf("later server: served %.12s, want the secret the first server renewed (%.12s) unchanged", after2.ServedSHA256, after.ServedSHA256)
	}
}

// shellInto makes root a minimal chroot for the rotation's --stop-cmd and
// --start-cmd: /bin/sh with the libraries ldd names, and /dev/null.
func shellInto(root string) error {
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		return err
	}
	files := []string{sh}
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %v", sh, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, f)
		if f == sh {
			dst = filepath.Join(root, "bin", "sh")
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		return err
	}
	if err := syscall.Mknod(filepath.Join(root, "dev", "null"), syscall.S_IFCHR|0o666, int(1<<8|3)); err != nil {
		return fmt.Errorf("mknod /dev/null in the node's root: %w", err)
	}
	return os.Chmod(filepath.Join(root, "dev", "null"), 0o666)
}

// requireRoot: the job command chroots into the node's root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("K3SCERT_LAB_REQUIRED") == "1" {
			t.Fatal("the job command test chroots and must run as root (K3SCERT_LAB_REQUIRED=1)")
		}
		t.Skip("LAB TEST NOT RUN: the job command chroots into the node's root; run as root")
	}
}

// The rotation's --stop-cmd and --start-cmd in the node's root: a request
// to the in-test labctl through <root>/run/labctl/req, its answer read
// from ack.
const (
	labStopCmd  = `--stop-cmd=echo stop > /run/labctl/req && read r < /run/labctl/ack && test "$r" = ok`
	labStartCmd = `--start-cmd=echo start > /run/labctl/req && read r < /run/labctl/ack && test "$r" = ok`
)

// labCtl is a lab node's "service manager": it serves the stop and start
// requests of labStopCmd and labStartCmd and records them as
// "stop=ok", "start=fail" and the like.
type labCtl struct {
	mu   sync.Mutex
	acts []string
}

func (c *labCtl) reset() {
	c.mu.Lock()
	c.acts = nil
	c.mu.Unlock()
}

func (c *labCtl) actions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.acts...)
}

// startLabCtl makes the FIFOs under <root>/run/labctl and serves them
// until the test ends, stop and start driving the in-test node.
func startLabCtl(t *testing.T, root string, stop func(), start func(context.Context) error) *labCtl {
	t.Helper()
	ctl := filepath.Join(root, "run", "labctl")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"req", "ack"} {
		if err := syscall.Mkfifo(filepath.Join(ctl, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &labCtl{}
	ctlDone := make(chan struct{})
	go func() {
		defer close(ctlDone)
		for {
			b, err := os.ReadFile(filepath.Join(ctl, "req"))
			if err != nil {
				t.Errorf("labctl: %v", err)
				return
			}
			req := strings.TrimSpace(string(b))
			if req == "quit" {
				return
			}
			res := "ok"
			switch req {
			case "stop":
				stop()
			case "start":
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				if err := start(ctx); err != nil {
					t.Logf("labctl start: %v", err)
					res = "fail"
				}
				cancel()
			default:
				res = "fail"
			}
			c.mu.Lock()
			c.acts = append(c.acts, req+"="+res)
			c.mu.Unlock()
			if err := os.WriteFile(filepath.Join(ctl, "ack"), []byte(res+"\n"), 0o600); err != nil {
				t.Errorf("labctl ack: %v", err)
				return
			}
		}
	}()
	t.Cleanup(func() {
		// Blocks until the controller reads it; if the controller has
		// already stopped, the writer is left blocked, not the test.
		go func() { _ = os.WriteFile(filepath.Join(ctl, "req"), []byte("quit\n"), 0o600) }()
		<-ctlDone
	})
	return c
}

// jobArgs is the plan's upgrade command line with the controller's /host
// replaced by root.
func jobArgs(t *testing.T, p cluster.SUCPlan, root string) []string {
	t.Helper()
	args := make([]string, len(p.Spec.Upgrade.Args))
	replaced := 0
	for i, a := range p.Spec.Upgrade.Args {
		if a == "--host-root="+cluster.SUCHostRoot {
			a, replaced = "--host-root="+root, replaced+1
		}
		args[i] = a
	}
	if replaced != 1 || p.Spec.Upgrade.Command[0] != cluster.ImageBinary {
		t.Fatalf("plan command %q %q: want %s with one --host-root=/host", p.Spec.Upgrade.Command, p.Spec.Upgrade.Args, cluster.ImageBinary)
	}
	return args
}

// agentCertFiles are the certificates a K3s agent fetches on every start.
var agentCertFiles = []string{"serving-kubelet.crt", "client-kubelet.crt", "client-kube-proxy.crt", "client-k3s-controller.crt"}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s: no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestSucLabAgentJobCommand runs the agent plan's job command line —
// exactly the generated command and arguments, with /host replaced by a
// lab agent's root — as root against an agent of a running lab cluster
// (one server, one agent): the binary installs itself into the agent's
// root, chroots there and runs `k3scert rotate --yes`, which stops the
// agent, starts it (it fetches fresh certificates from its server) and
// verifies that the kubelet stand-in serves the renewed serving-kubelet
// certificate (--kubelet-address, its loopback port). --stop-cmd and
// --start-cmd drive the agent (lab.AgentService) through labctl's FIFOs.
func TestSucLabAgentJobCommand(t *testing.T) {
	requireLab(t)
	requireRoot(t)
	bin := k3scertBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := lab.NewCluster(lab.ClusterOptions{Root: filepath.Join(t.TempDir(), "ha"), Servers: 1, Agents: 1, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(c.Agents) != 1 {
		t.Fatalf("%d agents, want 1", len(c.Agents))
	}
	a := c.Agents[0]
	root := filepath.Join(c.Root(), a.Name()) // NewCluster's layout
	if want := filepath.Join(root, "var", "lib", "rancher", "k3s"); a.DataDir() != want {
		t.Fatalf("agent data dir %s, want %s under its root", a.DataDir(), want)
	}
	if err := shellInto(root); err != nil {
		t.Fatal(err)
	}
	svc := &lab.AgentService{A: a}
	ctl := startLabCtl(t, root, func() { _ = svc.Stop(context.Background()) }, svc.Start)

	o := labOptions()
	o.RotateArgs = []string{"--profile=" + c.Profile().Name, "--kubelet-address=" + a.KubeletAddr(), labStopCmd, labStartCmd}
	_, agent, err := cluster.SUCPlans(o)
	if err != nil {
		t.Fatal(err)
	}
	// The YAML an operator applies carries the same command line.
	_, y := writeManifest(t, o)
	ps, err := cluster.DecodePlansStrict(y)
	if err != nil || len(ps) != 2 || !reflect.DeepEqual(ps[1].Spec.Upgrade, agent.Spec.Upgrade) {
		t.Fatalf("decoded agent plan differs: %v", err)
	}
	args := jobArgs(t, agent, root)

	certPath := func(f string) string { return filepath.Join(a.DataDir(), "agent", f) }
	before := map[string]*x509.Certificate{}
	for _, f := range agentCertFiles {
		before[f] = readCert(t, certPath(f))
	}
	served := a.ServedKubelet()
	if served == nil || !served.Equal(before["serving-kubelet.crt"]) {
		t.Fatalf("before the job, the kubelet stand-in serves %v, not agent/serving-kubelet.crt", served)
	}

	// The controller runs the agent's job on node agent-1 (its env:
	// SYSTEM_UPGRADE_NODE_NAME); the agent's upgrade container does not
	// talk to the API.
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "SYSTEM_UPGRADE_NODE_NAME="+a.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("agent job: %s %s\n%s", bin, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("agent job command failed: %v", err)
	}
	if acts := ctl.actions(); !reflect.DeepEqual(acts, []string{"stop=ok", "start=ok"}) {
		t.Errorf("service actions %v, want one stop and one start", acts)
	}
	for _, want := range []string{"installed " + cluster.DefaultHostBinary + " on the node", "running in the node's root",
		"--kubelet-address=" + a.KubeletAddr(), "k3scert: restarted the agent; its certificates are fresh and verified"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("job output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "--cluster-listener") {
		t.Errorf("the agent's job chose a listener part")
	}

	after := map[string]*x509.Certificate{}
	for _, f := range agentCertFiles {
		after[f] = readCert(t, certPath(f))
		if after[f].SerialNumber.Cmp(before[f].SerialNumber) == 0 {
			t.Errorf("agent/%s: serial %s unchanged: not renewed", f, after[f].SerialNumber.Text(16))
		}
	}
	if served := a.ServedKubelet(); served == nil || !served.Equal(after["serving-kubelet.crt"]) {
		t.Errorf("the kubelet stand-in serves %v, not the renewed agent/serving-kubelet.crt (serial %s)", served, after["serving-kubelet.crt"].SerialNumber.Text(16))
	}
	st, err := rotate.ReadJournal(rotate.JournalPath(a.DataDir(), k3s.RoleAgent))
	if err != nil {
		t.Fatalf("the agent's journal: %v", err)
	}
	if st.End != "complete" || len(st.Done) != len(st.Plan.Steps) || st.Failed != "" {
		t.Errorf("journal: end %q, %d of %d steps done %v, failed %q; want complete", st.End, len(st.Done), len(st.Plan.Steps), st.Done, st.Failed)
	}
	inst, err := os.ReadFile(cluster.HostPath(root, cluster.DefaultHostBinary))
	self, _ := os.ReadFile(bin)
	if err != nil || !bytes.Equal(inst, self) {
		t.Errorf("binary not installed in the agent's root: %v", err)
	}
}
