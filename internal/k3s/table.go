// Package k3s is what K3s (and RKE2) is, as data: the data-dir layout, every
// certificate, key and kubeconfig with its role, signer, expected subject and
// usages, the ports, and the version profiles. It is the only package that
// knows K3s; readers, diagnosis, rotation and the lab consult it.
//
// It must not import os or net: it is data plus pure functions. The node
// generator that writes these files (tests, the lab) is internal/k3s/k3sgen.
package k3s

import (
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Program is the distribution: "k3s" or "rke2". It is spliced into file
// names, CNs, the secret name and paths.
type Program string

// The supported programs.
const (
	K3s  Program = "k3s"
	RKE2 Program = "rke2"
)

// Usage is an extended key usage, named as `k3s certificate check` names it.
type Usage string

// The usages K3s certificates carry.
const (
	ServerAuth Usage = "ServerAuth"
	ClientAuth Usage = "ClientAuth"
	CertSign   Usage = "CertSign"
)

// Role is where a file lives: on every server, or on every node's agent.
type Role string

// Node roles.
const (
	RoleServer Role = "server"
	RoleAgent  Role = "agent"
)

// Spec is one certificate (with or without key), or key-only file, of a node.
// Paths are relative to the data dir and may contain {p} for the program name.
type Spec struct {
	ID      string   // stable identifier, unique across the table
	Service string   // `k3s certificate rotate --service` name; "certificate-authority" for CAs
	Role    Role     // server or agent
	Cert    string   // certificate path, "" for a key-only entry
	Key     string   // private key path, "" when the node has no key (e.g. agent CA copies)
	Signer  string   // ID of the signing CA; "" for a self-signed CA
	CA      bool     // a CA: never renewed by K3s
	CN      string   // expected CN ({p} spliced); for CAs a prefix before "@<unix>"
	Orgs    []string // expected O
	Usages  []Usage  // expected extended key usages
	RSA     bool     // RSA key (service.key); otherwise ECDSA P-256
	Copy    bool     // a copy of another entry's certificate (agent/client-ca.crt)
	Legacy  Legacy   // which naming generations have this entry
	Kubecfg string   // the kubeconfig in server/cred or agent/ that references this cert, if any
	Serving bool     // a serving certificate whose SANs matter
	// Optional: not every release of the profile has it (the version that
	// added it is not confirmed), so its absence is not a finding.
	Optional bool
	// Gate restricts the entry to the matrix rows with (or without) a
	// feature; see Gate.
	Gate Gate
	// SelfSigned: the certificate is signed by a CA bundled in the same file
	// that K3s does not manage (kube-controller-manager/kube-scheduler with
	// --cert-dir); judged against its own chain, never renewed by K3s.
	SelfSigned bool
	// Port is the loopback TLS port that serves this certificate, if any.
	Port int
	// External: K3s does not write this file on a default node (a custom
	// CA, the chain-less copies of an intermediate-CA setup, Rancher's
	// --cert-dir pairs); the node generator skips it.
	External bool
}

// Gate selects the matrix rows an entry exists on.
type Gate int

// Gates.
const (
	AllRows         Gate = iota
	KeepsProxyCerts      // rows that still sign server/tls/client-kube-proxy.crt and client-<p>-controller.crt
	CASignedKCM          // rows with CA-signed kube-scheduler/kube-controller-manager serving certs
	SelfSignedKCM        // rows before them (the certs exist only with Rancher's --cert-dir)
)

func (g Gate) in(p Profile) bool {
	switch g {
	case KeepsProxyCerts:
		return true // the key stays on every row; keyOnly drops the certificate
	case CASignedKCM:
		return p.KCMSchedulerServing
	case SelfSignedKCM:
		return !p.KCMSchedulerServing
	}
	return true
}

// Legacy tells in which naming generation an entry exists.
type Legacy int

// Naming generations.
const (
	Both       Legacy = iota // present in v1.18 and later
	OnlyLegacy               // v1.18 name only
	OnlyModern               // v1.19+ name only
)

func (l Legacy) in(p Profile) bool {
	switch l {
	case OnlyLegacy:
		return p.LegacyNames
	case OnlyModern:
		return !p.LegacyNames
	}
	return true
}

const masters = "system:masters"

// table is the raw list; Specs resolves it for a program and profile.
var table = []Spec{
	// CAs (facts §1.1, §1.2). Never renewed by K3s, never rotated by default.
	{ID: "server-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/server-ca.crt", Key: "server/tls/server-ca.key", CA: true, CN: "{p}-server-ca", Usages: []Usage{CertSign}},
	{ID: "client-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/client-ca.crt", Key: "server/tls/client-ca.key", CA: true, CN: "{p}-client-ca", Usages: []Usage{CertSign}},
	{ID: "request-header-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/request-header-ca.crt", Key: "server/tls/request-header-ca.key", CA: true, CN: "{p}-request-header-ca", Usages: []Usage{CertSign}},
	{ID: "etcd-server-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/etcd/server-ca.crt", Key: "server/tls/etcd/server-ca.key", CA: true, CN: "etcd-server-ca", Usages: []Usage{CertSign}},
	{ID: "etcd-peer-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/etcd/peer-ca.crt", Key: "server/tls/etcd/peer-ca.key", CA: true, CN: "etcd-peer-ca", Usages: []Usage{CertSign}},

	// Server leaves under server/tls (facts §1.2).
	{ID: "client-admin", Service: "admin", Role: RoleServer, Cert: "server/tls/client-admin.crt", Key: "server/tls/client-admin.key", Signer: "client-ca", CN: "system:admin", Orgs: []string{masters}, Usages: []Usage{ClientAuth}, Kubecfg: "server/cred/admin.kubeconfig"},
	{ID: "client-supervisor", Service: "supervisor", Role: RoleServer, Cert: "server/tls/client-supervisor.crt", Key: "server/tls/client-supervisor.key", Signer: "client-ca", CN: "system:{p}-supervisor", Orgs: []string{masters}, Usages: []Usage{ClientAuth}, Legacy: OnlyModern, Kubecfg: "server/cred/supervisor.kubeconfig", Optional: true},
	{ID: "client-controller", Service: "controller-manager", Role: RoleServer, Cert: "server/tls/client-controller.crt", Key: "server/tls/client-controller.key", Signer: "client-ca", CN: "system:kube-controller-manager", Usages: []Usage{ClientAuth}, Kubecfg: "server/cred/controller.kubeconfig"},
	{ID: "client-scheduler", Service: "scheduler", Role: RoleServer, Cert: "server/tls/client-scheduler.crt", Key: "server/tls/client-scheduler.key", Signer: "client-ca", CN: "system:kube-scheduler", Usages: []Usage{ClientAuth}, Kubecfg: "server/cred/scheduler.kubeconfig"},
	// CN and O per row (Profile.KubeAPIServerCN): kube-apiserver without O
	// until v1.24.0 (k3s@99851b0f8).
	{ID: "client-kube-apiserver", Service: "api-server", Role: RoleServer, Cert: "server/tls/client-kube-apiserver.crt", Key: "server/tls/client-kube-apiserver.key", Signer: "client-ca", CN: "system:apiserver", Orgs: []string{masters}, Usages: []Usage{ClientAuth}, Kubecfg: "server/cred/api-server.kubeconfig"},
	// Removed at every start since v1.33.3/v1.32.7/v1.31.11 (k3s@40d5b9a52
	// cleanupLegacyCerts); only the keys remain (deps.go@2a1e2e8:405-411).
	{ID: "client-kube-proxy", Service: "kube-proxy", Role: RoleServer, Cert: "server/tls/client-kube-proxy.crt", Key: "server/tls/client-kube-proxy.key", Signer: "client-ca", CN: "system:kube-proxy", Usages: []Usage{ClientAuth}, Gate: KeepsProxyCerts},
	{ID: "client-k3s-controller", Service: "{p}-controller", Role: RoleServer, Cert: "server/tls/client-{p}-controller.crt", Key: "server/tls/client-{p}-controller.key", Signer: "client-ca", CN: "system:{p}-controller", Usages: []Usage{ClientAuth}, Gate: KeepsProxyCerts},
	{ID: "client-cloud-controller", Service: "cloud-controller", Role: RoleServer, Cert: "server/tls/client-{p}-cloud-controller.crt", Key: "server/tls/client-{p}-cloud-controller.key", Signer: "client-ca", CN: "{p}-cloud-controller-manager", Usages: []Usage{ClientAuth}, Legacy: OnlyModern, Kubecfg: "server/cred/cloud-controller.kubeconfig"},
	{ID: "client-cloud-controller", Service: "cloud-controller", Role: RoleServer, Cert: "server/tls/client-cloud-controller.crt", Key: "server/tls/client-cloud-controller.key", Signer: "client-ca", CN: "cloud-controller-manager", Usages: []Usage{ClientAuth}, Legacy: OnlyLegacy, Kubecfg: "server/cred/cloud-controller.kubeconfig"},
	{ID: "client-auth-proxy", Service: "auth-proxy", Role: RoleServer, Cert: "server/tls/client-auth-proxy.crt", Key: "server/tls/client-auth-proxy.key", Signer: "request-header-ca", CN: "system:auth-proxy", Usages: []Usage{ClientAuth}},
	{ID: "serving-kube-apiserver", Service: "api-server", Role: RoleServer, Cert: "server/tls/serving-kube-apiserver.crt", Key: "server/tls/serving-kube-apiserver.key", Signer: "server-ca", CN: "kube-apiserver", Usages: []Usage{ServerAuth}, Serving: true},
	// kube-scheduler / kube-controller-manager serving certificates
	// (rancher/rancher#41125). Since v1.33.1/v1.32.5/v1.31.9 K3s signs them
	// with server-ca, SANs localhost, 127.0.0.1, ::1 (deps.go@2a1e2e8:454-469,
	// k3s PR #12285). Before, the components make a self-signed 1-year pair
	// themselves: in memory, or as <cert-dir>/<component>.{crt,key} when
	// Rancher passes --cert-dir=<data-dir>/server/tls/<component>
	// (k3s-io/k3s#10176, rancher/rke2#8305); nobody renews those.
	{ID: "serving-kube-scheduler", Service: "scheduler", Role: RoleServer, Cert: "server/tls/kube-scheduler/kube-scheduler.crt", Key: "server/tls/kube-scheduler/kube-scheduler.key", Signer: "server-ca", CN: "kube-scheduler", Usages: []Usage{ServerAuth}, Serving: true, Gate: CASignedKCM, Port: 10259},
	{ID: "serving-kube-controller-manager", Service: "controller-manager", Role: RoleServer, Cert: "server/tls/kube-controller-manager/kube-controller-manager.crt", Key: "server/tls/kube-controller-manager/kube-controller-manager.key", Signer: "server-ca", CN: "kube-controller-manager", Usages: []Usage{ServerAuth}, Serving: true, Gate: CASignedKCM, Port: 10257},
	{ID: "serving-kube-scheduler", Service: "scheduler", Role: RoleServer, Cert: "server/tls/kube-scheduler/kube-scheduler.crt", Key: "server/tls/kube-scheduler/kube-scheduler.key", SelfSigned: true, CN: "localhost", Usages: []Usage{ServerAuth}, Serving: true, Gate: SelfSignedKCM, Optional: true, External: true, Port: 10259},
	{ID: "serving-kube-controller-manager", Service: "controller-manager", Role: RoleServer, Cert: "server/tls/kube-controller-manager/kube-controller-manager.crt", Key: "server/tls/kube-controller-manager/kube-controller-manager.key", SelfSigned: true, CN: "localhost", Usages: []Usage{ServerAuth}, Serving: true, Gate: SelfSignedKCM, Optional: true, External: true, Port: 10257},

	// Custom CA layouts (k3s-io/k3s contrib/util/generate-custom-ca-certs.sh)
	// and the chain-less copies K3s writes since intermediate CAs are
	// supported (deps.go@2a1e2e8:115-117). Present only on some nodes.
	{ID: "root-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/root-ca.crt", Key: "server/tls/root-ca.key", CA: true, CN: "", Usages: []Usage{CertSign}, Optional: true, External: true},
	{ID: "intermediate-ca", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/intermediate-ca.crt", Key: "server/tls/intermediate-ca.key", CA: true, CN: "", Usages: []Usage{CertSign}, Optional: true, External: true},
	{ID: "client-ca-nochain", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/client-ca.nochain.crt", CA: true, Copy: true, CN: "{p}-client-ca", Usages: []Usage{CertSign}, Optional: true, External: true},
	{ID: "server-ca-nochain", Service: "certificate-authority", Role: RoleServer, Cert: "server/tls/server-ca.nochain.crt", CA: true, Copy: true, CN: "{p}-server-ca", Usages: []Usage{CertSign}, Optional: true, External: true},
	{ID: "service-current-key", Service: "service-account", Role: RoleServer, Key: "server/tls/service.current.key", RSA: true, Optional: true, External: true},

	{ID: "etcd-client", Service: "etcd", Role: RoleServer, Cert: "server/tls/etcd/client.crt", Key: "server/tls/etcd/client.key", Signer: "etcd-server-ca", CN: "etcd-client", Usages: []Usage{ClientAuth}},
	{ID: "etcd-server-client", Service: "etcd", Role: RoleServer, Cert: "server/tls/etcd/server-client.crt", Key: "server/tls/etcd/server-client.key", Signer: "etcd-server-ca", CN: "etcd-server", Usages: []Usage{ServerAuth, ClientAuth}, Serving: true},
	{ID: "etcd-peer-server-client", Service: "etcd", Role: RoleServer, Cert: "server/tls/etcd/peer-server-client.crt", Key: "server/tls/etcd/peer-server-client.key", Signer: "etcd-peer-ca", CN: "etcd-peer", Usages: []Usage{ServerAuth, ClientAuth}, Serving: true},

	// Key-only files (facts §1.2).
	{ID: "client-kubelet-key", Service: "kubelet", Role: RoleServer, Key: "server/tls/client-kubelet.key"},
	{ID: "serving-kubelet-key", Service: "kubelet", Role: RoleServer, Key: "server/tls/serving-kubelet.key"},
	{ID: "service-key", Service: "service-account", Role: RoleServer, Key: "server/tls/service.key", RSA: true},

	// Agent files, fetched from a server on every agent start (facts §1.3, §6.2).
	{ID: "agent-client-ca", Service: "kubelet", Role: RoleAgent, Cert: "agent/client-ca.crt", Signer: "", CA: true, Copy: true, CN: "{p}-client-ca", Usages: []Usage{CertSign}},
	{ID: "agent-server-ca", Service: "kubelet", Role: RoleAgent, Cert: "agent/server-ca.crt", Signer: "", CA: true, Copy: true, CN: "{p}-server-ca", Usages: []Usage{CertSign}},
	{ID: "agent-serving-kubelet", Service: "kubelet", Role: RoleAgent, Cert: "agent/serving-kubelet.crt", Key: "agent/serving-kubelet.key", Signer: "server-ca", CN: "{node}", Usages: []Usage{ServerAuth}, Serving: true},
	{ID: "agent-client-kubelet", Service: "kubelet", Role: RoleAgent, Cert: "agent/client-kubelet.crt", Key: "agent/client-kubelet.key", Signer: "client-ca", CN: "system:node:{node}", Orgs: []string{"system:nodes"}, Usages: []Usage{ClientAuth}, Kubecfg: "agent/kubelet.kubeconfig"},
	{ID: "agent-client-kube-proxy", Service: "kube-proxy", Role: RoleAgent, Cert: "agent/client-kube-proxy.crt", Key: "agent/client-kube-proxy.key", Signer: "client-ca", CN: "system:kube-proxy", Usages: []Usage{ClientAuth}, Kubecfg: "agent/kubeproxy.kubeconfig"},
	{ID: "agent-client-k3s-controller", Service: "{p}-controller", Role: RoleAgent, Cert: "agent/client-{p}-controller.crt", Key: "agent/client-{p}-controller.key", Signer: "client-ca", CN: "system:{p}-controller", Usages: []Usage{ClientAuth}, Kubecfg: "agent/{p}controller.kubeconfig"},
}

// Listener describes the supervisor's dynamiclistener certificate
// (facts §3): one certificate kept in two places.
type Listener struct {
	JSONPath   string   // dynamic-cert.json, relative to the data dir
	Trigger    string   // dynamic-cert-regenerate trigger file
	Namespace  string   // secret namespace
	SecretName string   // secret name
	CN         string   // CN and O of the certificate
	Orgs       []string // O
	Signer     string   // ID of the signing CA
}

// ListenerSpec returns where the listener certificate lives for a program.
func ListenerSpec(p Program) Listener {
	return Listener{
		JSONPath:   "server/tls/dynamic-cert.json",
		Trigger:    "server/tls/dynamic-cert-regenerate",
		Namespace:  "kube-system",
		SecretName: string(p) + "-serving",
		CN:         string(p),
		Orgs:       []string{string(p)},
		Signer:     "server-ca",
	}
}

// SecretKey is the datastore key of the listener secret.
func (l Listener) SecretKey() string {
	return "/registry/secrets/" + l.Namespace + "/" + l.SecretName
}

// Datastore describes where a server keeps its cluster state (facts §5).
type Datastore struct {
	SQLite        string // kine's SQLite database (default datastore)
	KineSocket    string // the unix socket kine listens on while K3s runs
	EtcdDir       string // embedded etcd data dir (--cluster-init)
	EtcdEndpoint  string // embedded etcd client URL
	EtcdCA        string // spec ID of the CA that signs etcd's serving certificate
	EtcdClient    string // spec ID of the etcd client certificate
	EncryptionCfg string // EncryptionConfiguration written by --secrets-encryption
	SecretsPrefix string // key prefix of Secret objects
}

// DatastoreSpec returns the datastore layout of a server (paths relative to
// the data dir). The layout is the same for k3s and rke2.
func DatastoreSpec(p Program) Datastore {
	return Datastore{
		SQLite:        "server/db/state.db",
		KineSocket:    "server/kine.sock",
		EtcdDir:       "server/db/etcd",
		EtcdEndpoint:  "https://127.0.0.1:2379",
		EtcdCA:        "etcd-server-ca",
		EtcdClient:    "etcd-client",
		EncryptionCfg: "server/cred/encryption-config.json",
		SecretsPrefix: "/registry/secrets/",
	}
}

// SecretKey is the datastore key of any Secret (kube-apiserver's layout).
func (d Datastore) SecretKey(namespace, name string) string {
	return d.SecretsPrefix + namespace + "/" + name
}

// AdminCN and AdminOrg are the identity of an ephemeral admin client certificate, as
// K3s issues client-admin.crt (facts §1.2).
const (
	AdminCN  = "system:admin"
	AdminOrg = masters
)

// Ports are the node's TLS listeners.
type Ports struct {
	Supervisor        int // dynamiclistener (k3s: 6443, rke2: 9345)
	APIServer         int // kube-apiserver (k3s: 6444, rke2: 6443)
	Kubelet           int // 10250
	Etcd              int // 2379
	ControllerManager int // kube-controller-manager secure port 10257 (0: not probed)
	Scheduler         int // kube-scheduler secure port 10259 (0: not probed)
}

// DefaultPorts returns the well-known ports of a program.
func DefaultPorts(p Program) Ports {
	if p == RKE2 {
		return Ports{Supervisor: 9345, APIServer: 6443, Kubelet: 10250, Etcd: 2379, ControllerManager: 10257, Scheduler: 10259}
	}
	return Ports{Supervisor: 6443, APIServer: 6444, Kubelet: 10250, Etcd: 2379, ControllerManager: 10257, Scheduler: 10259}
}

// DefaultDataDir is where the program keeps its state.
func DefaultDataDir(p Program) string { return "/var/lib/rancher/" + string(p) }

// DefaultKubeconfig is the admin kubeconfig K3s writes on every server start.
func DefaultKubeconfig(p Program) string {
	return "/etc/rancher/" + string(p) + "/" + string(p) + ".yaml"
}

// DefaultConfigFile is the K3s config file that may carry tls-san entries.
func DefaultConfigFile(p Program) string {
	return "/etc/rancher/" + string(p) + "/config.yaml"
}

// Kubeconfigs lists the kubeconfig files K3s writes under the data dir, each
// referencing certificate files by path (facts §1.4).
func Kubeconfigs(p Program, prof Profile) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range Specs(p, prof) {
		if s.Kubecfg != "" && !seen[s.Kubecfg] {
			seen[s.Kubecfg] = true
			out = append(out, s.Kubecfg)
		}
	}
	sort.Strings(out)
	return out
}

// Specs returns the table resolved for a program and profile, sorted by ID.
func Specs(p Program, prof Profile) []Spec {
	k := specsKey{p, prof.Name}
	if c, ok := specsCache.Load(k); ok {
		if e := c.(specsEntry); reflect.DeepEqual(e.prof, prof) {
			return append([]Spec(nil), e.specs...)
		}
	}
	out := buildSpecs(p, prof)
	specsCache.Store(k, specsEntry{prof, out})
	return append([]Spec(nil), out...)
}

// specsCache keeps each (program, row) resolution: Specs is called per
// certificate and per finding (ByID), and resolving the table each time was
// half of check's CPU (bench/). A profile that differs from the cached one
// under the same name (tests build such) is resolved afresh.
var specsCache sync.Map

type specsKey struct {
	p    Program
	name string
}

type specsEntry struct {
	prof  Profile
	specs []Spec
}

func buildSpecs(p Program, prof Profile) []Spec {
	var out []Spec
	for _, s := range table {
		if !s.Legacy.in(prof) || !s.Gate.in(prof) {
			continue
		}
		if s.Gate == KeepsProxyCerts && prof.DeletesLegacyProxyCerts {
			// Only the key remains: the server signs agents' CSRs for
			// these identities with it (deps.go@2a1e2e8:405-411).
			s.Cert, s.Signer, s.CN, s.Usages, s.Orgs = "", "", "", nil, nil
		}
		if s.ID == "client-kube-apiserver" && prof.KubeAPIServerCN != "" {
			s.CN, s.Orgs = prof.KubeAPIServerCN, prof.KubeAPIServerOrgs
		}
		out = append(out, s.resolve(p))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Leftover is a file of an older generation that the node's row neither
// writes, renews nor (except RemovedAtStart) removes.
type Leftover struct {
	Spec Spec
	// RemovedAtStart: K3s of this row deletes the file at its next start
	// (client-kube-proxy.crt and client-<p>-controller.crt since v1.33.3).
	RemovedAtStart bool
	// Why says in words where the file comes from.
	Why string
}

// Leftovers lists the certificate files that exist on nodes of older rows
// but are unused on this row: the pre-v1.21.2 client-cloud-controller.crt
// (K3s never removes it, k3s@4b2ab8b51) and, on deleting rows, the two
// server-side proxy certificates.
func Leftovers(p Program, prof Profile) []Leftover {
	var out []Leftover
	seen := map[string]bool{}
	for _, s := range table {
		if s.Cert == "" || (s.Legacy.in(prof) && s.Gate.in(prof) && !(s.Gate == KeepsProxyCerts && prof.DeletesLegacyProxyCerts)) {
			continue
		}
		r := s.resolve(p)
		if seen[r.Cert] || inRow(p, prof, r.Cert) {
			continue
		}
		seen[r.Cert] = true
		switch {
		case s.Legacy == OnlyLegacy && !prof.LegacyNames:
			out = append(out, Leftover{Spec: r, Why: "written by K3s before v1.21.2 under its old name; current K3s uses " + modernTwin(p, s.ID) + " and never renews or removes the old file"})
		case s.Gate == KeepsProxyCerts && prof.DeletesLegacyProxyCerts:
			out = append(out, Leftover{Spec: r, RemovedAtStart: true, Why: "no longer used since v1.33.3/v1.32.7/v1.31.11: K3s deletes it at every start (only the key is kept)"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Cert < out[j].Spec.Cert })
	return out
}

func inRow(p Program, prof Profile, rel string) bool {
	for _, s := range Specs(p, prof) {
		if s.Cert == rel {
			return true
		}
	}
	return false
}

func modernTwin(p Program, id string) string {
	for _, s := range table {
		if s.ID == id && s.Legacy == OnlyModern {
			return s.resolve(p).Cert
		}
	}
	return id
}

// NodeFiles is the exact set of files (relative to the data dir) the table
// names for a node of this row and role: certificates, keys, kubeconfigs
// under the data dir and the listener's dynamic-cert.json. A server also
// holds its embedded agent's files. Optional entries are included (they may
// exist); leftovers are not (see Leftovers). Nothing else under the data dir
// is K3s certificate state: backup, restore and verify touch only these.
func NodeFiles(p Program, prof Profile, role Role) []string {
	seen := map[string]bool{}
	var out []string
	add := func(rel string) {
		if rel != "" && !seen[rel] {
			seen[rel] = true
			out = append(out, rel)
		}
	}
	for _, s := range Specs(p, prof) {
		if role == RoleAgent && s.Role != RoleAgent {
			continue
		}
		add(s.Cert)
		add(s.Key)
		add(s.Kubecfg)
	}
	if role == RoleServer {
		l := ListenerSpec(p)
		add(l.JSONPath)
	}
	sort.Strings(out)
	return out
}

// AllFiles is every certificate or key path any row names for the program
// (leftovers included): what the file reader may open.
func AllFiles(p Program) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range table {
		r := s.resolve(p)
		for _, f := range []string{r.Cert, r.Key} {
			if f != "" && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sort.Strings(out)
	return out
}

// NotK3sDirs are directories under the data dir that hold no K3s
// certificate state and are never read, backed up or restored: containerd's
// root and state (image snapshots full of foreign, often expired CAs),
// airgap image tarballs, registry configuration, kubelet and static-pod
// state, and kube-apiserver's own temporary certs
// (pkg/agent/config/config.go@2a1e2e8:550,567-577). The `k3s certificate
// rotate` backups server/tls-<unix> and agent/tls-<unix>
// (pkg/cli/cert/cert.go@2a1e2e8:327) are matched by IsRotateBackupDir.
var NotK3sDirs = []string{
	"agent/containerd", "agent/images", "agent/etc", "agent/kubelet", "agent/pod-manifests",
	"server/tls/temporary-certs",
}

// IsRotateBackupDir reports whether a directory name is a `k3s
// certificate rotate` backup (tls-<unix seconds>).
func IsRotateBackupDir(name string) bool {
	rest, ok := strings.CutPrefix(name, "tls-")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// RegistryCertsDir holds containerd's per-registry configuration and CA
// files (hosts.toml, ca.crt ...): user certificates that K3s never writes
// or renews.
const RegistryCertsDir = "agent/etc/containerd/certs.d"

// ByID returns the resolved spec with the given ID.
func ByID(p Program, prof Profile, id string) (Spec, bool) {
	for _, s := range Specs(p, prof) {
		if s.ID == id {
			return s, true
		}
	}
	return Spec{}, false
}

// ByPath returns the resolved spec whose certificate or key file is rel
// (relative to the data dir, slash-separated). Both naming generations are
// searched, so a v1.18 file is recognised under any profile.
func ByPath(p Program, rel string) (Spec, bool) {
	for _, s := range table {
		r := s.resolve(p)
		if r.Cert == rel || r.Key == rel {
			return r, true
		}
	}
	return Spec{}, false
}

func (s Spec) resolve(p Program) Spec {
	r := func(v string) string { return strings.ReplaceAll(v, "{p}", string(p)) }
	s.Service = r(s.Service)
	s.Cert = r(s.Cert)
	s.Key = r(s.Key)
	s.CN = r(s.CN)
	s.Kubecfg = r(s.Kubecfg)
	return s
}

// MatchesCN reports whether cn is what the spec expects. CAs carry
// "<prefix>@<unix>"; node-specific CNs carry the node name.
func (s Spec) MatchesCN(cn string) bool {
	if s.CA || s.SelfSigned {
		return cn == s.CN || strings.HasPrefix(cn, s.CN+"@")
	}
	if strings.Contains(s.CN, "{node}") {
		pre, post, _ := strings.Cut(s.CN, "{node}")
		return len(cn) > len(pre)+len(post) && strings.HasPrefix(cn, pre) && strings.HasSuffix(cn, post)
	}
	return cn == s.CN
}

// Renewable reports whether K3s itself renews this entry on restart (leaf
// certificates under server/tls). Agent leaves are renewed by restarting the
// agent; CAs are never renewed.
// Self-signed serving certificates (kube-* with --cert-dir) are not K3s's:
// the component regenerates them only when the pair is missing.
func (s Spec) Renewable() bool { return !s.CA && s.Cert != "" && !s.SelfSigned }

// ServiceIP is the apiserver's service IP in the default service CIDR
// 10.43.0.0/16; K3s adds it to config.SANs (facts §1.2).
const ServiceIP = "10.43.0.1"

// APIServerDNSNames are the DNS SANs of serving-kube-apiserver (facts §1.2).
func APIServerDNSNames(prof Profile, clusterDomain string) []string {
	if prof.LegacyNames {
		return []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"}
	}
	return []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain(clusterDomain)}
}

// ListenerDNSNames are the DNS SANs the supervisor listener is configured
// with besides --tls-san (facts §3.1).
func ListenerDNSNames(prof Profile, clusterDomain string) []string {
	if prof.LegacyNames {
		return []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc." + domain(clusterDomain)}
	}
	return []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain(clusterDomain)}
}

func domain(d string) string {
	if d == "" {
		return "cluster.local"
	}
	return d
}
