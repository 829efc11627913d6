package rotate_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/rotate"
	corev1 "k8s.io/api/core/v1"
)

func clusterPlan(t *testing.T, n fnode, mode string, at time.Time) (rotate.Plan, error) {
	t.Helper()
	in, err := rotate.GatherNode(context.Background(), rotate.GatherOptions{Check: n.checkOptions(k3s.ProfileCurrent, at), Method: rotate.MethodRenew,
		Service: "fake k3s", Datastore: rotate.DescribeDatastore(n.dataDir), Root: n.root, ClusterListener: mode})
	if err != nil {
		t.Fatal(err)
	}
	return rotate.NewPlan(in)
}

func storedSecret(t *testing.T, n fnode) *corev1.Secret {
	t.Helper()
	st, err := n.secrets()(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The first server of a cluster renews the shared secret (renew); a later
// server holding its old, expired dynamic-cert.json adopts exactly that
// renewed certificate without re-signing the secret (adopt), and verify
// proves the listener serves the secret's certificate — and fails when it
// serves another one, even a valid one.
func TestClusterListenerRenewThenAdopt(t *testing.T) {
	n := newFNode(t, k3s.ProfileCurrent, nil)
	n.seedSQLite(t, nil)
	oldJSON := mustRead(t, n.path("server/tls/dynamic-cert.json"))
	at := install.AddDate(0, 0, 400) // every leaf and the listener expired
	clock := func() time.Time { return at }

	// Adopt before anyone renewed: refused in the preflight, nothing stopped.
	p, err := clusterPlan(t, n, rotate.ClusterAdopt, at)
	if err != nil {
		t.Fatal(err)
	}
	if p.Listener != rotate.ListenerAdopt || p.ClusterListener != rotate.ClusterAdopt {
		t.Fatalf("adopt plan: listener %q cluster %q", p.Listener, p.ClusterListener)
	}
	var calls []string
	e := &rotate.Executor{Plan: p, Service: fakeService{calls: &calls}, Secrets: n.secrets(), Now: clock}
	err = e.Apply(context.Background())
	if err == nil || !strings.Contains(err.Error(), "was not renewed") || len(calls) != 0 {
		t.Fatalf("adopt of an expired secret: err %v, service calls %v", err, calls)
	}

	// Server 1: renew.
	p, err = clusterPlan(t, n, rotate.ClusterRenew, at)
	if err != nil {
		t.Fatal(err)
	}
	if p.Listener != rotate.ListenerBoth {
		t.Fatalf("renew plan listener %q", p.Listener)
	}
	e = &rotate.Executor{Plan: p, Service: fakeService{calls: &calls}, Secrets: n.secrets(), Now: clock}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	renewed := storedSecret(t, n)
	rc, _ := pki.ParseCerts(renewed.Data[corev1.TLSCertKey])
	if !rc[0].NotAfter.After(at.AddDate(0, 0, 30)) {
		t.Fatalf("secret not renewed: until %s", rc[0].NotAfter)
	}

	// Server 2 (same shared datastore and CA) still has its old copy.
	if err := os.WriteFile(n.path("server/tls/dynamic-cert.json"), oldJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = clusterPlan(t, n, rotate.ClusterAdopt, at)
	if err != nil {
		t.Fatal(err)
	}
	// The start is k3sgen's K3s start (the agent fetches fresh certificates).
	e = &rotate.Executor{Plan: p, Service: fakeService{calls: &calls, gen: &n.gen, clock: clock}, Secrets: n.secrets(), Now: clock}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := storedSecret(t, n)
	if !bytes.Equal(after.Data[corev1.TLSCertKey], renewed.Data[corev1.TLSCertKey]) || after.ResourceVersion != renewed.ResourceVersion {
		t.Error("adopt wrote the shared secret")
	}
	js := readJSON(t, n.dataDir)
	if !bytes.Equal(js.Data[corev1.TLSCertKey], renewed.Data[corev1.TLSCertKey]) || !bytes.Equal(js.Data[corev1.TLSPrivateKeyKey], renewed.Data[corev1.TLSPrivateKeyKey]) {
		t.Fatal("dynamic-cert.json is not the shared secret's certificate and key")
	}

	// Verify: the listener serves the secret's certificate (chain checked
	// against server-ca), and another valid certificate is refused.
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "l.crt"), filepath.Join(dir, "l.key")
	os.WriteFile(crt, js.Data[corev1.TLSCertKey], 0o600)
	os.WriteFile(key, js.Data[corev1.TLSPrivateKeyKey], 0o600)
	verify := func(addr string) error {
		_, port, _ := net.SplitHostPort(addr)
		pn, _ := strconv.Atoi(port)
		ports := k3s.DefaultPorts(k3s.K3s)
		ports.Supervisor = pn
		o := n.checkOptions(k3s.ProfileCurrent, at)
		o.NoEndpoint, o.Endpoints, o.Ports, o.Timeout = false, []string{addr}, &ports, 5*time.Second
		vp := p
		vp.Kubeconfig = ""
		vp.Leaves = nil
		v := rotate.Verifier{Check: o, Now: stepClock(at), Timeout: time.Minute, Secret: func(ctx context.Context) (*corev1.Secret, error) { return storedSecret(t, n), nil }}
		return v.Verify(context.Background(), vp)
	}
	if err := verify(serveTLS(t, crt, key)); err != nil {
		t.Fatalf("verify of the adopted listener: %v", err)
	}
	other := serveTLS(t, n.path("server/tls/serving-kube-apiserver.crt"), n.path("server/tls/serving-kube-apiserver.key"))
	if err := verify(other); err == nil || !strings.Contains(err.Error(), "other than the shared secret") {
		t.Fatalf("verify of a listener serving another certificate: %v", err)
	}
	if _, err := rotate.ServedLeaf(context.Background(), other, filepath.Join(t.TempDir(), "none.crt"), at); err == nil {
		t.Error("ServedLeaf without a CA file succeeded")
	}
}

// Without a datastore readable offline (embedded etcd stops with K3s):
// rows whose merge lets the renewed secret win at start adopt by a plain
// restart; older rows are refused with the reason.
func TestClusterAdoptWithoutOfflineSecret(t *testing.T) {
	for _, prof := range k3s.Profiles {
		in := rotate.Input{Node: nodeOf(t), Program: k3s.K3s, Profile: prof, Method: rotate.MethodRenew, Service: "fake", Datastore: "embedded etcd, which stops with K3s",
			Now: install, NoOfflineSecret: true, ClusterListener: rotate.ClusterAdopt, Present: map[string]bool{}}
		p, err := rotate.NewPlan(in)
		switch prof.ListenerMerge {
		case k3s.MergeV034, k3s.MergeV030to3:
			if err != nil || p.Listener != rotate.ListenerAdoptRestart {
				t.Errorf("%s: listener %q err %v, want adopt-restart", prof.Name, p.Listener, err)
			}
			if err == nil && !strings.Contains(p.Summary(), k3s.AdoptMergeEvidence) {
				t.Errorf("%s: the plan does not cite the merge it relies on", prof.Name)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "cannot adopt") {
				t.Errorf("%s: err %v, want a refusal", prof.Name, err)
			}
		}
	}
	if _, err := rotate.NewPlan(rotate.Input{Node: nodeOf(t), Program: k3s.K3s, Profile: k3s.ProfileCurrent, ClusterListener: "share"}); err == nil {
		t.Error("unknown cluster listener mode accepted")
	}
}

func nodeOf(t *testing.T) report.Node {
	return report.Node{DataDir: t.TempDir(), Program: "k3s", Role: "server"}
}

// A server with datastore-endpoint (config.yaml): an etcd-API endpoint over
// http:// (kine, or etcd without client TLS) keeps running while K3s is
// stopped, so the secret is written through it (renew) or read from it
// (adopt); https:// (client TLS k3scert does not read) and SQL DSNs are
// not reachable offline and fall back to the row's JSON/trigger/online
// path; the endpoint's credentials never reach the plan.
func TestExternalDatastorePlan(t *testing.T) {
	cases := []struct {
		endpoint, listener, adopt, describe string
		external                            bool
	}{
		{"http://127.0.0.1:1", rotate.ListenerBoth, rotate.ListenerAdopt, "external etcd-API datastore", true},
		{"https://etcd.example:2379", rotate.ListenerTrigger, rotate.ListenerAdoptRestart, "over TLS", false},
		{"mysql://admin:hunter2@tcp(db:3306)/k3s", rotate.ListenerTrigger, rotate.ListenerAdoptRestart, "external mysql datastore", false},
		{"postgres://admin:hunter2@db:5432/k3s", rotate.ListenerTrigger, rotate.ListenerAdoptRestart, "external postgres datastore", false},
	}
	for _, c := range cases {
		n := newFNode(t, k3s.ProfileCurrent, nil)
		if err := os.MkdirAll(filepath.Join(n.root, "etc/rancher/k3s"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.root, "etc/rancher/k3s/config.yaml"), []byte("datastore-endpoint: \""+c.endpoint+"\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{rotate.ClusterRenew, rotate.ClusterAdopt} {
			in, err := rotate.GatherNode(context.Background(), rotate.GatherOptions{Check: n.checkOptions(k3s.ProfileCurrent, install), Method: rotate.MethodRenew,
				Service: "fake k3s", Root: n.root, ClusterListener: mode})
			if err != nil {
				t.Fatal(err)
			}
			p, err := rotate.NewPlan(in)
			if err != nil {
				t.Fatalf("%s %s: %v", c.endpoint, mode, err)
			}
			want := c.listener
			if mode == rotate.ClusterAdopt {
				want = c.adopt
			}
			if p.Listener != want || p.ExternalDatastore != c.external || !strings.Contains(p.Datastore, c.describe) {
				t.Errorf("%s %s: listener %q external %v datastore %q; want %q %v %q", c.endpoint, mode, p.Listener, p.ExternalDatastore, p.Datastore, want, c.external, c.describe)
			}
			if strings.Contains(p.Summary(), "hunter2") || strings.Contains(p.Datastore, "admin") {
				t.Errorf("%s: the plan shows the endpoint's credentials", c.endpoint)
			}
		}
	}
}

// The first server of a cluster renews from the shared secret when it
// holds names this server's dynamic-cert.json lacks (another server's
// address, merged in by dynamiclistener): a later server adopting the
// renewed certificate still finds its own address in it.
func TestClusterRenewKeepsEveryServersNames(t *testing.T) {
	n := newFNode(t, k3s.ProfileCurrent, nil)
	at := install.AddDate(0, 0, 400)
	js := readJSON(t, n.dataDir)
	leaf, _ := pki.ParseCerts(js.Data[corev1.TLSCertKey])
	key, _, err := pki.ParseKey(js.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	caB, _ := os.ReadFile(n.path("server/tls/server-ca.crt"))
	cas, _ := pki.ParseCerts(caB)
	caKB, _ := os.ReadFile(n.path("server/tls/server-ca.key"))
	caKey, _, _ := pki.ParseKey(caKB)
	tmpl := *leaf[0]
	tmpl.IPAddresses = append(append([]net.IP(nil), tmpl.IPAddresses...), net.ParseIP("10.0.0.12"))
	wide, err := pki.Renew(&tmpl, key.Public(), cas[0], caKey, leaf[0].NotBefore, leaf[0].NotAfter)
	if err != nil {
		t.Fatal(err)
	}
	shared := js.DeepCopy()
	shared.Name, shared.Namespace = "k3s-serving", "kube-system"
	shared.Data[corev1.TLSCertKey] = pki.EncodeCerts(wide, cas[0])
	n.seedSQLite(t, shared)

	p, err := clusterPlan(t, n, rotate.ClusterRenew, at)
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	e := &rotate.Executor{Plan: p, Service: fakeService{calls: &calls}, Secrets: n.secrets(), Now: func() time.Time { return at }}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := storedSecret(t, n)
	c, _ := pki.ParseCerts(got.Data[corev1.TLSCertKey])
	if !strings.Contains(strings.Join(pki.SANs(c[0]), ","), "10.0.0.12") || !c[0].NotAfter.After(at) {
		t.Errorf("renewed shared certificate: names %v, until %s", pki.SANs(c[0]), c[0].NotAfter)
	}
	if !bytes.Equal(readJSON(t, n.dataDir).Data[corev1.TLSCertKey], got.Data[corev1.TLSCertKey]) {
		t.Error("dynamic-cert.json and the secret differ after the renewal")
	}
	if got.Annotations[rotate.ListenerAnnotationKey("10.0.0.12", false)] != "10.0.0.12" {
		t.Errorf("annotations %v", got.Annotations)
	}
}
