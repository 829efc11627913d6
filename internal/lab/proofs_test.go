package lab_test

// Proofs of the issues that need a running node: the serving secret reached
// three ways (issue 4), the forecast agreeing with what the lab does
// (issue 6), and the exporter and manifests against the lab (issue 7).

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/exporter/deploytest"
	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
)

func newNode(t *testing.T, p k3s.Profile, enc bool) *lab.Node {
	t.Helper()
	n, err := lab.New(lab.Options{Root: t.TempDir(), Profile: p, SecretsEncryption: enc, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	if _, err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func leafFP(t *testing.T, s *corev1.Secret) string {
	t.Helper()
	if s == nil {
		t.Fatal("no secret")
	}
	c, err := pki.ParseCerts(s.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatal(err)
	}
	return pki.Fingerprint(c[0])
}

func apiSecret(t *testing.T, n *lab.Node) (*corev1.Secret, string) {
	t.Helper()
	o, err := kube.NodeOptions(n.DataDir(), n.Program(), n.Ports(), time.Now(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.Connect(context.Background(), o)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	l := k3s.ListenerSpec(n.Program())
	s, err := c.GetServingSecret(context.Background(), l.Namespace, l.SecretName)
	if err != nil {
		t.Fatalf("get secret through the API: %v", err)
	}
	return s, c.Via()
}

func storeSecret(t *testing.T, n *lab.Node) (*corev1.Secret, datastore.SecretInfo) {
	t.Helper()
	st, err := datastore.OpenNode(datastore.NodeOptions{DataDir: n.DataDir(), Program: n.Program()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Store.Close()
	s, info, err := st.Get(context.Background(), n.SecretKey())
	if err != nil {
		t.Fatalf("datastore: %v", err)
	}
	return s, info
}

// Issue 4: the secret through the API with valid leaves and with every
// leaf expired, and from state.db with the node stopped, is one
// certificate.
func TestServingSecretThreeWays(t *testing.T) {
	requireLab(t)
	t.Parallel()
	ctx := context.Background()
	n := newNode(t, k3s.ProfileV118, false)
	n.Observe(ctx, "settle", "", 0) // let the listener write the secret
	valid, via := apiSecret(t, n)
	direct, _, err := n.ReadSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leafFP(t, valid) != leafFP(t, direct) {
		t.Errorf("API (valid leaves) and kine disagree")
	}
	t.Logf("valid leaves: via %s", via)

	if err := n.Advance(ctx, 421); err != nil {
		t.Fatal(err)
	}
	expired, via := apiSecret(t, n)
	if !strings.Contains(via, "verified at") {
		t.Errorf("with expired leaves the API client must say it verified at another time; via = %q", via)
	}
	t.Logf("expired leaves: via %s", via)
	n.Stop()
	offline, info := storeSecret(t, n)
	if leafFP(t, expired) != leafFP(t, offline) {
		t.Errorf("API (expired leaves) %s and state.db (stopped) %s disagree", leafFP(t, expired)[:12], leafFP(t, offline)[:12])
	}
	if info.Encrypted != nil {
		t.Errorf("unexpected encryption: %+v", info.Encrypted)
	}
}

// Issue 4: with secrets encryption the apiserver stores the secret as
// k8s:enc:aescbc:v1:aescbckey:...; the datastore path decrypts it.
func TestEncryptedServingSecret(t *testing.T) {
	requireLab(t)
	t.Parallel()
	ctx := context.Background()
	n := newNode(t, k3s.ProfileCurrent, true)
	st := n.Observe(ctx, "settle", "", 0)
	raw, err := n.RawSecret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("k8s:enc:aescbc:v1:aescbckey:")) {
		t.Fatalf("stored secret is not aescbc-encrypted: %q", raw[:min(len(raw), 40)])
	}
	n.Stop()
	s, info := storeSecret(t, n)
	if info.Encrypted == nil || info.Encrypted.Provider != "aescbc" {
		t.Errorf("datastore did not report the envelope: %+v", info.Encrypted)
	}
	if got := leafFP(t, s); got != st.DynamicCertSHA256 {
		t.Errorf("decrypted secret %s differs from dynamic-cert.json %s", got[:12], st.DynamicCertSHA256[:12])
	}
}

func near(a, b time.Time, tol time.Duration) bool {
	d := a.Sub(b)
	return d < tol && d > -tol
}

// Issue 6: what forecast predicts before the first step of scenario 2 is
// what the lab then does: the files renew at the restart, the listener
// does not (v1.18), and the node locks out at the listener's expiry.
func TestForecastMatchesLab(t *testing.T) {
	requireLab(t)
	t.Parallel()
	ctx := context.Background()
	n := newNode(t, k3s.ProfileV118, false)
	n.Observe(ctx, "settle", "", 0)
	o := n.CheckOptions()
	r, inv, err := check.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	from := o.At
	restart := from.Add(361 * 24 * time.Hour)
	f := forecast.Predict(inv, r.Node, k3s.ProfileV118, from, from.Add(500*24*time.Hour), []time.Time{restart})
	if f.LockOut == nil {
		t.Fatal("forecast predicts no lock-out on v1.18")
	}
	admin := n.DataDir() + "/server/tls/client-admin.crt"
	predAdmin, ok := forecast.ValidityAt(f, admin, restart.Add(time.Hour))
	if !ok {
		t.Fatalf("forecast has no %s", admin)
	}
	t.Logf("predicted: client-admin after restart valid until %s; lock-out %s", predAdmin.NotAfter, f.LockOut.At)

	if err := n.Advance(ctx, 361); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	rs := n.Observe(ctx, "restart", "", 361)
	assertWorks(t, rs)
	// Tolerance: the test itself takes minutes of real time, which the
	// virtual frame carries along.
	tol := 15 * time.Minute
	if got := rs.FilesNotAfter["client-admin"]; !near(got, predAdmin.NotAfter, tol) {
		t.Errorf("client-admin renewed until %s, forecast said %s", got, predAdmin.NotAfter)
	}
	if rs.ServedNotAfter == nil || !near(*rs.ServedNotAfter, f.LockOut.At, tol) {
		t.Errorf("listener expires %v, forecast lock-out %s", d(rs.ServedNotAfter), f.LockOut.At)
	}
	if err := n.Advance(ctx, 62); err != nil {
		t.Fatal(err)
	}
	past := n.Observe(ctx, "past-old-expiry", "", 423)
	if past.KubectlOK || !f.LockOut.At.Before(past.VirtualDate) {
		t.Errorf("lock-out: kubectl ok=%v at %s, forecast %s", past.KubectlOK, past.VirtualDate, f.LockOut.At)
	}
}

// Issue 7: /metrics from a lab node after scenario 1's restart carries
// the critical K3C101 finding, and the manifests pass a server-side dry
// run against the lab's kube-apiserver.
func TestExporterAndManifestsAgainstLab(t *testing.T) {
	requireLab(t)
	t.Parallel()
	var metrics string
	var dryRun string
	var dryErr error
	run(t, lab.RunOptions{Scenario: "scenario1", Profile: k3s.ProfileV118,
		Inspect: func(ctx context.Context, n *lab.Node, s lab.Step) {
			switch s.Name {
			case "install":
				dryRun, dryErr = deploytest.DryRun(ctx, n.Kubeconfig(), deploytest.Base)
			case "restart":
				e, err := exporter.New(exporter.Options{Scan: func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error) {
					o := n.CheckOptions()
					o.At = now.UTC().Truncate(time.Second)
					return check.Run(ctx, o)
				}})
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Scan(ctx); err != nil {
					t.Fatal(err)
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(e)
				srv := httptest.NewServer(e.Handler(reg))
				defer srv.Close()
				resp, err := http.Get(srv.URL + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				metrics = string(b)
			}
		}})
	if dryErr != nil {
		t.Errorf("server-side dry run of %s: %v", deploytest.Base, dryErr)
	}
	for _, kind := range []string{"daemonset.apps/", "role.rbac.authorization.k8s.io/", "rolebinding.rbac.authorization.k8s.io/", "serviceaccount/", "service/"} {
		if !strings.Contains(dryRun, kind) {
			t.Errorf("dry run did not accept a %s object:\n%s", kind, dryRun)
		}
	}
	found := false
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "k3scert_finding_active{") && strings.Contains(line, `code="K3C101"`) && strings.Contains(line, `severity="critical"`) {
			found = true
			t.Logf("metric: %s", line)
		}
	}
	if !found {
		t.Errorf("/metrics after scenario 1's restart has no critical K3C101 series")
	}
	if strings.Contains(metrics, "PRIVATE KEY") {
		t.Errorf("/metrics carries private key material")
	}
	_ = os.Getenv
}
