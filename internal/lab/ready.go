package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// waitReady polls the apiserver's /readyz until it answers "ok". It must
// work in every state a lab node can be in, including served certificates
// that have expired (after Advance) and client certificates that have, so it
// does what internal/kube does for operators: it mints a short-lived admin
// client certificate from client-ca (key only in memory) and verifies the
// apiserver's chain against server-ca at a time inside the served
// certificate's validity. TLS verification is never switched off.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.APIServerPort))
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if ok, _ := n.apiserver.exited(); ok {
			return fmt.Errorf("kube-apiserver exited; log %s:\n%s", n.apiserver.log, n.apiserver.tail(2000))
		}
		// A new client each time: the served certificate (and so the
		// verification time) is learned per attempt.
		client, err := n.adminClient(addr)
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
		resp, err := client.Do(req)
		client.CloseIdleConnections()
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.TrimSpace(string(b)) == "ok" {
				return nil
			}
			last = fmt.Sprintf("HTTP %d", resp.StatusCode)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("apiserver not ready within %s: %s", timeout, last)
}

func (n *Node) adminClient(addr string) (*http.Client, error) {
	readOne := func(name string) (*x509.Certificate, []byte, error) {
		b, err := os.ReadFile(n.tls(name))
		if err != nil {
			return nil, nil, err
		}
		cs, err := pki.ParseCerts(b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		return cs[0], b, nil
	}
	clientCA, _, err := readOne("client-ca.crt")
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(n.tls("client-ca.key"))
	if err != nil {
		return nil, err
	}
	caKey, _, err := pki.ParseKey(kb)
	if err != nil {
		return nil, err
	}
	serverCA, _, err := readOne("server-ca.crt")
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	leaf, err := pki.SignLeaf(pki.LeafRequest{CN: "system:admin", Orgs: []string{"system:masters"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(time.Hour)},
		key.Public(), clientCA, caKey)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCA)
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}}}
	// Verify at a time inside the served certificate's validity when it
	// has expired or is not valid yet: learn its validity first.
	inv := &source.Inventory{}
	source.Endpoints{Targets: []source.EndpointTarget{{Address: addr}}, Roots: []*x509.Certificate{serverCA}, At: now, Timeout: 2 * time.Second}.Read(context.Background(), inv)
	for _, c := range inv.Certs {
		if c.Index == 0 && (now.After(c.Cert.NotAfter) || now.Before(c.Cert.NotBefore)) {
			at := c.Cert.NotBefore.Add(c.Cert.NotAfter.Sub(c.Cert.NotBefore) / 2)
			cfg.Time = func() time.Time { return at }
		}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}
