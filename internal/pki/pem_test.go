package pki_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/pki"
)

// twoCerts makes a leaf and its CA, both PEM-encoded.
func twoCerts(t *testing.T) (leafPEM, caPEM []byte, ca *x509.Certificate) {
	t.Helper()
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	caKey, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	ca, err = pki.NewCA("test-ca", caKey, at, at.AddDate(10, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.SignLeaf(pki.LeafRequest{CN: "leaf", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: at, NotAfter: at.AddDate(1, 0, 0)},
		leafKey.Public(), ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pki.EncodeCerts(leaf), pki.EncodeCerts(ca), ca
}

// A damaged leaf block in front of its CA: encoding/pem skips the leaf and
// hands back the CA as if it were the first certificate. ParseCerts must
// say the block is damaged and return nothing after it.
func TestParseCertsBadBase64LeafBeforeCA(t *testing.T) {
	leaf, caPEM, ca := twoCerts(t)
	lines := bytes.Split(leaf, []byte("\n"))
	lines[2] = append([]byte("!!"), lines[2][2:]...) // corrupt the body's second line
	bad := append(bytes.Join(lines, []byte("\n")), caPEM...)

	certs, err := pki.ParseCerts(bad)
	if !errors.Is(err, pki.ErrBadPEM) {
		t.Fatalf("err = %v, want ErrBadPEM", err)
	}
	if len(certs) != 0 {
		t.Fatalf("got %d certificates (first %q); the CA behind a damaged leaf must not stand in for it", len(certs), certs[0].Subject.CommonName)
	}
	// The same CA alone still parses: the detection is about position.
	got, err := pki.ParseCerts(caPEM)
	if err != nil || len(got) != 1 || !got[0].Equal(ca) {
		t.Fatalf("CA alone: %v, %d", err, len(got))
	}
}

func TestParseCertsDamage(t *testing.T) {
	leaf, caPEM, _ := twoCerts(t)
	bundle := append(append([]byte{}, leaf...), caPEM...)
	tests := []struct {
		name    string
		data    []byte
		n       int  // certificates returned
		bad     bool // ErrBadPEM
		wantErr bool
	}{
		{"bundle", bundle, 2, false, false},
		{"truncated second block", bundle[:len(bundle)-30], 1, true, true},
		{"missing END line", bytes.Replace(bundle, []byte("-----END CERTIFICATE-----\n-----BEGIN"), []byte("-----BEGIN"), 1), 0, true, true},
		{"bad base64 in CA", append(append([]byte{}, leaf...), bytes.Replace(caPEM, []byte("\nM"), []byte("\n*"), 1)...), 1, true, true},
		{"text around blocks", append(append([]byte("subject=CN = leaf\n"), leaf...), []byte("trailing words\n")...), 1, false, false},
		{"BEGIN inside a line is not armour", append([]byte("x -----BEGIN CERTIFICATE-----\n"), leaf...), 1, false, false},
		{"empty", nil, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := pki.ParseCerts(tt.data)
			if (err != nil) != tt.wantErr || errors.Is(err, pki.ErrBadPEM) != tt.bad {
				t.Fatalf("err = %v, wantErr %v, bad PEM %v", err, tt.wantErr, tt.bad)
			}
			if len(certs) != tt.n {
				t.Fatalf("%d certificates, want %d", len(certs), tt.n)
			}
		})
	}
}

// A damaged first key in service.key must not let the second pass for the
// current one.
func TestParseKeyBadFirstBlock(t *testing.T) {
	k1, _ := pki.NewECKey()
	k2, _ := pki.NewECKey()
	b1, _ := pki.EncodeKey(k1)
	b2, _ := pki.EncodeKey(k2)
	b1 = bytes.Replace(b1, []byte("-----\n"), []byte("-----\n@"), 1)
	key, n, err := pki.ParseKey(append(b1, b2...))
	if !errors.Is(err, pki.ErrBadPEM) || key != nil || n != 2 {
		t.Fatalf("key %v, n %d, err %v", key, n, err)
	}
}
