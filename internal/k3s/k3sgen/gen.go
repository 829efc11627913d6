// Package k3sgen writes a K3s node's certificates the way K3s itself does on
// each server start (facts §1, §2): CAs once and never again, leaves when
// missing, expired or inside the profile's renew window, or when their
// fields changed; leaf files as leaf + CA bundle; ECDSA P-256 keys, an RSA
// service.key; kubeconfigs in server/cred referencing files, k3s.yaml
// embedding data, and the agent's files fetched fresh on every start.
//
// It is the faithful node generator of the tests and the certificate half
// of the lab's emulated K3s. Every function takes the time as a parameter.
package k3sgen

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// Options describe the node to write.
type Options struct {
	DataDir       string
	Program       k3s.Program
	Profile       k3s.Profile
	NodeName      string   // default "k3s-node"
	NodeIPs       []net.IP // added to serving SANs; 127.0.0.1 is always there
	TLSSANs       []string // --tls-san
	ClusterDomain string   // default cluster.local
	// Kubeconfig is where the admin kubeconfig (k3s.yaml) goes; "" skips it.
	Kubeconfig     string
	APIServerPort  int  // default per program
	SupervisorPort int  // default per program
	NoAgent        bool // do not write agent/ files (a server with --disable-agent)
	AgentOnly      bool // write only agent/ files (an agent node); CAs come from ServerDataDir
	// ServerDataDir is the server an agent-only node fetches from.
	ServerDataDir string
	// Listener writes server/tls/dynamic-cert.json as dynamiclistener would
	// when it is missing (tests without the lab; the lab lets the real
	// dynamiclistener do it).
	Listener bool
	// ValidityDays overrides the 365-day leaf validity
	// (CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS).
	ValidityDays int
	// DisableETCD: --disable-etcd, no etcd/server-client pair
	// (deps.go@2a1e2e8:506-515).
	DisableETCD bool
	// RancherCertDir: on rows before the CA-signed kube-* serving certs,
	// kube-controller-manager and kube-scheduler run with Rancher's
	// --cert-dir=<data-dir>/server/tls/<component> and write a self-signed
	// 1-year pair there when it is missing (k3s-io/k3s#10176).
	RancherCertDir bool
}

func (o *Options) defaults() {
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.Profile.Name == "" {
		o.Profile = k3s.ProfileCurrent
	}
	if o.NodeName == "" {
		o.NodeName = "k3s-node"
	}
	p := k3s.DefaultPorts(o.Program)
	if o.APIServerPort == 0 {
		o.APIServerPort = p.APIServer
	}
	if o.SupervisorPort == 0 {
		o.SupervisorPort = p.Supervisor
	}
	if o.ValidityDays == 0 {
		o.ValidityDays = k3s.LeafValidityDays
	}
}

// Result lists what a start did.
type Result struct {
	Created []string // spec IDs created (missing before)
	Renewed []string // spec IDs reissued (expired, in window, or fields changed)
	Kept    []string // spec IDs left as they were
}

// Start does what a K3s server start does to its certificate files at time
// now and reports it.
func Start(o Options, now time.Time) (Result, error) {
	o.defaults()
	var res Result
	cas := map[string]*ca{}
	specs := k3s.Specs(o.Program, o.Profile)
	for _, s := range specs {
		if !s.CA || s.Copy || s.Role != k3s.RoleServer || s.External {
			continue // custom root/intermediate CAs are the user's, never made by K3s
		}
		c, created, err := loadOrCreateCA(o, s, now)
		if err != nil {
			return res, err
		}
		cas[s.ID] = c
		if created {
			res.Created = append(res.Created, s.ID)
		} else {
			res.Kept = append(res.Kept, s.ID)
		}
	}
	if !o.AgentOnly {
		if o.Profile.DeletesLegacyProxyCerts {
			// cleanupLegacyCerts (deps.go@2a1e2e8:672-684): every start.
			for _, l := range k3s.Leftovers(o.Program, o.Profile) {
				if l.RemovedAtStart {
					if err := os.Remove(o.path(l.Spec.Cert)); err != nil && !os.IsNotExist(err) {
						return res, err
					}
				}
			}
		}
		for _, s := range specs {
			if s.Role != k3s.RoleServer || s.CA || s.External {
				continue // self-signed kube-* pairs are written by the components (SelfSignedServing)
			}
			var action string
			var err error
			if s.ID == "etcd-server-client" && o.DisableETCD {
				continue
			}
			if s.Cert == "" {
				action, err = ensureKey(o, s)
			} else {
				action, err = ensureLeaf(o, s, cas[s.Signer], now)
			}
			if err != nil {
				return res, err
			}
			res.add(action, s.ID)
		}
		if o.Kubeconfig != "" {
			if err := writeAdminKubeconfig(o); err != nil {
				return res, err
			}
		}
		if o.Listener {
			if err := ensureListener(o, cas["server-ca"], now); err != nil {
				return res, err
			}
		}
	}
	if !o.AgentOnly && o.RancherCertDir && !o.Profile.KCMSchedulerServing {
		for _, s := range specs {
			if s.SelfSigned {
				created, err := SelfSignedServing(o.path(s.Cert), o.path(s.Key), now)
				if err != nil {
					return res, err
				}
				if created {
					res.Created = append(res.Created, s.ID)
				} else {
					res.Kept = append(res.Kept, s.ID)
				}
			}
		}
	}
	if !o.NoAgent {
		ids, err := fetchAgent(o, cas, now)
		if err != nil {
			return res, err
		}
		res.Renewed = append(res.Renewed, ids...)
	}
	sort.Strings(res.Created)
	sort.Strings(res.Renewed)
	sort.Strings(res.Kept)
	return res, nil
}

