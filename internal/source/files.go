package source

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// Files reads every certificate (all PEM blocks) and key under the data
// dir's server/tls (including etcd/) and agent/ directories.
type Files struct {
	DataDir string
	Program k3s.Program
	// Dirs overrides the directories to walk, relative to DataDir.
	Dirs []string
}

// Name implements Source.
func (f Files) Name() string { return "files" }

// skipDir reports directories that hold no K3s-managed certificates:
// kube-apiserver's self-generated temporary-certs and k3scert's own backups.
func skipDir(name string) bool {
	return name == "temporary-certs" || strings.HasPrefix(name, ".k3scert")
}

// Read implements Source.
func (f Files) Read(ctx context.Context, inv *Inventory) {
	dirs := f.Dirs
	if dirs == nil {
		dirs = []string{"server/tls", "agent"}
	}
	for _, d := range dirs {
		root := filepath.Join(f.DataDir, filepath.FromSlash(d))
		if _, err := os.Stat(root); err != nil {
			continue // an agent has no server/tls and vice versa; node role decides what is expected
		}
		var certs, keys []string
		_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				inv.AddProblem(Problem{Source: File, Location: p, Reason: classifyReadError(err), Detail: err.Error()})
				return nil
			}
			if de.IsDir() {
				if p != root && skipDir(de.Name()) {
					return filepath.SkipDir
				}
				if p != root && isCertOrKeyName(p) {
					// A directory where a certificate or key belongs
					// (server/tls/client-admin.crt/): not "missing".
					inv.AddProblem(Problem{Source: File, Location: p, Reason: ReasonNotRegular, Detail: "is a directory, not a certificate or key file"})
					return filepath.SkipDir
				}
				return nil
			}
			switch {
			case strings.HasSuffix(p, ".crt"), strings.HasSuffix(p, ".pem"):
				certs = append(certs, p)
			case strings.HasSuffix(p, ".key"):
				keys = append(keys, p)
			}
			return nil
		})
		parsed := map[string]*Cert{}
		for _, p := range certs {
			if c := f.readCert(inv, p); c != nil {
				parsed[p] = c
			}
		}
		for _, p := range keys {
			f.readKey(inv, p, parsed)
		}
	}
}

func isCertOrKeyName(p string) bool {
	return strings.HasSuffix(p, ".crt") || strings.HasSuffix(p, ".pem") || strings.HasSuffix(p, ".key")
}

func (f Files) rel(p string) string {
	r, err := filepath.Rel(f.DataDir, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

// readCert records every certificate of file p and returns the first.
func (f Files) readCert(inv *Inventory, p string) *Cert {
	b, err := readLimited(p)
	if err != nil {
		inv.AddProblem(Problem{Source: File, Location: p, Reason: classifyReadError(err), Detail: err.Error()})
		return nil
	}
	certs, err := pki.ParseCerts(b)
	if err != nil {
		inv.AddProblem(Problem{Source: File, Location: p, Reason: certReason(err, len(certs)), Detail: err.Error()})
		if len(certs) == 0 {
			return nil
		}
	}
	id := ""
	if s, ok := k3s.ByPath(f.Program, f.rel(p)); ok {
		id = s.ID
	}
	out := make([]Cert, len(certs))
	for i, c := range certs {
		out[i] = Cert{Source: File, Location: p, Index: i, Cert: c}
		if i == 0 {
			out[i].SpecID = id
		}
	}
	inv.AddCert(out...)
	return &out[0]
}

func (f Files) readKey(inv *Inventory, p string, certs map[string]*Cert) {
	b, fi, err := ReadFileInfo(p)
	if err != nil {
		inv.AddProblem(Problem{Source: File, Location: p, Reason: classifyReadError(err), Detail: err.Error()})
		return
	}
	key, n, err := pki.ParseKey(b)
	if err != nil {
		inv.AddProblem(Problem{Source: File, Location: p, Reason: ReasonBadKey, Detail: err.Error()})
		// The mode still matters: whatever the file holds is secret.
		inv.AddKey(KeyCheck{Source: File, Location: p, Mode: fi.Mode().Perm(), Algorithm: "unreadable"})
		return
	}
	kc := KeyCheck{Source: File, Location: p, Algorithm: pki.PublicKeyAlgorithm(key), Count: n, Mode: fi.Mode().Perm()}
	crt := strings.TrimSuffix(p, ".key") + ".crt"
	if c, ok := certs[crt]; ok {
		kc.CertLocation = crt
		kc.Matches = pki.KeyMatches(c.Cert, key)
	}
	inv.AddKey(kc)
}

// certReason classifies a pki.ParseCerts error: damaged armour or no PEM at
// all is bad_pem, a block that decodes but does not parse is
// bad_certificate.
func certReason(err error, parsed int) Reason {
	if errors.Is(err, pki.ErrBadPEM) {
		return ReasonBadPEM
	}
	if parsed > 0 || strings.Contains(err.Error(), "x509") {
		return ReasonBadCert
	}
	return ReasonBadPEM
}
