package pki_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
)

// seedNode generates a node (every key and certificate kind K3s writes) and
// returns the contents of its files with the given suffix.
func seedNode(f *testing.F, suffix string) [][]byte {
	f.Helper()
	dir := f.TempDir()
	// service.key exists already, as an EC key, so Start does not make an
	// RSA key: RSA key generation under the fuzzer's coverage
	// instrumentation takes seconds to minutes, and every fuzz worker
	// runs this prologue. (FuzzParseKey has an RSA seed in testdata.)
	if err := preKey(filepath.Join(dir, "server", "tls", "service.key")); err != nil {
		f.Fatal(err)
	}
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dir, Profile: k3s.ProfileV118, Listener: true},
		time.Date(2020, 7, 26, 10, 0, 0, 0, time.UTC)); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(p, suffix) {
			return err
		}
		b, err := os.ReadFile(p)
		out = append(out, b)
		return err
	})
	if err != nil || len(out) == 0 {
		f.Fatalf("seeds: %v (%d)", err, len(out))
	}
	return out
}

// FuzzParseCerts: ParseCerts must never panic, and never claim success
// without a certificate.
func FuzzParseCerts(f *testing.F) {
	for _, b := range seedNode(f, ".crt") {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{"", "\n", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"} {
		f.Add([]byte(s))
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nA!AA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nAAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := pki.ParseCerts(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		// Oracle: encoding/pem's own walk. Without an error, ParseCerts
		// returns exactly the certificates the standard library finds;
		// with one, a prefix of them. Never a certificate from after a
		// block the standard library skipped.
		var std []*x509.Certificate
		stdOK := true
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, perr := x509.ParseCertificate(b.Bytes)
			if perr != nil {
				stdOK = false
				break
			}
			std = append(std, c)
		}
		if err == nil && (!stdOK || len(std) != len(certs)) {
			t.Fatalf("no error, %d certificates; encoding/pem finds %d (all parse: %v)", len(certs), len(std), stdOK)
		}
		if err == nil && bytes.Count(data, []byte("-----BEGIN ")) > 0 {
			// Every armour at a line start decoded, so pem.Decode saw
			// as many blocks as there are such starts.
			n := 0
			for rest := data; ; n++ {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
			}
			if starts := lineStarts(data, "-----BEGIN "); n != starts {
				t.Fatalf("no error, but %d armour starts and encoding/pem decodes %d blocks", starts, n)
			}
		}
		for i, c := range certs {
			if i >= len(std) || !c.Equal(std[i]) {
				t.Fatalf("certificate %d is not encoding/pem's certificate %d", i, i)
			}
		}
		for _, c := range certs {
			if c == nil {
				t.Fatal("nil certificate")
			}
			_ = pki.Fingerprint(c)
			_ = pki.SANs(c)
			_ = pki.Usages(c)
			_ = pki.StatusAt(c, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), 90)
		}
	})
}

// FuzzParseKey: ParseKey must never panic, and a key it returns is usable.
func FuzzParseKey(f *testing.F) {
	for _, b := range seedNode(f, ".key") {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{"", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, n, err := pki.ParseKey(data)
		if err != nil {
			if key != nil {
				t.Fatal("key with error")
			}
			return
		}
		if key == nil || n < 1 {
			t.Fatalf("key %v, count %d", key, n)
		}
		_ = pki.PublicKeyAlgorithm(key)
		if _, err := pki.EncodeKey(key); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// preKey writes an ECDSA key to path.
func preKey(path string) error {
	k, err := pki.NewECKey()
	if err != nil {
		return err
	}
	b, err := pki.EncodeKey(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// lineStarts counts occurrences of marker at the start of data or a line.
func lineStarts(data []byte, marker string) int {
	n := 0
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], []byte(marker))
		if j < 0 {
			break
		}
		if at := i + j; at == 0 || data[at-1] == '\n' {
			n++
		}
		i += j + len(marker)
	}
	return n
}