func (r *Result) add(action, id string) {
	switch action {
	case "created":
		r.Created = append(r.Created, id)
	case "renewed":
		r.Renewed = append(r.Renewed, id)
	default:
		r.Kept = append(r.Kept, id)
	}
}

type ca struct {
	certs []*x509.Certificate // the CA file's bundle; [0] signs
	key   crypto.Signer
}

func (o Options) path(rel string) string { return filepath.Join(o.DataDir, filepath.FromSlash(rel)) }

func loadOrCreateCA(o Options, s k3s.Spec, now time.Time) (*ca, bool, error) {
	if o.AgentOnly && o.ServerDataDir != "" {
		o.DataDir = o.ServerDataDir // the agent's server signs
	}
	certPEM, errC := os.ReadFile(o.path(s.Cert))
	keyPEM, errK := os.ReadFile(o.path(s.Key))
	if errC == nil && errK == nil {
		certs, err := pki.ParseCerts(certPEM)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", o.path(s.Cert), err)
		}
		key, _, err := pki.ParseKey(keyPEM)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", o.path(s.Key), err)
		}
		return &ca{certs: certs, key: key}, false, nil
	}
	if o.AgentOnly {
		return nil, false, fmt.Errorf("agent-only node needs the server CAs in %s", o.path(s.Cert))
	}
	key, err := pki.NewECKey()
	if err != nil {
		return nil, false, err
	}
	nb := now.Add(-time.Hour)
	cert, err := pki.NewCA(fmt.Sprintf("%s@%d", s.CN, now.Unix()), key, nb, nb.Add(pki.Days(k3s.CAValidityDays)))
	if err != nil {
		return nil, false, err
	}
	if err := writeKey(o.path(s.Key), key); err != nil {
		return nil, false, err
	}
	if err := writeFile(o.path(s.Cert), pki.EncodeCerts(cert), 0o644); err != nil {
		return nil, false, err
	}
	return &ca{certs: []*x509.Certificate{cert}, key: key}, true, nil
}

func ensureKey(o Options, s k3s.Spec) (string, error) {
	if _, err := os.Stat(o.path(s.Key)); err == nil {
		return "kept", nil
	}
	var key crypto.Signer
	var err error
	if s.RSA {
		key, err = pki.NewRSAKey()
	} else {
		key, err = pki.NewECKey()
	}
	if err != nil {
		return "", err
	}
	return "created", writeKey(o.path(s.Key), key)
}

