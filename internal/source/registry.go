package source

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// Registry is the kind of the certificates of containerd's registry
// configuration (agent/etc/containerd/certs.d/<host>/*.crt): user files that
// K3s never writes, renews or removes. They are reported under their own
// kind, never judged critical and never rotated.
const Registry Kind = "registry"

// RegistryCerts reads the CA and client certificates of
// agent/etc/containerd/certs.d. Keys are not read.
type RegistryCerts struct {
	DataDir string
}

// Name implements Source.
func (r RegistryCerts) Name() string { return "registry" }

// maxRegistryFiles bounds the walk of a user-maintained directory.
const maxRegistryFiles = 1000

// Read implements Source.
func (r RegistryCerts) Read(ctx context.Context, inv *Inventory) {
	root := filepath.Join(r.DataDir, filepath.FromSlash(k3s.RegistryCertsDir))
	n := 0
	_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil || de.IsDir() {
			return nil // absent or unreadable registry config is not K3s's concern
		}
		if !(strings.HasSuffix(p, ".crt") || strings.HasSuffix(p, ".pem") || strings.HasSuffix(p, ".cert")) || !de.Type().IsRegular() {
			return nil
		}
		if n++; n > maxRegistryFiles {
			return filepath.SkipAll
		}
		b, err := readLimited(p)
		if err != nil {
			inv.AddProblem(Problem{Source: Registry, Location: p, Reason: classifyReadError(err), Detail: err.Error()})
			return nil
		}
		certs, err := pki.ParseCerts(b)
		if err != nil {
			inv.AddProblem(Problem{Source: Registry, Location: p, Reason: certReason(err, len(certs)), Detail: err.Error()})
		}
		out := make([]Cert, len(certs))
		for i, c := range certs {
			out[i] = Cert{Source: Registry, Location: p, Index: i, SpecID: "registry", Cert: c}
		}
		inv.AddCert(out...)
		return nil
	})
}
