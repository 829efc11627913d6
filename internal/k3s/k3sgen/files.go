package k3sgen

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// writeFileKubeconfig writes a server/cred or agent kubeconfig that references
// its files by path, as deps.KubeConfig() does (facts §1.4).
func writeFileKubeconfig(o Options, s k3s.Spec) error {
	caFile := o.path("server/tls/server-ca.crt")
	server := fmt.Sprintf("https://127.0.0.1:%d", o.APIServerPort)
	if s.Role == k3s.RoleAgent {
		caFile = o.path("agent/server-ca.crt")
		server = fmt.Sprintf("https://127.0.0.1:%d", o.SupervisorPort)
	}
	body := fmt.Sprintf(`apiVersion: v1
clusters:
- cluster:
    server: %s
    certificate-authority: %s
  name: local
contexts:
- context:
    cluster: local
    namespace: default
    user: user
  name: Default
current-context: Default
kind: Config
preferences: {}
users:
- name: user
  user:
    client-certificate: %s
    client-key: %s
`, server, caFile, o.path(s.Cert), o.path(s.Key))
	return writeFile(o.path(s.Kubecfg), []byte(body), 0o600)
}

// writeAdminKubeconfig writes k3s.yaml with the admin credentials embedded,
// as every server start does (facts §1.4).
func writeAdminKubeconfig(o Options) error {
	ca, err := os.ReadFile(o.path("server/tls/server-ca.crt"))
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(o.path("server/tls/client-admin.crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(o.path("server/tls/client-admin.key"))
	if err != nil {
		return err
	}
	// K3s writes https://127.0.0.1:<HTTPSPort>: the supervisor port 6443
	// for K3s, kube-apiserver's 6443 for RKE2 (pkg/server/server.go@2a1e2e8
	// writeKubeConfig; audit L4).
	port := o.SupervisorPort
	if o.Program == k3s.RKE2 {
		port = o.APIServerPort
	}
	return writeFile(o.Kubeconfig, AdminKubeconfig(fmt.Sprintf("https://127.0.0.1:%d", port), ca, crt, key), 0o600)
}

// AdminKubeconfig renders a kubeconfig with embedded data, in the shape of
// K3s's k3s.yaml.
func AdminKubeconfig(server string, ca, crt, key []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	return []byte(fmt.Sprintf(`apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: %s
    server: %s
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: %s
    client-key-data: %s
`, b64(ca), server, b64(crt), b64(key)))
}

// ListenerSecret is the JSON shape of dynamic-cert.json and of the
// k3s-serving secret: a v1.Secret of type kubernetes.io/tls.
type ListenerSecret struct {
	Kind       string            `json:"kind,omitempty"`
	APIVersion string            `json:"apiVersion,omitempty"`
	Metadata   ListenerMeta      `json:"metadata"`
	Data       map[string][]byte `json:"data"`
	Type       string            `json:"type"`
}

// ListenerMeta is the part of ObjectMeta dynamiclistener fills in.
type ListenerMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ListenerSANs are the names the listener certificate carries on a fresh
// node: the configured SANs plus 127.0.0.1 and the node IPs.
func (o Options) ListenerSANs() ([]string, []net.IP) {
	o.defaults()
	dns, ips := o.configSANs()
	return append(k3s.ListenerDNSNames(o.Profile, o.ClusterDomain), dns...), ips
}

// ensureListener writes dynamic-cert.json as dynamiclistener would on first
// start, when it is missing.
func ensureListener(o Options, c *ca, now time.Time) error {
	if _, err := os.Stat(o.path(k3s.ListenerSpec(o.Program).JSONPath)); err == nil {
		return nil
	}
	key, err := pki.NewECKey()
	if err != nil {
		return err
	}
	l := k3s.ListenerSpec(o.Program)
	dns, ips := o.ListenerSANs()
	nb := now.Add(-time.Hour)
	cert, err := pki.SignLeaf(pki.LeafRequest{CN: l.CN, Orgs: l.Orgs, DNSNames: dns, IPs: ips,
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: nb, NotAfter: nb.Add(pki.Days(o.ValidityDays))},
		key.Public(), c.certs[0], c.key)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	b, err := MarshalListenerFor(o.Program, o.Profile, append([]*x509.Certificate{cert}, c.certs...), keyPEM, false)
	if err != nil {
		return err
	}
	return writeFile(o.path(l.JSONPath), b, 0o600)
}

// MarshalListener encodes a listener secret (chain + key) with the
// annotations dynamiclistener sets: one cn-<name> per SAN and the SHA1
// fingerprint (facts §3.2).
// The keys follow the current dynamiclistener (IPv6, wildcards and long
// names hashed); MarshalListenerFor uses a row's release.
func MarshalListener(p k3s.Program, chain []*x509.Certificate, keyPEM []byte) ([]byte, error) {
	return MarshalListenerFor(p, k3s.ProfileCurrent, chain, keyPEM, false)
}

// MarshalListenerFor is MarshalListener with the annotation keys of the
// row's dynamiclistener (k3s.ListenerAnnotationKey) and, when static, the
// listener.cattle.io/static annotation of a user-provided certificate.
func MarshalListenerFor(p k3s.Program, prof k3s.Profile, chain []*x509.Certificate, keyPEM []byte, static bool) ([]byte, error) {
	l := k3s.ListenerSpec(p)
	ann := map[string]string{"listener.cattle.io/fingerprint": fmt.Sprintf("SHA1=%X", sha1.Sum(chain[0].Raw))}
	for _, n := range pki.SANs(chain[0]) {
		if k, ok := k3s.ListenerAnnotationKey(prof, n); ok {
			ann[k] = n
		}
	}
	if static {
		ann[k3s.ListenerStaticAnnotation] = "true"
	}
	s := ListenerSecret{Kind: "Secret", APIVersion: "v1",
		Metadata: ListenerMeta{Name: l.SecretName, Namespace: l.Namespace, Annotations: ann},
		Data:     map[string][]byte{"tls.crt": pki.EncodeCerts(chain...), "tls.key": keyPEM},
		Type:     "kubernetes.io/tls"}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// SHA1Fingerprint is the listener.cattle.io/fingerprint annotation value.
func SHA1Fingerprint(c *x509.Certificate) string { return fmt.Sprintf("SHA1=%X", sha1.Sum(c.Raw)) }
