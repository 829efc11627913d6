package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/k3scert/k3scert/internal/pki"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeconfigFile is one kubeconfig to read.
type KubeconfigFile struct {
	Path string
	Copy bool // a copy the user keeps elsewhere (--compare-kubeconfig), not written by K3s
	// Optional: a missing optional file is not a problem (k3s.yaml on an agent).
	Optional bool
}

// Kubeconfigs reads kubeconfig files: embedded certificates become Certs,
// referenced files are recorded (and must exist).
type Kubeconfigs struct {
	Files []KubeconfigFile
}

// Name implements Source.
func (k Kubeconfigs) Name() string { return "kubeconfigs" }

// Read implements Source.
func (k Kubeconfigs) Read(ctx context.Context, inv *Inventory) {
	for _, f := range k.Files {
		if ctx.Err() != nil {
			return
		}
		b, err := readLimited(f.Path)
		if err != nil {
			if f.Optional && os.IsNotExist(err) {
				continue
			}
			inv.AddProblem(Problem{Source: Kubeconfig, Location: f.Path, Reason: classifyReadError(err), Detail: err.Error()})
			continue
		}
		ReadKubeconfig(inv, f, b)
	}
}

// ReadKubeconfig parses one kubeconfig's bytes into the inventory. It is
// exported for the fuzz test and for readers of kubeconfigs held elsewhere.
func ReadKubeconfig(inv *Inventory, f KubeconfigFile, b []byte) {
	cfg, err := clientcmd.Load(b)
	if err != nil {
		inv.AddProblem(Problem{Source: Kubeconfig, Location: f.Path, Reason: ReasonBadYAML, Detail: err.Error()})
		return
	}
	if len(cfg.AuthInfos) == 0 {
		inv.AddProblem(Problem{Source: Kubeconfig, Location: f.Path, Reason: ReasonBadYAML, Detail: "no users in kubeconfig"})
		return
	}
	dir := filepath.Dir(f.Path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	// The cluster each user is paired with through a context.
	clusterOf := map[string]string{}
	ctxNames := make([]string, 0, len(cfg.Contexts))
	for n := range cfg.Contexts {
		ctxNames = append(ctxNames, n)
	}
	sort.Strings(ctxNames)
	for _, n := range ctxNames {
		c := cfg.Contexts[n]
		if c == nil {
			continue
		}
		if _, ok := clusterOf[c.AuthInfo]; !ok || n == cfg.CurrentContext {
			clusterOf[c.AuthInfo] = c.Cluster
		}
	}
	users := make([]string, 0, len(cfg.AuthInfos))
	for n := range cfg.AuthInfos {
		users = append(users, n)
	}
	sort.Strings(users)
	for _, u := range users {
		ai := cfg.AuthInfos[u]
		if ai == nil {
			continue
		}
		loc := fmt.Sprintf("%s (user %s)", f.Path, u)
		ref := KubeconfigRef{Location: loc, Copy: f.Copy, CertFile: abs(ai.ClientCertificate), KeyFile: abs(ai.ClientKey)}
		if cl := cfg.Clusters[clusterOf[u]]; cl != nil {
			ref.Server = cl.Server
			ref.CAFile = abs(cl.CertificateAuthority)
			if len(cl.CertificateAuthorityData) > 0 {
				cas, err := pki.ParseCerts(cl.CertificateAuthorityData)
				if err != nil {
					inv.AddProblem(Problem{Source: Kubeconfig, Location: loc, Reason: certReason(err, len(cas)), Detail: "certificate-authority-data: " + err.Error()})
				}
				for i, c := range cas {
					ref.ServerCAs = append(ref.ServerCAs, pki.Fingerprint(c))
					inv.AddCert(Cert{Source: Kubeconfig, Location: loc + " certificate-authority-data", Index: i, Via: "ca", Cert: c})
				}
			}
		}
		if len(ai.ClientCertificateData) > 0 {
			ref.Embedded = true
			certs, err := pki.ParseCerts(ai.ClientCertificateData)
			if err != nil {
				inv.AddProblem(Problem{Source: Kubeconfig, Location: loc, Reason: certReason(err, len(certs)), Detail: "client-certificate-data: " + err.Error()})
			}
			for i, c := range certs {
				if i == 0 {
					ref.ClientFP = pki.Fingerprint(c)
				}
				inv.AddCert(Cert{Source: Kubeconfig, Location: loc, Index: i, Via: "client", SpecID: firstID(i, "kubeconfig-client"), Cert: c})
			}
			if len(certs) > 0 && len(ai.ClientKeyData) > 0 {
				key, n, err := pki.ParseKey(ai.ClientKeyData)
				if err != nil {
					inv.AddProblem(Problem{Source: Kubeconfig, Location: loc, Reason: ReasonBadKey, Detail: "client-key-data: " + err.Error()})
				} else {
					inv.AddKey(KeyCheck{Source: Kubeconfig, Location: loc + " client-key-data", CertLocation: loc,
						Matches: pki.KeyMatches(certs[0], key), Algorithm: pki.PublicKeyAlgorithm(key), Count: n})
				}
			}
		}
		for _, p := range []string{ref.CertFile, ref.KeyFile, ref.CAFile} {
			if p == "" {
				continue
			}
			// A stat never blocks; kubectl and K3s will read the file, so
			// one that is not a regular file is a problem here too.
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				inv.AddProblem(Problem{Source: Kubeconfig, Location: loc, Reason: classifyReadError(err), Detail: "references " + p + ": " + err.Error()})
			case !fi.Mode().IsRegular():
				inv.AddProblem(Problem{Source: Kubeconfig, Location: loc, Reason: ReasonNotRegular, Detail: "references " + p + ": " + ErrNotRegular.Error() + " (" + modeKind(fi.Mode()) + ")"})
			case fi.Size() > MaxFileSize:
				inv.AddProblem(Problem{Source: Kubeconfig, Location: loc, Reason: ReasonTooLarge, Detail: fmt.Sprintf("references %s: %v: %d bytes", p, ErrTooLarge, fi.Size())})
			}
		}
		inv.AddKubeconfig(ref)
	}
}

func firstID(i int, id string) string {
	if i == 0 {
		return id
	}
	return ""
}
