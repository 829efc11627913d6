package deploytest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/exporter"
	monv1 "github.com/k3scert/k3scert/internal/exporter/deploytest/monitoring"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

func build(t *testing.T, dir string) (string, []Object) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("kubectl"); err != nil && testing.Short() {
		t.Skip("kubectl not on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Kustomize(ctx, root, dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return root, objs
}

func byKind(objs []Object) map[string][]Object {
	m := map[string][]Object{}
	for _, o := range objs {
		m[o.Kind] = append(m[o.Kind], o)
	}
	return m
}

// exportedMetrics are the metric names the exporter describes.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	e, err := exporter.New(exporter.Options{Scan: func(context.Context, time.Time) (report.Report, *source.Inventory, error) {
		return report.Report{}, nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 64)
	e.Describe(ch)
	close(ch)
	names := map[string]bool{}
	re := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
	}
	return names
}

func TestBase(t *testing.T) {
	_, objs := build(t, Base)
	k := byKind(objs)
	for kind, n := range map[string]int{"ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "DaemonSet": 1, "Service": 1, "ConfigMap": 1} {
		if len(k[kind]) != n {
			t.Errorf("%d %s, want %d", len(k[kind]), kind, n)
		}
	}
	if len(objs) != 6 {
		t.Errorf("%d objects in the base, want 6 (CRD kinds belong in %s)", len(objs), PrometheusOperator)
	}
	for _, o := range objs {
		if o.Namespace != "kube-system" {
			t.Errorf("%s in namespace %q, want kube-system", o.Name(), o.Namespace)
		}
	}

	// RBAC: get/watch on the k3s-serving secret, nothing else.
	role := k["Role"][0].Typed.(*rbacv1.Role)
	if len(role.Rules) != 1 {
		t.Fatalf("role rules: %+v", role.Rules)
	}
	r := role.Rules[0]
	if strings.Join(r.APIGroups, ",") != "" || strings.Join(r.Resources, ",") != "secrets" ||
		strings.Join(r.ResourceNames, ",") != "k3s-serving" || strings.Join(r.Verbs, ",") != "get,watch" {
		t.Errorf("role rule %+v, want get,watch on secrets/k3s-serving", r)
	}
	rb := k["RoleBinding"][0].Typed.(*rbacv1.RoleBinding)
	if rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" ||
		rb.Subjects[0].Name != k["ServiceAccount"][0].ObjName || rb.Subjects[0].Namespace != "kube-system" {
		t.Errorf("rolebinding %+v", rb)
	}

	// DaemonSet: server nodes, host network, read-only everything.
	ds := k["DaemonSet"][0].Typed.(*appsv1.DaemonSet)
	ps := ds.Spec.Template.Spec
	if ps.NodeSelector["node-role.kubernetes.io/control-plane"] != "true" {
		t.Errorf("nodeSelector %v", ps.NodeSelector)
	}
	tol := map[string]bool{}
	for _, x := range ps.Tolerations {
		tol[x.Key] = true
	}
	for _, key := range []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"} {
		if !tol[key] {
			t.Errorf("no toleration for %s", key)
		}
	}
	if !ps.HostNetwork || ps.ServiceAccountName != "k3scert" {
		t.Errorf("hostNetwork %v, serviceAccountName %q", ps.HostNetwork, ps.ServiceAccountName)
	}
	if ps.SecurityContext.RunAsUser == nil || *ps.SecurityContext.RunAsUser != 0 {
		t.Error("runAsUser 0 is the documented choice")
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v", sc)
	}
	hostPaths := map[string]string{}
	for _, v := range ps.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a hostPath", v.Name)
			continue
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			t.Errorf("mount %s is writable", m.MountPath)
		}
		if hostPaths[m.Name] != m.MountPath {
			t.Errorf("%s is mounted at %s; K3s kubeconfigs reference absolute paths, mount at the host path", hostPaths[m.Name], m.MountPath)
		}
		mounted[m.MountPath] = true
	}
	for _, p := range []string{"/var/lib/rancher/k3s", "/etc/rancher/k3s"} {
		if !mounted[p] {
			t.Errorf("%s not mounted", p)
		}
	}
	args := strings.Join(c.Args, " ")
	if !strings.HasPrefix(args, "serve ") || !strings.Contains(args, "--listen=[$(POD_IP)]:9796") {
		t.Errorf("args %q", args)
	}
	// Least privilege: the ServiceAccount reads the secret, nothing mints.
	if !strings.Contains(args, "--secret=serviceaccount") {
		t.Errorf("args %q: serve must read the secret with its ServiceAccount", args)
	}
	if ps.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", ps.PriorityClassName)
	}
	nodeEnv := false
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeEnv = true
		}
	}
	if !nodeEnv {
		t.Error("no NODE_NAME from spec.nodeName (the node label of every series)")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
		t.Error("no /healthz readiness probe")
	}

	svc := k["Service"][0].Typed.(*corev1.Service)
	if svc.Spec.ClusterIP != "None" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" {
		t.Errorf("service spec %+v", svc.Spec)
	}
	for key, v := range svc.Spec.Selector {
		if ds.Spec.Template.Labels[key] != v {
			t.Errorf("service selector %s=%s does not select the DaemonSet's pods", key, v)
		}
	}
}

