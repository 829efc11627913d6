package checktest

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
)

// ServingPEM signs a serving certificate for 127.0.0.1 with the CA.
func ServingPEM(t testing.TB, ca *x509.Certificate, caKey crypto.Signer, nb, na time.Time) ([]byte, []byte) {
	t.Helper()
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := pki.SignLeaf(pki.LeafRequest{CN: "k3s", Orgs: []string{"k3s"}, DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: nb, NotAfter: na}, key.Public(), ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pki.EncodeCerts(c, ca), kb
}

// ServerCA reads server-ca.crt and .key from a server/tls dir.
func ServerCA(t testing.TB, dir string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	cb, err := os.ReadFile(filepath.Join(dir, "server-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, "server-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCerts(cb)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := pki.ParseKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0], key
}

// ListenerPair reads the chain and key of a dynamic-cert.json.
func ListenerPair(t testing.TB, path string) ([]byte, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s k3sgen.ListenerSecret
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s.Data["tls.crt"], s.Data["tls.key"]
}
