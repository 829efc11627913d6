// Package pki treats certificates as values: it parses every PEM block,
// matches keys, judges validity at a given time, verifies a leaf against its
// CA, and signs or re-signs certificates (renewal, lab time travel).
//
// It must not read files or the clock: callers pass bytes and times.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// ErrBadPEM is matched (errors.Is) by the error of ParseCerts and ParseKey
// when a block has PEM armour ("-----BEGIN ...") that does not decode: bad
// base64, a missing or mismatched END line, a truncated file. encoding/pem
// skips such a block silently and returns the next one, so the block after
// a damaged leaf (its CA) would be taken for the leaf.
var ErrBadPEM = errors.New("bad PEM encoding")

// pemBlock is one PEM block of a file in order; Block is nil when the
// armour at that position does not decode.
type pemBlock struct {
	Block *pem.Block
}

var pemBegin = []byte("-----BEGIN ")

// pemBlocks returns every block of data in order, damaged ones included.
// A block starts where encoding/pem would look for one (at the start of
// data or of a line); each is decoded on its own, up to the next start, so
// a damaged block is seen where it is instead of being skipped.
func pemBlocks(data []byte) []pemBlock {
	var starts []int
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], pemBegin)
		if j < 0 {
			break
		}
		at := i + j
		if at == 0 || data[at-1] == '\n' {
			starts = append(starts, at)
		}
		i = at + len(pemBegin)
	}
	out := make([]pemBlock, 0, len(starts))
	for k, at := range starts {
		end := len(data)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		b, _ := pem.Decode(data[at:end])
		out = append(out, pemBlock{Block: b})
	}
	return out
}

// ParseCerts returns every CERTIFICATE block of data, in order. Other block
// types (keys appended to an agent response, for example) are skipped. An
// error is returned when there is no certificate at all or a block does not
// decode (ErrBadPEM) or parse; the certificates before it are returned with
// it, never the ones after it (they would take the damaged one's place).
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	blocks := pemBlocks(data)
	for i, pb := range blocks {
		n := i + 1
		if pb.Block == nil {
			return out, fmt.Errorf("PEM block %d of %d: %w (damaged base64 or armour, or a truncated file)", n, len(blocks), ErrBadPEM)
		}
		if pb.Block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(pb.Block.Bytes)
		if err != nil {
			return out, fmt.Errorf("PEM block %d: %w", n, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		if len(blocks) == 0 {
			if len(bytes.TrimSpace(data)) == 0 {
				return nil, errors.New("empty file")
			}
			return nil, errors.New("no PEM data")
		}
		return nil, errors.New("no CERTIFICATE block")
	}
	return out, nil
}

// ParseKey returns the first private key in data (EC PRIVATE KEY,
// RSA PRIVATE KEY or PKCS#8 PRIVATE KEY) and how many keys the file holds
// (service.key may hold several: the first is current).
func ParseKey(data []byte) (crypto.Signer, int, error) {
	var first crypto.Signer
	var firstErr error
	count := 0
	for i, pb := range pemBlocks(data) {
		b := pb.Block
		if b == nil {
			// A damaged block may be the current key: never let the
			// next one pass for it.
			count++
			if first == nil && firstErr == nil {
				firstErr = fmt.Errorf("PEM block %d: %w (damaged base64 or armour, or a truncated file)", i+1, ErrBadPEM)
			}
			continue
		}
		var k any
		var err error
		switch b.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		default:
			continue
		}
		count++
		if first == nil && firstErr == nil {
			if err != nil {
				firstErr = fmt.Errorf("%s block: %w", b.Type, err)
				continue
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				firstErr = fmt.Errorf("%s block: unsupported key type %T", b.Type, k)
				continue
			}
			first = s
		}
	}
	if firstErr != nil {
		return nil, count, firstErr
	}
	if first == nil {
		return nil, 0, errors.New("no private key block")
	}
	return first, count, nil
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}

// Fingerprint is the lowercase hex SHA-256 of the certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}

// Status is how `k3s certificate check` classifies a certificate.
type Status string

// The statuses, as K3s spells them.
const (
	OK          Status = "OK"
	Warning     Status = "WARNING"
	Expired     Status = "EXPIRED"
	NotYetValid Status = "NOT YET VALID"
)

// StatusAt classifies c at time at: NOT YET VALID before NotBefore, EXPIRED
// after NotAfter, WARNING when at+warnDays is past NotAfter, else OK. This is
// K3s's own rule (pkg/util/cert.go GetCertStatus).
func StatusAt(c *x509.Certificate, at time.Time, warnDays int) Status {
	switch {
	case at.Before(c.NotBefore):
		return NotYetValid
	case at.After(c.NotAfter):
		return Expired
	case at.Add(Days(warnDays)).After(c.NotAfter):
		return Warning
	}
	return OK
}

// Days converts a number of days to a duration.
func Days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// Usages names the certificate's usages as `k3s certificate check` does.
func Usages(c *x509.Certificate) []string {
	var u []string
	if c.KeyUsage&x509.KeyUsageCertSign != 0 {
		u = append(u, "CertSign")
	}
	for _, e := range c.ExtKeyUsage {
		switch e {
		case x509.ExtKeyUsageServerAuth:
			u = append(u, "ServerAuth")
		case x509.ExtKeyUsageClientAuth:
			u = append(u, "ClientAuth")
		}
	}
	if len(u) == 0 {
		u = []string{"Unknown"}
	}
	return u
}

// SANs lists the DNS names and IP addresses of c.
func SANs(c *x509.Certificate) []string {
	out := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// SignedBy reports whether leaf's signature verifies with ca's public key.
// It ignores time on purpose: whether the chain is intact and whether it is
// valid now are different questions, answered separately.
func SignedBy(leaf, ca *x509.Certificate) error {
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return err
	}
	return nil
}

// VerifyAt verifies leaf against roots (plus intermediates) at time at for
// the given usage, the way a TLS client would.
func VerifyAt(leaf *x509.Certificate, roots, inter []*x509.Certificate, at time.Time, usage x509.ExtKeyUsage) error {
	rp := x509.NewCertPool()
	for _, r := range roots {
		rp.AddCert(r)
	}
	ip := x509.NewCertPool()
	for _, i := range inter {
		ip.AddCert(i)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// PublicKeyAlgorithm names the key type of a signer for messages.
func PublicKeyAlgorithm(k crypto.Signer) string {
	switch p := k.Public().(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + p.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", p.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}