func TestDashboard(t *testing.T) {
	root, objs := build(t, Base)
	cm := byKind(objs)["ConfigMap"][0].Typed.(*corev1.ConfigMap)
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v", cm.Labels)
	}
	raw, err := os.ReadFile(filepath.Join(root, Base, "dashboards", "k3scert.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["k3scert.json"] != string(raw) {
		t.Error("the ConfigMap's dashboard differs from dashboards/k3scert.json")
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || len(d.Panels) < 4 {
		t.Errorf("dashboard uid %q, %d panels", d.UID, len(d.Panels))
	}
	known := exportedMetrics(t)
	re := regexp.MustCompile(`k3scert_[a-z_]+`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range re.FindAllString(tg.Expr, -1) {
				if !known[m] {
					t.Errorf("panel %q uses %s, which the exporter does not export", p.Title, m)
				}
			}
		}
	}
}

func TestPrometheusOperator(t *testing.T) {
	_, objs := build(t, PrometheusOperator)
	k := byKind(objs)
	if len(k["ServiceMonitor"]) != 1 || len(k["PrometheusRule"]) != 1 || len(objs) != 8 {
		t.Fatalf("overlay objects: %d ServiceMonitor, %d PrometheusRule, %d total", len(k["ServiceMonitor"]), len(k["PrometheusRule"]), len(objs))
	}
	sm := k["ServiceMonitor"][0].Typed.(*monv1.ServiceMonitor)
	svc := k["Service"][0].Typed.(*corev1.Service)
	for key, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[key] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not select the Service", key, v)
		}
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
	}

	pr := k["PrometheusRule"][0].Typed.(*monv1.PrometheusRule)
	alerts := map[string]monv1.Rule{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r
		}
	}
	codes := map[string]bool{}
	for _, c := range diagnose.All {
		codes[c.ID] = true
	}
	known := exportedMetrics(t)
	metric := regexp.MustCompile(`k3scert_[a-z_]+`)
	code := regexp.MustCompile(`code="([A-Z0-9]+)"`)
	for name, r := range alerts {
		if name == "" {
			continue // recording rules
		}
		sev, ok := r.Labels["severity"]
		switch {
		case !ok && strings.Contains(r.Expr, "by (node, code, severity)") && strings.Contains(r.Expr, `severity=~"critical|warning"`):
			// The finding's own severity, critical or warning.
		case sev != "critical" && sev != "warning":
			t.Errorf("%s: severity %q", name, sev)
		}
		if !strings.HasPrefix(r.Annotations["runbook_url"], "https://github.com/k3scert/k3scert/blob/main/docs/") {
			t.Errorf("%s: runbook_url %q", name, r.Annotations["runbook_url"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: summary and description are required", name)
		}
		for _, m := range metric.FindAllString(r.Expr, -1) {
			if !known[m] {
				t.Errorf("%s uses %s, which the exporter does not export", name, m)
			}
		}
		for _, m := range code.FindAllStringSubmatch(r.Expr, -1) {
			if !codes[m[1]] {
				t.Errorf("%s uses unknown finding code %s", name, m[1])
			}
		}
	}
	// The alerts issues 7 and 12 ask for.
	for name, want := range map[string]string{
		"K3sCertificateInRenewWindow":       `code="K3C002"`,
		"K3sCertificateExpired":             `k3scert_certificate_not_after_seconds{source!="registry"} <= time()`,
		"K3sCertificateExpiresSoon":         `< 14 * 86400`,
		"K3sCertExporterDown":               `up{job="k3scert"} == 0`,
		"K3sCertExporterAbsent":             `absent(k3scert_last_scan_timestamp_seconds)`,
		"K3sCertScanStale":                  `k3scert_last_scan_timestamp_seconds`,
		"K3sListenerServesStaleCertificate": `code="K3C101"`,
		"K3sCAExpiresWithinAYear":           `code="K3C010"`,
		"K3sCertScanErrors":                 `k3scert_scan_errors_total`,
	} {
		if r, ok := alerts[name]; !ok || !strings.Contains(r.Expr, want) {
			t.Errorf("alert %s missing or not over %s: %+v", name, want, r)
		}
	}
}

// TestRulesParse parses every expression with the Prometheus PromQL parser
// (github.com/prometheus/prometheus v0.316.0), in its own module under
// deploy/promqlcheck so that k3scert's go.mod stays free of it.
func TestRulesParse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Prometheus parser (its own module)")
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", ".", filepath.Join(root, PrometheusOperator, "prometheusrule.yaml"))
	cmd.Dir = filepath.Join(root, PromQLCheck)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promqlcheck: %v\n%s", err, out)
	}
	known := exportedMetrics(t)
	known["up"] = true // the target-down alert
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if m, ok := strings.CutPrefix(l, "metric: "); ok {
			n++
			if !known[m] {
				t.Errorf("a rule selects %s, which the exporter does not export", m)
			}
		}
	}
	if n == 0 || !strings.Contains(string(out), " rules checked, 0 problems") {
		t.Errorf("promqlcheck output:\n%s", out)
	}
	t.Log(strings.TrimSpace(string(out[strings.LastIndex(strings.TrimSpace(string(out)), "\n")+1:])))
}

// TestDryRunServer runs the server-side dry run when a cluster is given:
// K3SCERT_DRYRUN_KUBECONFIG=<kubeconfig> (the lab's tests call
// DryRunServer directly).
func TestDryRunServer(t *testing.T) {
	kc := os.Getenv("K3SCERT_DRYRUN_KUBECONFIG")
	if kc == "" {
		t.Skip("set K3SCERT_DRYRUN_KUBECONFIG to dry-run deploy/kustomize/base against a cluster")
	}
	dirs := []string{Base}
	if os.Getenv("K3SCERT_DRYRUN_CRDS") != "" {
		dirs = append(dirs, PrometheusOperator)
	}
	DryRunServer(t, kc, dirs...)
}
