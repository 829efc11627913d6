package source_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// seedNode generates a node with a listener and a k3s.yaml and returns the
// contents of its files whose name ends in one of the suffixes.
func seedNode(f *testing.F, suffixes ...string) [][]byte {
	f.Helper()
	dir := f.TempDir()
	o := k3sgen.Options{DataDir: filepath.Join(dir, "k3s"), Profile: k3s.ProfileCurrent, Listener: true, Kubeconfig: filepath.Join(dir, "k3s.yaml")}
	// service.key exists already, as an EC key, so Start does not make an
	// RSA key: RSA key generation under the fuzzer's coverage
	// instrumentation takes seconds to minutes, and every fuzz worker
	// runs this prologue. (FuzzParseKey has an RSA seed in testdata.)
	if err := preKey(filepath.Join(dir, "k3s", "server", "tls", "service.key")); err != nil {
		f.Fatal(err)
	}
	if _, err := k3sgen.Start(o, time.Date(2020, 7, 26, 10, 0, 0, 0, time.UTC)); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		for _, s := range suffixes {
			if strings.HasSuffix(p, s) {
				b, err := os.ReadFile(p)
				out = append(out, b)
				return err
			}
		}
		return nil
	})
	if err != nil || len(out) == 0 {
		f.Fatalf("seeds: %v (%d)", err, len(out))
	}
	return out
}

// FuzzReadKubeconfig: a kubeconfig of any content never panics the reader;
// it becomes certificates, references or problems.
func FuzzReadKubeconfig(f *testing.F) {
	for _, b := range seedNode(f, "k3s.yaml", ".kubeconfig") {
		f.Add(b)
		f.Add(b[:len(b)*2/3])
	}
	for _, s := range []string{"", "apiVersion: v1\nkind: Config\n", "users:\n- name: a\n  user: null\n",
		"users:\n- name: a\n  user:\n    client-certificate-data: AAAA\n    client-key-data: AAAA\n", "{{{"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv := &source.Inventory{}
		source.ReadKubeconfig(inv, source.KubeconfigFile{Path: "/nonexistent/k3s.yaml"}, data)
		for _, c := range inv.Certs {
			if c.Cert == nil {
				t.Fatal("nil certificate")
			}
		}
	})
}

// FuzzDynamicCertJSON: dynamic-cert.json of any content never panics the
// reader (the file-backed source, as check runs it).
func FuzzDynamicCertJSON(f *testing.F) {
	for _, b := range seedNode(f, "dynamic-cert.json") {
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	for _, s := range []string{"", "{}", "null", `{"data":null}`, `{"data":{"tls.crt":"AAAA","tls.key":"AAAA"}}`, `{"data":{"tls.crt":""}}`, "[1,2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "dynamic-cert.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		inv := &source.Inventory{}
		source.DynamicCertJSON{Path: p}.Read(context.Background(), inv)
		if len(inv.Certs) == 0 && len(inv.Problems) == 0 && len(data) > 0 {
			t.Fatal("non-empty file gave neither certificate nor problem")
		}
		for _, c := range inv.Certs {
			if c.Cert == nil || c.Source != source.DynamicCert {
				t.Fatalf("bad cert %+v", c)
			}
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
