package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/cluster"
)

// TestClusterPlansCLI: `k3scert cluster plans` prints the RBAC and the two
// plans with the flags' values; the plans decode strictly.
func TestClusterPlansCLI(t *testing.T) {
	out, err := rootCLI(t, "cluster", "plans", "--image", "registry.example/k3scert:v9.9.9", "--run-id", "r42",
		"--namespace", "ops", "--service-account", "rot", "--k3s-program", "rke2", "--agent-concurrency", "3",
		"--rotate-arg=--verify-days=60", "--image-pull-secret", "regcred")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	plans, err := cluster.DecodePlansStrict([]byte(out))
	if err != nil || len(plans) != 2 {
		t.Fatalf("decode: %v (%d plans)\n%s", err, len(plans), out)
	}
	s, a := plans[0], plans[1]
	if s.Namespace != "ops" || s.Spec.Version != "r42" || s.Spec.ServiceAccountName != "rot" || a.Spec.Concurrency != 3 || s.Spec.Concurrency != 1 {
		t.Errorf("server %+v\nagent %+v", s, a)
	}
	if got := strings.Join(s.Spec.Upgrade.Args, " "); !strings.HasSuffix(got, "-- rotate --yes --program=rke2 --unit=rke2-server --verify-days=60") {
		t.Errorf("server args %q", got)
	}
	for _, p := range plans {
		if len(p.Spec.ImagePullSecrets) != 1 || p.Spec.ImagePullSecrets[0].Name != "regcred" {
			t.Errorf("%s: imagePullSecrets %+v", p.Name, p.Spec.ImagePullSecrets)
		}
	}
	if got := strings.Join(a.Spec.Upgrade.Args, " "); !strings.Contains(got, "--unit=rke2-agent") {
		t.Errorf("agent args %q", got)
	}
	for _, want := range []string{"kind: ServiceAccount\nmetadata:\n  labels:\n    app.kubernetes.io/name: k3scert\n  name: rot\n  namespace: ops\n", "kind: ClusterRole\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	js, err := rootCLI(t, "cluster", "plans", "--image", "registry.example/k3scert:v9.9.9", "--run-id", "r42", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(js), &l); err != nil || l.Kind != "List" || len(l.Items) != 7 {
		t.Errorf("json: %v %s %d", err, l.Kind, len(l.Items))
	}
}

func TestClusterPlansDefaults(t *testing.T) {
	saved := version
	defer func() { version = saved }()

	version = "" // not a release: no default image
	if out, err := rootCLI(t, "cluster", "plans", "--run-id", "x"); err == nil || !strings.Contains(err.Error(), "no default image") {
		t.Errorf("unreleased build: %v\n%s", err, out)
	}
	version = "v1.2.3"
	out, err := rootCLI(t, "cluster", "plans")
	if err != nil {
		t.Fatal(err)
	}
	plans, err := cluster.DecodePlansStrict([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if img := plans[0].Spec.Upgrade.Image; img != "ghcr.io/k3scert/k3scert:v1.2.3" {
		t.Errorf("default image %q", img)
	}
	if v := plans[0].Spec.Version; len(v) != len("2006-01-02") || plans[1].Spec.Version != v {
		t.Errorf("default run id %q", v)
	}
	if out, err := rootCLI(t, "cluster", "plans", "--job-deadline", "0"); err != nil || !strings.Contains(out, "jobActiveDeadlineSecs: 0\n") {
		t.Errorf("--job-deadline 0: %v\n%s", err, out)
	}
	if out, err := rootCLI(t, "cluster", "plans", "--job-deadline", "7200"); err != nil || !strings.Contains(out, "jobActiveDeadlineSecs: 7200\n") {
		t.Errorf("--job-deadline 7200: %v", err)
	}
	for _, bad := range [][]string{
		{"cluster", "plans", "--job-deadline", "-5"},
		{"cluster", "plans", "--image", "k3scert"},
		{"cluster", "plans", "--k3s-program", "k8s"},
		{"cluster", "plans", "-o", "toml"},
		{"cluster", "plans", "--run-id", "has space"},
	} {
		if _, err := rootCLI(t, bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClusterHostRotateNeedsDash(t *testing.T) {
	if _, err := rootCLI(t, "cluster", "host-rotate", "--host-root", t.TempDir(), "rotate"); err == nil || !strings.Contains(err.Error(), "after --") {
		t.Errorf("arguments without --: %v", err)
	}
	if _, err := rootCLI(t, "cluster", "wait-plan"); err == nil {
		t.Errorf("wait-plan without a plan accepted")
	}
}
