package source

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// Files reads the certificate and key files the K3s table names (every
// row's files, leftovers included) plus whatever lies directly in the
// kube-scheduler and kube-controller-manager serving-cert directories. It
// never walks the data dir: agent/ also holds containerd's root (image
// snapshots full of foreign CAs), airgap tarballs, registry configuration,
// kubelet state and `k3s certificate rotate` backups (k3s.NotK3sDirs), none
// of which is K3s certificate state.
type Files struct {
	DataDir string
	Program k3s.Program
	// Dirs restricts the read to table files under these directories,
	// relative to DataDir (nil: all).
	Dirs []string
}

// Name implements Source.
func (f Files) Name() string { return "files" }

// ServingCertDirs are the --cert-dir / serving-cert directories of
// kube-scheduler and kube-controller-manager, read as a whole.
var ServingCertDirs = []string{"server/tls/kube-scheduler", "server/tls/kube-controller-manager"}

// Paths lists the files Files would read on this node (absolute): the table
// files that exist, and the .crt/.key files of ServingCertDirs. Missing
// files are left out; what is missing is judged by diagnose.
func (f Files) Paths() []string {
	seen := map[string]bool{}
	var out []string
	add := func(rel string) {
		if !f.wanted(rel) || seen[rel] {
			return
		}
		p := filepath.Join(f.DataDir, filepath.FromSlash(rel))
		if _, err := os.Lstat(p); err != nil {
			return
		}
		seen[rel] = true
		out = append(out, p)
	}
	for _, rel := range k3s.AllFiles(f.Program) {
		add(rel)
	}
	for _, d := range ServingCertDirs {
		des, err := os.ReadDir(filepath.Join(f.DataDir, filepath.FromSlash(d)))
		if err != nil {
			continue
		}
		for _, de := range des {
			if isCertOrKeyName(de.Name()) {
				add(d + "/" + de.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

func (f Files) wanted(rel string) bool {
	if f.Dirs == nil {
		return true
	}
	for _, d := range f.Dirs {
		d = strings.TrimSuffix(filepath.ToSlash(d), "/")
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// Read implements Source.
func (f Files) Read(ctx context.Context, inv *Inventory) {
	var certs, keys []string
	for _, p := range f.Paths() {
		if ctx.Err() != nil {
			return
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
			// a dangling symlink where a table file belongs
			inv.AddProblem(Problem{Source: File, Location: p, Reason: ReasonNotFound, Detail: err.Error()})
			continue
		case err != nil:
			inv.AddProblem(Problem{Source: File, Location: p, Reason: classifyReadError(err), Detail: err.Error()})
			continue
		case fi.IsDir():
			// A directory where a certificate or key belongs
			// (server/tls/client-admin.crt/): not "missing".
			inv.AddProblem(Problem{Source: File, Location: p, Reason: ReasonNotRegular, Detail: "is a directory, not a certificate or key file"})
			continue
		}
		if strings.HasSuffix(p, ".key") {
			keys = append(keys, p)
		} else {
			certs = append(certs, p)
		}
	}
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
