package k3sgen

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// SelfSignedServing writes the pair kube-controller-manager or
// kube-scheduler makes for itself in --cert-dir when it is missing, as
// client-go's certutil.GenerateSelfSignedCertKeyWithFixtures does: a
// "localhost-ca@<unix>" CA and a "localhost@<unix>" serving leaf for
// localhost and 127.0.0.1, both valid one year, RSA 2048; the .crt holds
// leaf + CA. An existing pair is kept however old: nobody renews it
// (rancher/rancher#41125). It reports whether it wrote a new pair.
func SelfSignedServing(certPath, keyPath string, now time.Time) (bool, error) {
	if _, err := os.Stat(certPath); err == nil {
		if _, err := os.Stat(keyPath); err == nil {
			return false, nil
		}
	}
	caKey, err := pki.NewRSAKey()
	if err != nil {
		return false, err
	}
	nb := now.Add(-time.Hour)
	na := now.Add(pki.Days(k3s.SelfSignedServingValidityDays))
	ca, err := pki.NewCA(fmt.Sprintf("localhost-ca@%d", now.Unix()), caKey, nb, na)
	if err != nil {
		return false, err
	}
	key, err := pki.NewRSAKey()
	if err != nil {
		return false, err
	}
	leaf, err := pki.SignLeaf(pki.LeafRequest{CN: fmt.Sprintf("localhost@%d", now.Unix()), DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: nb, NotAfter: na},
		key.Public(), ca, caKey)
	if err != nil {
		return false, err
	}
	if err := writeKey(keyPath, key); err != nil {
		return false, err
	}
	return true, writeFile(certPath, pki.EncodeCerts(leaf, ca), 0o644)
}
