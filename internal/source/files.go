package source

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

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
	es := f.entries()
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.path
	}
	return out
}

// fileEntry is one file Files reads.
type fileEntry struct {
	path string
	// regular: the directory listing (d_type) or the Lstat that found it
	// said it is a regular file, so no stat is needed before the read:
	// the read's own fstat refuses whatever it became since.
	regular bool
	// table: a file the K3s table names (its spec is looked up).
	table bool
}

// entries is Paths with what the listing already knew: the serving-cert
// directories are listed once (getdents gives every name and type), not
// stat'ed name by name.
func (f Files) entries() []fileEntry {
	seen := map[string]int{}
	var out []fileEntry
	for _, rel := range k3s.AllFiles(f.Program) {
		if !f.wanted(rel) {
			continue
		}
		if _, dup := seen[rel]; dup {
			continue
		}
		p := filepath.Join(f.DataDir, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		seen[rel] = len(out)
		out = append(out, fileEntry{path: p, table: true, regular: fi.Mode().IsRegular()})
	}
	for _, d := range ServingCertDirs {
		des, err := os.ReadDir(filepath.Join(f.DataDir, filepath.FromSlash(d)))
		if err != nil {
			continue
		}
		for _, de := range des {
			if !isCertOrKeyName(de.Name()) {
				continue
			}
			rel := d + "/" + de.Name()
			if !f.wanted(rel) {
				continue
			}
			if i, dup := seen[rel]; dup {
				out[i].regular = de.Type().IsRegular()
				continue
			}
			seen[rel] = len(out)
			out = append(out, fileEntry{path: filepath.Join(f.DataDir, filepath.FromSlash(rel)), regular: de.Type().IsRegular()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
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

// Read implements Source. Certificate files are read and parsed by a few
// workers (GOMAXPROCS, at most one per file) and recorded in path order,
// so the inventory is the same as a sequential read's; keys are read
// after them (a key is compared with its certificate).
func (f Files) Read(ctx context.Context, inv *Inventory) {
	var certs, keys []fileEntry
	for _, e := range f.entries() {
		if ctx.Err() != nil {
			return
		}
		p := e.path
		if !e.regular {
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
		}
		if strings.HasSuffix(p, ".key") {
			keys = append(keys, e)
		} else {
			certs = append(certs, e)
		}
	}
	type result struct {
		certs   []Cert
		problem *Problem
	}
	results := make([]result, len(certs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := min(runtime.GOMAXPROCS(0), len(certs)); w > 0; w-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(certs) || ctx.Err() != nil {
					return
				}
				results[i].certs, results[i].problem = f.readCert(certs[i])
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	parsed := make(map[string]*Cert, len(certs))
	for i, res := range results {
		if res.problem != nil {
			inv.AddProblem(*res.problem)
		}
		if len(res.certs) > 0 {
			inv.AddCert(res.certs...)
			parsed[certs[i].path] = &res.certs[0]
		}
	}
	for _, e := range keys {
		f.readKey(inv, e.path, parsed)
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

// readCert reads and parses the certificates of one file: all of them
// (those before a damaged block too) and the file's problem.
func (f Files) readCert(e fileEntry) ([]Cert, *Problem) {
	p := e.path
	b, err := readLimited(p)
	if err != nil {
		return nil, &Problem{Source: File, Location: p, Reason: classifyReadError(err), Detail: err.Error()}
	}
	certs, err := pki.ParseCerts(b)
	var prob *Problem
	if err != nil {
		prob = &Problem{Source: File, Location: p, Reason: certReason(err, len(certs)), Detail: err.Error()}
		if len(certs) == 0 {
			return nil, prob
		}
	}
	id := ""
	if e.table {
		if s, ok := k3s.ByPath(f.Program, f.rel(p)); ok {
			id = s.ID
		}
	}
	out := make([]Cert, len(certs))
	for i, c := range certs {
		out[i] = Cert{Source: File, Location: p, Index: i, Cert: c}
		if i == 0 {
			out[i].SpecID = id
		}
	}
	return out, prob
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
