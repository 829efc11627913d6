package lab_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
)

// TestAgentFetch: a lab agent fetches its certificates through the
// supervisor's /v1-k3s endpoints as a K3s agent does — token auth, CSR,
// keys kept across restarts, files 0600 — and a wrong token is refused.
func TestAgentFetch(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n, err := lab.New(lab.Options{Root: filepath.Join(dir, "server"), Profile: k3s.ProfileCurrent, NodeName: "server-1", Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	bad, err := lab.NewAgent(lab.AgentOptions{Root: filepath.Join(dir, "bad"), Name: "bad", Server: n, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		bad.Stop()
		t.Fatalf("an agent with a wrong token started: %v", err)
	}
	a, err := lab.NewAgent(lab.AgentOptions{Root: filepath.Join(dir, "agent"), Name: "agent-1", Server: n, Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p := func(f string) string { return filepath.Join(a.DataDir(), "agent", f) }
	files := []string{"client-ca.crt", "server-ca.crt", "serving-kubelet.crt", "serving-kubelet.key", "client-kubelet.crt", "client-kubelet.key",
		"client-kube-proxy.crt", "client-kube-proxy.key", "client-k3s-controller.crt", "client-k3s-controller.key",
		"kubelet.kubeconfig", "kubeproxy.kubeconfig", "k3scontroller.kubeconfig"}
	for _, f := range files {
		fi, err := os.Stat(p(f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600 (config.go writes 0600)", f, fi.Mode().Perm())
		}
	}
	leaf := func(f string) *x509.Certificate {
		b, _ := os.ReadFile(p(f))
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", f)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ck := leaf("client-kubelet.crt")
	if ck.Subject.CommonName != "system:node:agent-1" || len(ck.Subject.Organization) != 1 || ck.Subject.Organization[0] != "system:nodes" {
		t.Errorf("client-kubelet subject %v", ck.Subject)
	}
	sk := leaf("serving-kubelet.crt")
	if sk.Subject.CommonName != "agent-1" || !contains(sk.DNSNames, "agent-1") || !contains(sk.DNSNames, "localhost") {
		t.Errorf("serving-kubelet subject %v SANs %v", sk.Subject, sk.DNSNames)
	}
	if c := a.ServedKubelet(); c == nil || !bytes.Equal(c.Raw, sk.Raw) {
		t.Errorf("the kubelet stand-in does not serve serving-kubelet.crt")
	}
	if err := a.APICall(ctx); err != nil {
		t.Errorf("client-kubelet not accepted by the API: %v", err)
	}
	keyBefore, _ := os.ReadFile(p("client-kubelet.key"))
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	keyAfter, _ := os.ReadFile(p("client-kubelet.key"))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Errorf("the agent's key changed across a restart (CSR agents keep it)")
	}
	if bytes.Equal(leaf("client-kubelet.crt").Raw, ck.Raw) {
		t.Errorf("the restart did not fetch a new client-kubelet certificate")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestAgentFetchLegacy: on a release line before CSR signing (v1.18) the
// agent GETs its certificates and receives the server's shared key with
// each, as those agents did (handlers.go signAndSend, legacy branch).
func TestAgentFetchLegacy(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	n, err := lab.New(lab.Options{Root: filepath.Join(dir, "server"), Profile: k3s.ProfileV118, NodeName: "server-1", Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := lab.NewAgent(lab.AgentOptions{Root: filepath.Join(dir, "agent"), Name: "agent-1", Profile: k3s.ProfileV118, Server: n, Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"client-kubelet.key", "serving-kubelet.key", "client-kube-proxy.key", "client-k3s-controller.key"} {
		got, err := os.ReadFile(filepath.Join(a.DataDir(), "agent", f))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(n.DataDir(), "server", "tls", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("agent/%s is not the server's shared key", f)
		}
	}
	if err := a.APICall(ctx); err != nil {
		t.Errorf("client-kubelet not accepted by the API: %v", err)
	}
}
