package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"time"
)

// NewECKey returns a fresh ECDSA P-256 key, the kind K3s generates for every
// certificate (facts §1.1).
func NewECKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewRSAKey returns a fresh RSA 2048 key (K3s service.key).
func NewRSAKey() (crypto.Signer, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
}

// EncodeKey encodes a key the way K3s writes it: "EC PRIVATE KEY" for ECDSA,
// "RSA PRIVATE KEY" for RSA, PKCS#8 otherwise.
func EncodeKey(k crypto.Signer) ([]byte, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodeCerts concatenates certificates as PEM, in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// LeafRequest describes a leaf certificate to sign.
type LeafRequest struct {
	CN        string
	Orgs      []string
	DNSNames  []string
	IPs       []net.IP
	Usages    []x509.ExtKeyUsage
	NotBefore time.Time
	NotAfter  time.Time
}

// NewCA self-signs a CA the way K3s does (certutil.NewSelfSignedCACert):
// serial 0, no O, KeyEncipherment|DigitalSignature|CertSign.
func NewCA(cn string, key crypto.Signer, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(0),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return create(tmpl, tmpl, key.Public(), key)
}

// SignLeaf signs a leaf for pub with the CA (certutil.NewSignedCert):
// random serial, KeyEncipherment|DigitalSignature and the requested usages.
func SignLeaf(r LeafRequest, pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.CN, Organization: r.Orgs},
		DNSNames:     r.DNSNames,
		IPAddresses:  r.IPs,
		NotBefore:    r.NotBefore.UTC(),
		NotAfter:     r.NotAfter.UTC(),
		KeyUsage:     x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  r.Usages,
	}
	return create(tmpl, ca, pub, caKey)
}

// Renew reissues old for pub with a new serial and validity, keeping its
// subject, SANs and usages: the existing certificate is the template, as
// kubeadm renews. The CA must be the one that signed old.
func Renew(old *x509.Certificate, pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if old.IsCA {
		return nil, errors.New("refusing to renew a CA certificate")
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        old.Subject,
		DNSNames:       old.DNSNames,
		IPAddresses:    old.IPAddresses,
		EmailAddresses: old.EmailAddresses,
		URIs:           old.URIs,
		NotBefore:      notBefore.UTC(),
		NotAfter:       notAfter.UTC(),
		KeyUsage:       old.KeyUsage,
		ExtKeyUsage:    old.ExtKeyUsage,
	}
	return create(tmpl, ca, pub, caKey)
}

// Shift re-signs c with its validity moved by d (negative d moves it into
// the past), keeping subject, serial, key, SANs, usages and key IDs. issuer is
// c's CA (nil for a self-signed CA) and issuerKey the key that signs: the
// CA's key, or c's own key when issuer is nil. It is how the lab moves time
// without touching the clock: to every component, a certificate shifted back
// D days looks the same as the clock having moved forward D days.
func Shift(c *x509.Certificate, d time.Duration, issuer *x509.Certificate, issuerKey crypto.Signer) (*x509.Certificate, error) {
	tmpl := *c
	tmpl.NotBefore = c.NotBefore.Add(d).UTC()
	tmpl.NotAfter = c.NotAfter.Add(d).UTC()
	tmpl.Raw, tmpl.RawTBSCertificate, tmpl.Signature = nil, nil, nil
	tmpl.SignatureAlgorithm = x509.UnknownSignatureAlgorithm
	parent := issuer
	if parent == nil {
		parent = &tmpl
	}
	return create(&tmpl, parent, c.PublicKey, issuerKey)
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign %q: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func randSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, big.NewInt(math.MaxInt64))
}
