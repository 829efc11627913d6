package rotate

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
	"k8s.io/client-go/tools/clientcmd"
)

// RefreshResult says what RefreshKubeconfig changed.
type RefreshResult struct {
	Path     string
	Backup   string
	Users    []string // users whose client certificate was replaced
	Clusters []string // clusters whose CA data was replaced
	NotAfter time.Time
}

// RefreshKubeconfig rewrites a copied kubeconfig with the node's current
// admin credentials (server/tls/client-admin.{crt,key}) and server CA,
// after a 0600 backup beside it. Only users holding an embedded certificate
// with the admin's subject, and clusters with embedded CA data, change;
// every other field (server URLs, contexts, extensions) is kept.
func RefreshKubeconfig(path, dataDir string, now time.Time) (RefreshResult, error) {
	res := RefreshResult{Path: path}
	tls := func(n string) string { return filepath.Join(dataDir, "server", "tls", n) }
	crt, err := source.ReadFile(tls("client-admin.crt"))
	if err != nil {
		return res, fmt.Errorf("current admin credentials: %w", err)
	}
	key, err := source.ReadFile(tls("client-admin.key"))
	if err != nil {
		return res, fmt.Errorf("current admin credentials: %w", err)
	}
	ca, err := source.ReadFile(tls("server-ca.crt"))
	if err != nil {
		return res, fmt.Errorf("server CA: %w", err)
	}
	admin, err := pki.ParseCerts(crt)
	if err != nil {
		return res, fmt.Errorf("%s: %w", tls("client-admin.crt"), err)
	}
	k, _, err := pki.ParseKey(key)
	if err != nil || !pki.KeyMatches(admin[0], k) {
		return res, fmt.Errorf("%s does not hold the key of client-admin.crt", tls("client-admin.key"))
	}
	if now.After(admin[0].NotAfter) {
		return res, fmt.Errorf("the node's own client-admin.crt expired %s: run k3scert rotate first", admin[0].NotAfter.UTC().Format(time.RFC3339))
	}
	orig, err := source.ReadFile(path)
	if err != nil {
		return res, err
	}
	cfg, err := clientcmd.Load(orig)
	if err != nil {
		return res, fmt.Errorf("%s: %w", path, err)
	}
	// Only this cluster's entries change: users whose certificate was
	// signed by this node's client CA, and the clusters those users are
	// paired with in a context. Other clusters in the file stay as they are.
	cab, err := source.ReadFile(tls("client-ca.crt"))
	if err != nil {
		return res, fmt.Errorf("client CA: %w", err)
	}
	clientCA, err := pki.ParseCerts(cab)
	if err != nil {
		return res, fmt.Errorf("%s: %w", tls("client-ca.crt"), err)
	}
	mine := map[string]bool{}
	for name, ai := range cfg.AuthInfos {
		if len(ai.ClientCertificateData) == 0 {
			continue
		}
		certs, err := pki.ParseCerts(ai.ClientCertificateData)
		if err != nil || certs[0].Subject.CommonName != admin[0].Subject.CommonName || pki.SignedBy(certs[0], clientCA[0]) != nil {
			continue
		}
		ai.ClientCertificateData, ai.ClientKeyData = crt, key
		res.Users = append(res.Users, name)
		mine[name] = true
	}
	done := map[string]bool{}
	for _, c := range cfg.Contexts {
		if c == nil || !mine[c.AuthInfo] || done[c.Cluster] {
			continue
		}
		cl := cfg.Clusters[c.Cluster]
		if cl == nil || len(cl.CertificateAuthorityData) == 0 {
			continue
		}
		cl.CertificateAuthorityData = ca
		res.Clusters = append(res.Clusters, c.Cluster)
		done[c.Cluster] = true
	}
	if len(res.Users) == 0 {
		return res, fmt.Errorf("%s has no user with an embedded %s certificate signed by this node's client CA; nothing to refresh", path, admin[0].Subject.CommonName)
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return res, err
	}
	res.Backup = fmt.Sprintf("%s.k3scert-%s.bak", path, now.UTC().Format("20060102T150405Z"))
	if err := WriteAtomic(res.Backup, orig, 0o600); err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	if err := WriteAtomic(path, out, modeOf(path, 0o600)); err != nil {
		return res, err
	}
	res.NotAfter = admin[0].NotAfter
	return res, nil
}
