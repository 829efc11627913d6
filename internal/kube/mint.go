// Package kube reaches the Kubernetes API of a K3s server node even when
// its leaf certificates have expired: it mints an ephemeral admin client
// certificate from the node's client CA (key only in memory) and verifies
// the served chain against the node's server CA — at a time inside the
// served certificate's validity when that certificate has expired, which
// it reports. It never disables verification.
//
// It does not read the clock (now is a parameter) and must not import
// internal/datastore, internal/check or internal/source.
package kube

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
)

// AdminValidity is how long a minted admin certificate is valid.
const AdminValidity = time.Hour

// MintAdmin signs an ephemeral client certificate for CN system:admin,
// O system:masters with the client CA, valid from now-5m to now+validity
// (AdminValidity when 0). The private key exists only in the returned
// value.
func MintAdmin(ca *x509.Certificate, caKey any, now time.Time, validity time.Duration) (tls.Certificate, error) {
	if ca == nil || caKey == nil {
		return tls.Certificate{}, errors.New("mint admin certificate: client CA certificate and key are required")
	}
	if validity <= 0 {
		validity = AdminValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: k3s.AdminCN, Organization: []string{k3s.AdminOrg}},
		NotBefore:    now.Add(-5 * time.Minute).UTC(),
		NotAfter:     now.Add(validity).UTC(),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
