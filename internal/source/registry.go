package source

import (
	"context"
	"io/fs"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

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

// MaxRegistryFiles bounds the walk of a user-maintained directory: at most
// this many certificate files are read under certs.d (a safety bound, not
// a size any real node reaches: a registry host has a ca.crt and perhaps a
// client.cert, and a CA bundle holds many certificates in one file). The
// files past the bound are not read, and the scan says so with a
// too_large problem on the directory.
const MaxRegistryFiles = 10000

// Read implements Source. The walk lists the files (in lexical order, at
// most MaxRegistryFiles) and hands each to a few workers (GOMAXPROCS) that
// read and parse them while the walk goes on; the results are added in
// walk order, so the inventory is the same as a sequential read's.
func (r RegistryCerts) Read(ctx context.Context, inv *Inventory) {
	root := filepath.Join(r.DataDir, filepath.FromSlash(k3s.RegistryCertsDir))
	type result struct {
		certs   []Cert
		problem *Problem
	}
	type job struct {
		i int
		p string
	}
	jobs := make(chan job, 64)
	var (
		mu      sync.Mutex
		results = map[int]result{}
		wg      sync.WaitGroup
	)
	for w := runtime.GOMAXPROCS(0); w > 0; w-- {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				var res result
				res.certs, res.problem = readRegistryFile(j.p)
				mu.Lock()
				results[j.i] = res
				mu.Unlock()
			}
		}()
	}
	n := 0
	overflow := false
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
		if n == MaxRegistryFiles {
			overflow = true
			return filepath.SkipAll
		}
		jobs <- job{n, p}
		n++
		return nil
	})
	close(jobs)
	wg.Wait()
	for i := range n {
		res, ok := results[i]
		if !ok {
			continue // cancelled
		}
		if res.problem != nil {
			inv.AddProblem(*res.problem)
		}
		inv.AddCert(res.certs...)
	}
	if overflow {
		inv.AddProblem(Problem{Source: Registry, Location: root, Reason: ReasonTooLarge,
			Detail: "more than " + strconv.Itoa(MaxRegistryFiles) + " certificate files under the registry configuration; the rest are not read"})
	}
}

// readRegistryFile reads and parses one registry certificate file: its
// certificates (those before a damaged block too) and the file's problem.
func readRegistryFile(p string) ([]Cert, *Problem) {
	b, err := readLimited(p)
	if err != nil {
		return nil, &Problem{Source: Registry, Location: p, Reason: classifyReadError(err), Detail: err.Error()}
	}
	certs, err := pki.ParseCerts(b)
	var prob *Problem
	if err != nil {
		prob = &Problem{Source: Registry, Location: p, Reason: certReason(err, len(certs)), Detail: err.Error()}
	}
	out := make([]Cert, len(certs))
	for i, c := range certs {
		out[i] = Cert{Source: Registry, Location: p, Index: i, SpecID: "registry", Cert: c}
	}
	return out, prob
}
