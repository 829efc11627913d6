package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func sucOptions() PlansOptions {
	return PlansOptions{Image: "ghcr.io/k3scert/k3scert:v0.2.0", RunID: "2026-12-02"}
}

func sucYAML(t *testing.T, o PlansOptions) []byte {
	t.Helper()
	objs, err := Manifest(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := RenderYAML(objs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSucPlansStrict decodes the generated stream into the structs that
// mirror upstream's Plan API, unknown fields disallowed, and checks what
// the plans promise.
func TestSucPlansStrict(t *testing.T) {
	for _, prog := range []k3s.Program{k3s.K3s, k3s.RKE2} {
		o := sucOptions()
		o.Program = prog
		o.RotateArgs = []string{"--verify-days=60"}
		plans, err := DecodePlansStrict(sucYAML(t, o))
		if err != nil {
			t.Fatalf("%s: %v", prog, err)
		}
		if len(plans) != 2 {
			t.Fatalf("%s: %d plans, want 2", prog, len(plans))
		}
		srv, agt := plans[0], plans[1]
		su, au := "k3s", "k3s-agent"
		if prog == k3s.RKE2 {
			su, au = "rke2-server", "rke2-agent"
		}
		if srv.Name != DefaultServerPlan || agt.Name != DefaultAgentPlan || srv.Namespace != DefaultSUCNamespace {
			t.Errorf("names %s/%s, %s", srv.Namespace, srv.Name, agt.Name)
		}
		if srv.Spec.Concurrency != 1 {
			t.Errorf("server concurrency %d, want 1", srv.Spec.Concurrency)
		}
		wantSel := []metav1.LabelSelectorRequirement{{Key: "node-role.kubernetes.io/control-plane", Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}}}
		if !reflect.DeepEqual(srv.Spec.NodeSelector.MatchExpressions, wantSel) {
			t.Errorf("server selector %+v", srv.Spec.NodeSelector)
		}
		if e := agt.Spec.NodeSelector.MatchExpressions; len(e) != 1 || e[0].Operator != metav1.LabelSelectorOpDoesNotExist || e[0].Key != LabelControlPlane {
			t.Errorf("agent selector %+v", agt.Spec.NodeSelector)
		}
		tol := map[string]bool{}
		for _, x := range srv.Spec.Tolerations {
			if x.Operator != corev1.TolerationOpExists || x.Effect != "" {
				t.Errorf("toleration %+v: want Exists, any effect", x)
			}
			tol[x.Key] = true
		}
		for _, k := range []string{"CriticalAddonsOnly", "node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master", "node-role.kubernetes.io/etcd"} {
			if !tol[k] {
				t.Errorf("server plan does not tolerate %s", k)
			}
		}
		if !reflect.DeepEqual(agt.Spec.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}) {
			t.Errorf("agent tolerations %+v, want every taint", agt.Spec.Tolerations)
		}
		if srv.Spec.Cordon || srv.Spec.Drain != nil || agt.Spec.Cordon || agt.Spec.Drain != nil {
			t.Errorf("plans cordon or drain; a K3s restart does not evict pods")
		}
		for _, p := range plans {
			if p.Spec.Version != o.RunID || p.Spec.ServiceAccountName != DefaultSUCAccount {
				t.Errorf("%s: version %q account %q", p.Name, p.Spec.Version, p.Spec.ServiceAccountName)
			}
			if p.Spec.JobActiveDeadlineSecs == nil || *p.Spec.JobActiveDeadlineSecs != DefaultJobDeadline {
				t.Errorf("%s: jobActiveDeadlineSecs %v", p.Name, p.Spec.JobActiveDeadlineSecs)
			}
			if p.Spec.Upgrade.Image != o.Image || !reflect.DeepEqual(p.Spec.Upgrade.Command, []string{ImageBinary}) {
				t.Errorf("%s: upgrade %+v", p.Name, p.Spec.Upgrade)
			}
		}
		wantUp := func(unit string, extra ...string) []string {
			a := append([]string{"cluster", "host-rotate", "--host-root=/host", "--host-binary=/usr/local/bin/k3scert"}, extra...)
			return append(a, "--", "rotate", "--yes", "--program="+string(prog), "--unit="+unit, "--verify-days=60")
		}
		if !reflect.DeepEqual(srv.Spec.Upgrade.Args, wantUp(su, "--listener-from-plan=k3scert-server")) || !reflect.DeepEqual(agt.Spec.Upgrade.Args, wantUp(au)) {
			t.Errorf("upgrade args\n server %q\n agent  %q", srv.Spec.Upgrade.Args, agt.Spec.Upgrade.Args)
		}
		if srv.Spec.Prepare != nil {
			t.Errorf("server plan has a prepare step")
		}
		if agt.Spec.Prepare == nil || !reflect.DeepEqual(agt.Spec.Prepare.Args, []string{"cluster", "wait-plan", DefaultServerPlan}) || agt.Spec.Prepare.Image != o.Image {
			t.Errorf("agent prepare %+v", agt.Spec.Prepare)
		}
	}
}

// TestSucStrictRejectsUnknownFields: a field the upstream API does not
// have fails the strict decode — top level, nested, and upstream's own
// spelling traps (envs, not env).
func TestSucStrictRejectsUnknownFields(t *testing.T) {
	good := string(sucYAML(t, sucOptions()))
	for _, c := range []struct{ from, to, field string }{
		{"  concurrency: 1\n", "  concurency: 1\n", "concurency"},
		{"  serviceAccountName: k3scert-rotate\n", "  serviceAccount: k3scert-rotate\n", "serviceAccount"},
		{"    image: ghcr.io/k3scert/k3scert:v0.2.0\n  serviceAccountName", "    image: ghcr.io/k3scert/k3scert:v0.2.0\n    env:\n    - name: X\n      value: \"1\"\n  serviceAccountName", "env"},
		{"  - key: CriticalAddonsOnly\n", "  - key: CriticalAddonsOnly\n    tolerationSeconds2: 5\n", "tolerationSeconds2"},
	} {
		if !strings.Contains(good, c.from) {
			t.Fatalf("generated YAML lacks %q", c.from)
		}
		bad := strings.Replace(good, c.from, c.to, 1)
		_, err := DecodePlansStrict([]byte(bad))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("typo %q: err %v, want an unknown-field error naming it", c.field, err)
		}
	}
	// The correct spelling of the same field decodes.
	ok := strings.Replace(good, "    image: ghcr.io/k3scert/k3scert:v0.2.0\n  serviceAccountName", "    image: ghcr.io/k3scert/k3scert:v0.2.0\n    envs:\n    - name: X\n      value: \"1\"\n  serviceAccountName", 1)
	if ps, err := DecodePlansStrict([]byte(ok)); err != nil || len(ps[1].Spec.Prepare.Env) != 1 {
		t.Errorf("envs: %v", err)
	}
	if _, err := DecodePlansStrict([]byte(strings.Replace(good, "apiVersion: upgrade.cattle.io/v1", "apiVersion: upgrade.cattle.io/v2", 1))); err == nil {
		t.Errorf("a SUCPlan of another version decoded")
	}
}