// request is what K3s would put into a fresh certificate for s.
func (o Options) request(s k3s.Spec, now time.Time, signer *x509.Certificate) pki.LeafRequest {
	cn := s.CN
	if s.Role == k3s.RoleAgent {
		cn = nodeCN(s.CN, o.NodeName)
	}
	r := pki.LeafRequest{CN: cn, Orgs: s.Orgs}
	for _, u := range s.Usages {
		switch u {
		case k3s.ServerAuth:
			r.Usages = append(r.Usages, x509.ExtKeyUsageServerAuth)
		case k3s.ClientAuth:
			r.Usages = append(r.Usages, x509.ExtKeyUsageClientAuth)
		}
	}
	switch s.ID {
	case "serving-kube-apiserver":
		dns, ips := o.configSANs()
		r.DNSNames = append(k3s.APIServerDNSNames(o.Profile, o.ClusterDomain), dns...)
		r.IPs = ips
	case "etcd-server-client", "etcd-peer-server-client":
		dns, ips := o.configSANs()
		r.DNSNames = append([]string{"kine.sock"}, dns...)
		if o.Profile.LegacyNames {
			r.DNSNames = append(r.DNSNames, "localhost")
		}
		r.IPs = ips
	case "serving-kube-scheduler", "serving-kube-controller-manager":
		// deps.go@2a1e2e8:454-469
		r.DNSNames = []string{"localhost"}
		r.IPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	case "agent-serving-kubelet":
		// handlers.go@2a1e2e8:62-91 (::1 since k3s d9c422a3a, 2026-01: current row only)
		r.DNSNames = []string{o.NodeName, "localhost"}
		r.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
		if o.Profile.DeletesLegacyProxyCerts {
			r.IPs = append(r.IPs, net.IPv6loopback)
		}
		r.IPs = append(r.IPs, o.NodeIPs...)
	}
	nb := now.Add(-time.Hour)
	if signer != nil && nb.Before(signer.NotBefore) {
		nb = signer.NotBefore
	}
	r.NotBefore = nb
	r.NotAfter = nb.Add(pki.Days(o.ValidityDays))
	return r
}

// configIPs is config.SANs' IP part: 127.0.0.1, the node IPs and the
// apiserver service IP (facts §1.2).
func (o Options) configIPs() []net.IP {
	_, ips := o.configSANs()
	return ips
}

