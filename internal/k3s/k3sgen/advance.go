package k3sgen

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/pki"
)

// Shifter re-signs certificates with their validity moved into the past, so
// that to every reader the clock appears to have moved forward. It knows the
// node's CA keys by subject key ID and keeps the shifted CA certificates so
// every leaf is re-signed by its issuer's shifted form.
type Shifter struct {
	d    time.Duration
	keys map[string]crypto.Signer     // CA SubjectKeyId -> key
	cas  map[string]*x509.Certificate // original CA fingerprint -> shifted
	byID map[string]*x509.Certificate // CA SubjectKeyId -> original CA
}

// NewShifter loads every *-ca.key/*-ca.crt pair under dataDir/server/tls
// (including etcd/) and prepares to move time forward by days.
func NewShifter(dataDir string, days int) (*Shifter, error) {
	s := &Shifter{d: -pki.Days(days), keys: map[string]crypto.Signer{}, cas: map[string]*x509.Certificate{}, byID: map[string]*x509.Certificate{}}
	for _, dir := range []string{"server/tls", "server/tls/etcd"} {
		matches, _ := filepath.Glob(filepath.Join(dataDir, filepath.FromSlash(dir), "*-ca.crt"))
		for _, crt := range matches {
			kb, err := os.ReadFile(strings.TrimSuffix(crt, ".crt") + ".key")
			if err != nil {
				continue
			}
			key, _, err := pki.ParseKey(kb)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", crt, err)
			}
			cb, err := os.ReadFile(crt)
			if err != nil {
				return nil, err
			}
			certs, err := pki.ParseCerts(cb)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", crt, err)
			}
			ca := certs[0]
			s.keys[string(ca.SubjectKeyId)] = key
			s.byID[string(ca.SubjectKeyId)] = ca
		}
	}
	if len(s.keys) == 0 {
		return nil, ErrNoCA
	}
	return s, nil
}

// Cert returns c shifted. Every certificate is shifted once and reused, so
// a certificate that appears in several places (a CA in many bundles, the
// admin certificate in k3s.yaml, the listener in dynamic-cert.json and the
// secret) stays byte-identical everywhere.
func (s *Shifter) Cert(c *x509.Certificate) (*x509.Certificate, error) {
	fp := pki.Fingerprint(c)
	if sh, ok := s.cas[fp]; ok {
		return sh, nil
	}
	if c.IsCA && c.CheckSignatureFrom(c) == nil {
		key := s.keys[string(c.SubjectKeyId)]
		if key == nil {
			return nil, fmt.Errorf("no key for CA %q", c.Subject.CommonName)
		}
		sh, err := pki.Shift(c, s.d, nil, key)
		if err != nil {
			return nil, err
		}
		s.cas[fp] = sh
		return sh, nil
	}
	issuer := s.byID[string(c.AuthorityKeyId)]
	key := s.keys[string(c.AuthorityKeyId)]
	if issuer == nil || key == nil {
		return nil, fmt.Errorf("no CA key for %q (issuer %q)", c.Subject.CommonName, c.Issuer.CommonName)
	}
	shIssuer, err := s.Cert(issuer)
	if err != nil {
		return nil, err
	}
	sh, err := pki.Shift(c, s.d, shIssuer, key)
	if err != nil {
		return nil, err
	}
	// Copies of one certificate (client-admin.crt and k3s.yaml,
	// dynamic-cert.json and the secret) must stay one certificate.
	s.cas[fp] = sh
	return sh, nil
}

// PEM shifts every certificate of a PEM bundle and keeps other blocks.
func (s *Shifter) PEM(data []byte) ([]byte, error) {
	certs, err := pki.ParseCerts(data)
	if err != nil {
		return nil, err
	}
	out := make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		if out[i], err = s.Cert(c); err != nil {
			return nil, err
		}
	}
	return pki.EncodeCerts(out...), nil
}

// ListenerJSON shifts the certificates inside a dynamic-cert.json or secret
// JSON document and updates its fingerprint annotation.
func (s *Shifter) ListenerJSON(data []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	d, _ := doc["data"].(map[string]any)
	enc, _ := d["tls.crt"].(string)
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("tls.crt: %w", err)
	}
	shifted, err := s.PEM(raw)
	if err != nil {
		return nil, err
	}
	d["tls.crt"] = base64.StdEncoding.EncodeToString(shifted)
	certs, _ := pki.ParseCerts(shifted)
	if md, ok := doc["metadata"].(map[string]any); ok {
		if ann, ok := md["annotations"].(map[string]any); ok {
			ann["listener.cattle.io/fingerprint"] = SHA1Fingerprint(certs[0])
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Advance moves the node's files forward by days: every certificate file
// under server/tls and agent/, dynamic-cert.json and the admin kubeconfig
// (if kubeconfig != "") are re-signed with validity shifted into the past.
// The datastore copy of the listener secret is the caller's business.
func Advance(dataDir, kubeconfig string, days int) (*Shifter, error) {
	s, err := NewShifter(dataDir, days)
	if err != nil {
		return nil, err
	}
	return s, s.Files(dataDir, kubeconfig)
}

// Files shifts the node's files with this shifter (see Advance). Use one
// shifter for the files and any other copy (the secret in the datastore) so
// that every copy of a CA is shifted identically.
func (s *Shifter) Files(dataDir, kubeconfig string) error {
	var files []string
	for _, dir := range []string{"server/tls", "agent"} {
		root := filepath.Join(dataDir, filepath.FromSlash(dir))
		_ = filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if de.IsDir() && de.Name() == "temporary-certs" {
				return filepath.SkipDir
			}
			if !de.IsDir() && strings.HasSuffix(p, ".crt") {
				files = append(files, p)
			}
			return nil
		})
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		out, err := s.PEM(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := rewrite(f, out); err != nil {
			return err
		}
	}
	jsonPath := filepath.Join(dataDir, "server", "tls", "dynamic-cert.json")
	if b, err := os.ReadFile(jsonPath); err == nil && len(b) > 0 {
		out, err := s.ListenerJSON(b)
		if err != nil {
			return fmt.Errorf("%s: %w", jsonPath, err)
		}
		if err := rewrite(jsonPath, out); err != nil {
			return err
		}
	}
	if kubeconfig != "" {
		if err := s.kubeconfig(kubeconfig); err != nil {
			return err
		}
	}
	return nil
}

func (s *Shifter) kubeconfig(path string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		for _, field := range []string{"certificate-authority-data: ", "client-certificate-data: "} {
			idx := strings.Index(l, field)
			if idx < 0 {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(l[idx+len(field):]))
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			out, err := s.PEM(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			lines[i] = l[:idx+len(field)] + base64.StdEncoding.EncodeToString(out)
		}
	}
	return rewrite(path, []byte(strings.Join(lines, "\n")))
}

func rewrite(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	return writeFile(path, data, fi.Mode().Perm())
}