func TestSucJSONList(t *testing.T) {
	objs, err := Manifest(sucOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := RenderJSON(objs)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(b, &l); err != nil || l.Kind != "List" || len(l.Items) != 7 {
		t.Fatalf("list %s: %v (%d items)", l.Kind, err, len(l.Items))
	}
	var stream []byte
	for _, it := range l.Items {
		stream = append(append(stream, "---\n"...), it...)
		stream = append(stream, '\n')
	}
	ps, err := DecodePlansStrict(stream)
	if err != nil || len(ps) != 2 {
		t.Fatalf("json plans: %v (%d)", err, len(ps))
	}
}

func TestSucRBACLeast(t *testing.T) {
	b := string(sucYAML(t, sucOptions()))
	// Every verb granted, and nothing else: get plans, get/list nodes.
	for _, want := range []string{"kind: Role\n", "- plans\n  verbs:\n  - get\n", "- nodes\n  verbs:\n  - get\n  - list\n", "kind: ClusterRoleBinding\n", "kind: ServiceAccount\n"} {
		if !strings.Contains(b, want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
	for _, bad := range []string{"- watch", "- update", "- patch", "- create", "- delete", "'*'", "secrets"} {
		if strings.Contains(b, bad) {
			t.Errorf("manifest grants %q", bad)
		}
	}
}

func TestSucOptionsRejected(t *testing.T) {
	for name, mut := range map[string]func(*PlansOptions){
		"tagless image":   func(o *PlansOptions) { o.Image = "ghcr.io/k3scert/k3scert" },
		"registry port":   func(o *PlansOptions) { o.Image = "registry:5000/k3scert" },
		"no image":        func(o *PlansOptions) { o.Image = "" },
		"run id space":    func(o *PlansOptions) { o.RunID = "a b" },
		"run id empty":    func(o *PlansOptions) { o.RunID = "" },
		"program":         func(o *PlansOptions) { o.Program = "k8s" },
		"same plan names": func(o *PlansOptions) { o.AgentPlan = o.ServerPlan; o.ServerPlan = "x"; o.AgentPlan = "x" },
		"namespace":       func(o *PlansOptions) { o.Namespace = "System" },
		"relative bin":    func(o *PlansOptions) { o.HostBinary = "bin/k3scert" },
		"concurrency":     func(o *PlansOptions) { o.AgentConcurrency = -1 },
	} {
		o := sucOptions()
		mut(&o)
		if _, err := Manifest(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o := sucOptions()
	o.Image = "registry:5000/k3scert@sha256:" + strings.Repeat("a", 64)
	if _, err := Manifest(o); err != nil {
		t.Errorf("digest image: %v", err)
	}
}

func sucNode(name string, labels map[string]string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestSucProgressAndSelector(t *testing.T) {
	srv, _, err := SUCPlans(sucOptions())
	if err != nil {
		t.Fatal(err)
	}
	sel, err := Selector(&srv)
	if err != nil {
		t.Fatal(err)
	}
	want := "kubernetes.io/hostname,node-role.kubernetes.io/control-plane in (true),plan.upgrade.cattle.io/k3scert-server notin (disabled)"
	if sel.String() != want {
		t.Errorf("selector\n got %s\nwant %s", sel, want)
	}
	key := SUCPlanLabel(srv.Name)
	if key != "plan.upgrade.cattle.io/k3scert-server" {
		t.Errorf("label key %s", key)
	}
	srv.Status.LatestHash = "h2"
	nodes := []corev1.Node{sucNode("s2", map[string]string{key: "h1"}), sucNode("s1", map[string]string{key: "h2"})}
	pr := progressOf(&srv, nodes)
	if pr.Complete() || !reflect.DeepEqual(pr.Selected, []string{"s1", "s2"}) || !reflect.DeepEqual(pr.Done, []string{"s1"}) {
		t.Errorf("progress %+v", pr)
	}
	if !strings.Contains(pr.String(), "waiting for s2") {
		t.Errorf("progress line %q", pr)
	}
	nodes[0].Labels[key] = "h2"
	if pr := progressOf(&srv, nodes); !pr.Complete() {
		t.Errorf("not complete: %+v", pr)
	}
	srv.Status.LatestHash = ""
	if pr := progressOf(&srv, nodes); pr.Complete() {
		t.Errorf("complete without a resolved hash")
	}
	srv.Status.LatestHash = "h2"
	if pr := progressOf(&srv, nil); pr.Complete() {
		t.Errorf("complete with no node")
	}
	// The listener part: renew on the run's first server, adopt after.
	for _, c := range []struct {
		done       []string
		node, want string
	}{{nil, "s1", ListenerRenew}, {[]string{"s1"}, "s1", ListenerRenew}, {[]string{"s1"}, "s2", ListenerAdopt}, {[]string{"s1", "s2"}, "s3", ListenerAdopt}} {
		if got, why := ListenerModeFor(PlanProgress{Plan: "p", LatestHash: "h", Done: c.done}, c.node); got != c.want {
			t.Errorf("done %v, node %s: %s (%s), want %s", c.done, c.node, got, why, c.want)
		}
	}
}

func TestSucInstallBinary(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "k3scert")
	if err := os.WriteFile(src, []byte("binary v1"), 0o700); err != nil {
		t.Fatal(err)
	}
	wrote, err := InstallBinary(src, root, "/usr/local/bin/k3scert")
	if err != nil || !wrote {
		t.Fatalf("install: %v %v", wrote, err)
	}
	dst := filepath.Join(root, "usr", "local", "bin", "k3scert")
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed %v %v", fi, err)
	}
	if wrote, err := InstallBinary(src, root, "/usr/local/bin/k3scert"); err != nil || wrote {
		t.Errorf("second install of the same bytes wrote=%v err=%v", wrote, err)
	}
	if err := os.WriteFile(src, []byte("binary v2"), 0o700); err != nil {
		t.Fatal(err)
	}
	if wrote, err := InstallBinary(src, root, "/usr/local/bin/k3scert"); err != nil || !wrote {
		t.Errorf("new bytes: wrote=%v err=%v", wrote, err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "binary v2" {
		t.Errorf("installed %q", b)
	}
	if _, err := InstallBinary(src, root, "usr/bin/k3scert"); err == nil {
		t.Errorf("relative destination accepted")
	}
	env := HostEnv([]string{"PATH=/bin", "SYSTEM_UPGRADE_NODE_NAME=n1"})
	if !reflect.DeepEqual(env, []string{"SYSTEM_UPGRADE_NODE_NAME=n1", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}) {
		t.Errorf("env %q", env)
	}
	if _, err := HostArgv("/usr/local/bin/k3scert", nil); err == nil {
		t.Errorf("no args accepted")
	}
}
