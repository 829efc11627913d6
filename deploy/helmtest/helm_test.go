package helmtest

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the generated files (HelmChart manifest, rendered testdata)")

// Rendered is the chart rendered with every toggle on; the main module's
// lab test dry-runs it on a real kube-apiserver (internal/exporter/deploytest).
const Rendered = "../helm/testdata/rendered-all.yaml"

// allOn turns on everything the chart can render.
var allOn = map[string]any{
	"agents":         map[string]any{"enabled": true},
	"serviceMonitor": map[string]any{"enabled": true},
	"prometheusRule": map[string]any{"enabled": true, "criticalDays": 7},
}

func render(t *testing.T, c *chart.Chart, vals map[string]any) map[string]string {
	t.Helper()
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: "k3scert", Namespace: "kube-system", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(c, rv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifest joins rendered templates as `helm template` prints them.
func manifest(out map[string]string) string {
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") || strings.TrimSpace(out[n]) == "" {
			continue
		}
		b.WriteString("---\n# Source: " + n + "\n" + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out[n]), "---")) + "\n")
	}
	return b.String()
}

type obj struct {
	Kind     string         `json:"kind"`
	Metadata map[string]any `json:"metadata"`
	Spec     map[string]any `json:"spec"`
	Rules    []any          `json:"rules"`
}

func objects(t *testing.T, m string) []obj {
	t.Helper()
	var out []obj
	for _, doc := range strings.Split(m, "\n---\n") {
		doc = strings.TrimPrefix(doc, "---\n")
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o obj
		if err := yaml.UnmarshalStrict([]byte(doc), &o, yaml.DisallowUnknownFields); err != nil {
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				t.Fatalf("%v:\n%s", err, doc)
			}
		}
		out = append(out, o)
	}
	return out
}

// TestLint is `helm lint` of the chart, with the defaults and everything on.
func TestLint(t *testing.T) {
	for _, vals := range []map[string]any{nil, allOn, {"program": "rke2"}} {
		l := lint.AllWithKubeVersion(ChartDir, vals, "kube-system", nil)
		for _, m := range l.Messages {
			t.Logf("lint %v: %s", vals, m)
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint %v: %s", vals, m)
			}
		}
	}
	c, err := loader.Load(ChartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(c, map[string]any{"program": "k8s"}, chartutil.ReleaseOptions{Name: "k3scert", Namespace: "kube-system"}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(c, rv); err == nil || !strings.Contains(err.Error(), "program must be k3s or rke2") {
		t.Errorf("program: k8s renders (%v)", err)
	}
}

// TestTemplate is `helm template`: what the defaults and the toggles render.
func TestTemplate(t *testing.T) {
	c, err := loader.Load(ChartDir)
	if err != nil {
		t.Fatal(err)
	}
	def := objects(t, manifest(render(t, c, nil)))
	kinds := map[string]int{}
	for _, o := range def {
		kinds[o.Kind]++
	}
	for k, n := range map[string]int{"ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "DaemonSet": 1, "Service": 1} {
		if kinds[k] != n {
			t.Errorf("defaults render %d %s, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	if kinds["ServiceMonitor"]+kinds["PrometheusRule"] != 0 {
		t.Errorf("prometheus-operator objects rendered by default: %v", kinds)
	}

	all := manifest(render(t, c, allOn))
	objs := objects(t, all)
	kinds = map[string]int{}
	for _, o := range objs {
		kinds[o.Kind]++
	}
	if kinds["DaemonSet"] != 2 || kinds["ServiceMonitor"] != 1 || kinds["PrometheusRule"] != 1 {
		t.Errorf("all on renders %v", kinds)
	}
	for _, want := range []string{
		"priorityClassName: system-node-critical",
		"--secret=serviceaccount", // servers: the ServiceAccount reads the secret
		"--secret=none",           // agents: nothing to read
		"fieldPath: spec.nodeName",
		"memory: 48Mi",
		`resourceNames: ["k3s-serving"]`,
		"operator: DoesNotExist", // agents: every node that is not a server
		"image: ghcr.io/k3scert/k3scert:v0.2.0",
		"< 7 * 86400", // prometheusRule.criticalDays
		"within 7 days",
		"record: x509_cert_not_after",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("rendered chart lacks %q", want)
		}
	}
	if strings.Contains(all, "14 * 86400") || strings.Contains(all, "< 14\n") {
		t.Error("criticalDays not applied everywhere")
	}
	// The rules are the generated file's, apart from the threshold.
	rules, err := os.ReadFile("../rules/k3scert.rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if chartRules, err := os.ReadFile(filepath.Join(ChartDir, "rules/k3scert.rules.yaml")); err != nil || !bytes.Equal(rules, chartRules) {
		t.Errorf("the chart's rules differ from deploy/rules/k3scert.rules.yaml (go test ./internal/exporter -run TestRulesGenerated -update): %v", err)
	}
	rke2 := manifest(render(t, c, map[string]any{"program": "rke2"}))
	for _, want := range []string{`resourceNames: ["rke2-serving"]`, "path: /var/lib/rancher/rke2", "--admin-kubeconfig=/etc/rancher/rke2/rke2.yaml"} {
		if !strings.Contains(rke2, want) {
			t.Errorf("program: rke2 renders no %q", want)
		}
	}

	if *update {
		if err := os.MkdirAll(filepath.Dir(Rendered), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(Rendered, []byte("# Generated by deploy/helmtest: the chart with agents, serviceMonitor and prometheusRule on.\n"+all), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if got, err := os.ReadFile(Rendered); err != nil || !strings.HasSuffix(string(got), all) {
		t.Errorf("%s is not the current rendering; run go test ./... -update in deploy/helmtest (%v)", Rendered, err)
	}
}

// TestHelmChartManifest: the HelmChart for K3s's helm controller carries
// exactly the chart (deterministically packaged), which loads and renders
// like the directory.
func TestHelmChartManifest(t *testing.T) {
	want, err := Manifest(ChartDir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Manifest(ChartDir)
	if err != nil || !bytes.Equal(want, again) {
		t.Fatalf("packaging is not deterministic (%v)", err)
	}
	if *update {
		if err := os.WriteFile(HelmChartManifest, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(HelmChartManifest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale; run go test ./... -update in deploy/helmtest", HelmChartManifest)
	}
	var hc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name, Namespace string
		} `json:"metadata"`
		Spec struct {
			TargetNamespace string `json:"targetNamespace"`
			Bootstrap       bool   `json:"bootstrap"`
			ChartContent    string `json:"chartContent"`
			ValuesContent   string `json:"valuesContent"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(got, &hc); err != nil {
		t.Fatal(err)
	}
	if hc.APIVersion != "helm.cattle.io/v1" || hc.Kind != "HelmChart" || hc.Metadata.Namespace != "kube-system" || hc.Spec.TargetNamespace != "kube-system" {
		t.Errorf("HelmChart header %+v", hc)
	}
	tgz, err := base64.StdEncoding.DecodeString(hc.Spec.ChartContent)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loader.LoadArchive(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := loader.Load(ChartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValues([]byte(hc.Spec.ValuesContent))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := manifest(render(t, c, vals)), manifest(render(t, dir, vals)); a != b || !strings.Contains(a, "name: k3scert-agent") {
		t.Error("the HelmChart's chart renders differently from deploy/helm/k3scert")
	}
}
