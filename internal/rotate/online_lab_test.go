package rotate_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/rotate"
	corev1 "k8s.io/api/core/v1"
)

// On a release line without the regenerate trigger (v1.19.1: dynamiclistener
// v0.2.x, the secret wins at start) and a datastore that is not writable
// with K3s stopped, rotate renews the secret through the real
// kube-apiserver while the node runs, the running listener adopts it, and
// after the restart both copies and the served certificate are the
// renewed one. The lab's kine SQLite stands in for that datastore: the
// plan is made as for embedded etcd (NoOfflineSecret) and the executor
// gets no offline datastore access.
func TestOnlineListenerRenewalOnRunningNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real kine and kube-apiserver; skipped with -short")
	}
	if _, err := lab.FindBins(); err != nil {
		if os.Getenv("K3SCERT_LAB_REQUIRED") == "1" {
			t.Fatal(err)
		}
		t.Skipf("LAB TEST NOT RUN: %v", err)
	}
	row, err := k3s.ProfileByName("v1.19.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := lab.New(lab.Options{Root: t.TempDir(), Profile: row, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// 200 days later: the listener has 165 days left, outside the
	// 90-day window in which the listener would renew itself.
	if err := n.Advance(ctx, 200); err != nil {
		t.Fatal(err)
	}
	served := func() []byte {
		t.Helper()
		c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Ports().Supervisor)), &tls.Config{RootCAs: serverCAs(t, n.DataDir()), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Raw
	}
	o := n.CheckOptions()
	in, err := rotate.GatherNode(ctx, rotate.GatherOptions{Check: o, Method: rotate.MethodRenew, Service: "lab k3s", Datastore: "embedded etcd (stand-in: lab kine)", Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	in.NoOfflineSecret = true
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	if p.Listener != rotate.ListenerOnline {
		t.Fatalf("listener %q, want online", p.Listener)
	}
	before, _, err := n.ReadSecret(ctx)
	if err != nil || before == nil {
		t.Fatalf("secret before: %v", err)
	}
	v := rotate.Verifier{Check: o, Now: time.Now, Timeout: 60 * time.Second}
	e := &rotate.Executor{Plan: p, Service: &lab.Service{N: n}, Now: time.Now, Verify: v.Verify}
	if err := e.Apply(ctx); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	after, _, err := n.ReadSecret(ctx)
	if err != nil || after == nil {
		t.Fatalf("secret after: %v", err)
	}
	js := readJSON(t, n.DataDir())
	if string(after.Data[corev1.TLSCertKey]) != string(js.Data[corev1.TLSCertKey]) {
		t.Fatal("the secret and dynamic-cert.json differ after the rotation")
	}
	oldLeaf := firstCert(t, before.Data[corev1.TLSCertKey])
	newLeaf := firstCert(t, after.Data[corev1.TLSCertKey])
	if !newLeaf.NotAfter.After(oldLeaf.NotAfter.AddDate(0, 0, 150)) {
		t.Errorf("listener not renewed: %s -> %s", oldLeaf.NotAfter, newLeaf.NotAfter)
	}
	if string(served()) != string(newLeaf.Raw) {
		t.Error("the listener does not serve the renewed certificate")
	}
	if !mapsEqual(cnAnnotations(after.Annotations), cnAnnotations(rotate.ListenerAnnotations(nil, newLeaf, true))) {
		t.Errorf("annotations %v", cnAnnotations(after.Annotations))
	}
	if !pki.KeyMatches(newLeaf, mustKey(t, after.Data[corev1.TLSPrivateKeyKey])) {
		t.Error("renewed listener key does not match")
	}
}

func serverCAs(t *testing.T, dataDir string) *x509.CertPool {
	t.Helper()
	certs, _ := loadPair(t, dataDir+"/server/tls/server-ca.crt", dataDir+"/server/tls/server-ca.key")
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func mustKey(t *testing.T, b []byte) crypto.Signer {
	t.Helper()
	k, _, err := pki.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
