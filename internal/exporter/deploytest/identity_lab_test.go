package deploytest

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
)

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

// TestServiceAccountIdentityInLab proves issue 12 item 1 on a real
// kube-apiserver (the lab's, on kine): the shipped ServiceAccount and Role
// are applied, a token is requested for the ServiceAccount (TokenRequest,
// `kubectl create token`), and
//   - `kubectl auth can-i` with that token allows get/watch on
//     kube-system/k3s-serving and nothing else;
//   - the exporter, reading the secret with exactly the configuration
//     rest.InClusterConfig builds in a pod (the API host, the bearer token
//     file, the CA file), judges the secret and its metrics show the
//     secret's certificate, read as system:serviceaccount:kube-system:k3scert;
//   - the same credentials are refused any other secret.
//
// The rendered Helm chart and the Kustomize base are also dry-run on the
// server here (TestDryRunRendered), since the apiserver is up.
func TestServiceAccountIdentityInLab(t *testing.T) {
	requireLab(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := lab.New(lab.Options{Root: t.TempDir(), Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	admin := n.Kubeconfig()

	// The Helm chart (rendered by deploy/helmtest with every toggle on)
	// passes a server-side dry run: every built-in object is accepted.
	rendered, err := os.ReadFile(filepath.Join(root, HelmRendered))
	if err != nil {
		t.Fatal(err)
	}
	out, sent, err := DryRunManifest(ctx, admin, rendered)
	if err != nil {
		t.Fatalf("server dry run of %s: %v\n%s", HelmRendered, err, out)
	}
	for _, name := range sent {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(name)) {
			t.Errorf("server dry run of the Helm chart did not accept %s:\n%s", name, out)
		}
	}
	if len(sent) != 6 { // ServiceAccount, Role, RoleBinding, Service, two DaemonSets
		t.Errorf("only %d objects of the Helm chart were dry-run: %v", len(sent), sent)
	}
	t.Logf("server dry run of the Helm chart: %d objects accepted", len(sent))

	// The shipped identity, applied as shipped.
	if _, err := kubectl(ctx, "--kubeconfig", admin, "apply",
		"-f", filepath.Join(root, Base, "serviceaccount.yaml"), "-f", filepath.Join(root, Base, "rbac.yaml")); err != nil {
		t.Fatal(err)
	}
	// A decoy secret next to k3s-serving, which the Role must not reach.
	if _, err := kubectl(ctx, "--kubeconfig", admin, "-n", "kube-system", "create", "secret", "generic", "decoy", "--from-literal=k=v"); err != nil {
		t.Fatal(err)
	}
	tok, err := kubectl(ctx, "--kubeconfig", admin, "-n", "kube-system", "create", "token", "k3scert", "--duration=10m")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	if strings.Count(token, ".") != 2 {
		t.Fatalf("TokenRequest returned %q, not a JWT", token)
	}

	// What a pod has: the token and CA files, and the API address.
	sa := t.TempDir()
	tokenFile, caFile := filepath.Join(sa, "token"), filepath.Join(sa, "ca.crt")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(n.DataDir(), "server/tls/server-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	host := "https://127.0.0.1:" + strconv.Itoa(n.Ports().APIServer)
	saKubeconfig := filepath.Join(sa, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: %q, certificate-authority: %q}
users:
- name: k3scert
  user: {tokenFile: %q}
contexts:
- name: k3scert
  context: {cluster: lab, user: k3scert}
current-context: k3scert
`, host, caFile, tokenFile)
	if err := os.WriteFile(saKubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}

	// kubectl auth can-i, as the ServiceAccount itself.
	canI := func(args ...string) bool {
		t.Helper()
		out, err := kubectl(ctx, append([]string{"--kubeconfig", saKubeconfig, "auth", "can-i"}, args...)...)
		ans := strings.TrimSpace(string(out))
		if err != nil && ans != "no" {
			// can-i exits 1 for "no".
			if !strings.Contains(err.Error(), "exit status 1") {
				t.Fatalf("can-i %v: %v", args, err)
			}
			ans = "no"
		}
		return ans == "yes"
	}
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"get", "secret/k3s-serving", "-n", "kube-system"}, true},
		{[]string{"watch", "secret/k3s-serving", "-n", "kube-system"}, true},
		{[]string{"get", "secret/decoy", "-n", "kube-system"}, false},
		{[]string{"list", "secrets", "-n", "kube-system"}, false},
		{[]string{"get", "secrets", "-n", "default"}, false},
		{[]string{"update", "secret/k3s-serving", "-n", "kube-system"}, false},
		{[]string{"patch", "secret/k3s-serving", "-n", "kube-system"}, false},
		{[]string{"delete", "secret/k3s-serving", "-n", "kube-system"}, false},
		{[]string{"create", "secrets", "-n", "kube-system"}, false},
		{[]string{"get", "configmaps", "-n", "kube-system"}, false},
		{[]string{"get", "pods", "-A"}, false},
		{[]string{"get", "nodes"}, false},
		{[]string{"create", "serviceaccounts/token", "-n", "kube-system"}, false},
		{[]string{"create", "certificatesigningrequests"}, false},
		{[]string{"impersonate", "users"}, false},
		{[]string{"*", "*"}, false},
	} {
		if got := canI(c.args...); got != c.want {
			t.Errorf("kubectl auth can-i %s as the k3scert ServiceAccount: %v, want %v", strings.Join(c.args, " "), got, c.want)
		}
	}

	// The exporter with the in-cluster configuration of a pod.
	reader, err := kube.FromConfig(kube.ModeServiceAccount, &rest.Config{
		Host: host, BearerTokenFile: tokenFile, TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
	}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	user, err := reader.WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if user != "system:serviceaccount:kube-system:k3scert" {
		t.Errorf("SelfSubjectReview: %q", user)
	}
	if _, err := reader.Get(ctx, "kube-system", "decoy"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("reading another secret with the ServiceAccount: %v, want 403 Forbidden", err)
	}
	l := k3s.ListenerSpec(n.Program())
	e, err := exporter.New(exporter.Options{Node: "lab-node", Scan: func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error) {
		o := n.CheckOptions()
		o.At = now.UTC().Truncate(time.Second)
		o.Secret = func(ctx context.Context) (*corev1.Secret, string, error) {
			s, err := reader.Get(ctx, l.Namespace, l.SecretName)
			return s, reader.Via(user), err
		}
		return check.Run(ctx, o)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	r, _ := e.Report()
	for _, f := range r.Findings {
		if f.Code == "K3C900" && strings.Contains(f.Location, "secret") {
			t.Errorf("the secret could not be read: %+v", f)
		}
	}
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	// The secret's certificate, as the admin reads it.
	out2, err := kubectl(ctx, "--kubeconfig", admin, "-n", "kube-system", "get", "secret", l.SecretName, "-o", "jsonpath={.data.tls\\.crt}")
	if err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(string(out2))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(der)
	if blk == nil {
		t.Fatal("secret tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`location="secret kube-system/%s",name="listener",node="lab-node",source="secret",subject="CN=%s,O=%s"} %s`,
		l.SecretName, cert.Subject.CommonName, cert.Subject.Organization[0], strconv.FormatFloat(float64(cert.NotAfter.Unix()), 'g', -1, 64))
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, exporter.NameNotAfter+"{") && strings.Contains(line, want) {
			found = true
			t.Logf("metric: %s", line)
		}
	}
	if !found {
		t.Errorf("/metrics lacks the secret's certificate (%s); secret lines:\n%s", want, grep(string(body), `source="secret"`))
	}
	via := ""
	for _, c := range r.Certificates {
		if c.Source == "secret" {
			via = c.Via
		}
	}
	if via != "api as system:serviceaccount:kube-system:k3scert (serviceaccount)" {
		t.Errorf("the secret was read via %q", via)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