// configSANs is K3s's config.SANs split into names and IPs
// (pkg/cli/server/server.go@2a1e2e8:291-305, 345-349, 559-561): --tls-san,
// 127.0.0.1, ::1, localhost, the node name, the node IPs and the service
// IP. v1.18-era rows keep the short set (127.0.0.1, node IPs, service IP,
// --tls-san). --tls-san values that are IPs become IP SANs.
func (o Options) configSANs() (dns []string, ips []net.IP) {
	ips = []net.IP{net.IPv4(127, 0, 0, 1)}
	if !o.Profile.LegacyNames {
		ips = append(ips, net.IPv6loopback)
		dns = append(dns, "localhost", o.NodeName)
	}
	ips = append(ips, o.NodeIPs...)
	for _, n := range o.TLSSANs {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, n)
		}
	}
	ips = append(ips, net.ParseIP(k3s.ServiceIP))
	return dedupe(dns), dedupeIPs(ips)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range in {
		if x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func dedupeIPs(in []net.IP) []net.IP {
	seen := map[string]bool{}
	var out []net.IP
	for _, x := range in {
		if !seen[x.String()] {
			seen[x.String()] = true
			out = append(out, x)
		}
	}
	return out
}

func nodeCN(tmpl, node string) string {
	out := []byte{}
	for i := 0; i < len(tmpl); i++ {
		if i+6 <= len(tmpl) && tmpl[i:i+6] == "{node}" {
			out = append(out, node...)
			i += 5
			continue
		}
		out = append(out, tmpl[i])
	}
	return string(out)
}

// ensureLeaf applies K3s's regen rule: missing, expired (≤ RenewDays left),
// failing to verify against its CA, or fields changed → new key, new cert.
func ensureLeaf(o Options, s k3s.Spec, c *ca, now time.Time) (string, error) {
	if c == nil {
		return "", fmt.Errorf("%s: signer %s not loaded", s.ID, s.Signer)
	}
	want := o.request(s, now, c.certs[0])
	action := "created"
	certPEM, errC := os.ReadFile(o.path(s.Cert))
	_, errK := os.Stat(o.path(s.Key))
	if errC == nil && errK == nil {
		action = "renewed"
		if certs, err := pki.ParseCerts(certPEM); err == nil {
			if !needsRegen(o.Profile, certs[0], c.certs[0], want, now) {
				return "kept", nil
			}
		}
	}
	// LoadOrGenerateKeyFile(keyFile, regen): a new key when the leaf is
	// regenerated, the existing key when only the certificate is missing
	// (deps.go@2a1e2e8 createClientCertKey).
	key, err := loadOrNewKey(o.path(s.Key), errC == nil)
	if err != nil {
		return "", err
	}
	cert, err := pki.SignLeaf(want, key.Public(), c.certs[0], c.key)
	if err != nil {
		return "", err
	}
	if err := writeKey(o.path(s.Key), key); err != nil {
		return "", err
	}
	if err := writeFile(o.path(s.Cert), o.bundle(cert, c.certs), 0o644); err != nil {
		return "", err
	}
	if s.Kubecfg != "" && s.Role == k3s.RoleServer {
		if err := writeFileKubeconfig(o, s); err != nil {
			return "", err
		}
	}
	return action, nil
}

// bundle is the leaf followed by the CA bundle (modern) or by the first CA
// certificate only (v1.18), facts §1.1.
func (o Options) bundle(leaf *x509.Certificate, cas []*x509.Certificate) []byte {
	if o.Profile.LegacyNames {
		return pki.EncodeCerts(leaf, cas[0])
	}
	return pki.EncodeCerts(append([]*x509.Certificate{leaf}, cas...)...)
}

func needsRegen(p k3s.Profile, cur, caCert *x509.Certificate, want pki.LeafRequest, now time.Time) bool {
	if !now.Add(pki.Days(p.RenewDays)).Before(cur.NotAfter) {
		return true // expired or inside the renew window (IsCertExpired: days left ≤ RenewDays)
	}
	if pki.SignedBy(cur, caCert) != nil {
		return true // CA changed
	}
	if cur.Subject.CommonName != want.CN || !sameSet(cur.Subject.Organization, want.Orgs) {
		return true
	}
	have := map[string]bool{}
	for _, n := range pki.SANs(cur) {
		have[n] = true
	}
	for _, n := range want.DNSNames {
		if !have[n] {
			return true
		}
	}
	for _, ip := range want.IPs {
		if !have[ip.String()] {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// fetchAgent writes the agent's files as an agent start fetches them from
// the server: fresh 365-day certificates every time (facts §6.2).
func fetchAgent(o Options, cas map[string]*ca, now time.Time) ([]string, error) {
	var ids []string
	for _, s := range k3s.Specs(o.Program, o.Profile) {
		if s.Role != k3s.RoleAgent {
			continue
		}
		if s.Copy {
			src := map[string]string{"agent-client-ca": "client-ca", "agent-server-ca": "server-ca"}[s.ID]
			c := cas[src]
			if c == nil {
				return nil, fmt.Errorf("%s: no %s", s.ID, src)
			}
			if err := writeFile(o.path(s.Cert), pki.EncodeCerts(c.certs...), 0o644); err != nil {
				return nil, err
			}
			ids = append(ids, s.ID)
			continue
		}
		c := cas[s.Signer]
		if s.Cert == "" || c == nil {
			continue
		}
		// Agents keep their keys across restarts: CSR-based signing
		// (getCSRBytes → LoadOrGenerateKeyFile(keyFile, false),
		// pkg/agent/config/config.go@2a1e2e8:318-328).
		key, err := loadOrNewKey(o.path(s.Key), false)
		if err != nil {
			return nil, err
		}
		cert, err := pki.SignLeaf(o.request(s, now, c.certs[0]), key.Public(), c.certs[0], c.key)
		if err != nil {
			return nil, err
		}
		if err := writeKey(o.path(s.Key), key); err != nil {
			return nil, err
		}
		if err := writeFile(o.path(s.Cert), o.bundle(cert, c.certs), 0o644); err != nil {
			return nil, err
		}
		if s.Kubecfg != "" {
			if err := writeFileKubeconfig(o, s); err != nil {
				return nil, err
			}
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// loadOrNewKey returns the ECDSA key at path, or a new one when regen is
// set or the file is missing or unreadable.
func loadOrNewKey(path string, regen bool) (crypto.Signer, error) {
	if !regen {
		if b, err := os.ReadFile(path); err == nil {
			if k, _, err := pki.ParseKey(b); err == nil {
				return k, nil
			}
		}
	}
	return pki.NewECKey()
}

func writeKey(path string, k crypto.Signer) error {
	b, err := pki.EncodeKey(k)
	if err != nil {
		return err
	}
	return writeFile(path, b, 0o600)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ErrNoCA is returned when an operation needs a CA that the node lacks.
var ErrNoCA = errors.New("CA certificate or key missing")
