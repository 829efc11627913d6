package rotate

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/nodeconfig"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
)

// Gather observes the node and returns the plan input: the node, its
// findings now, which leaves exist, and fingerprints of every file the
// plan will read (certificates, CAs, dynamic-cert.json). The unit's
// environment is read from the real system (see GatherNode).
func Gather(ctx context.Context, o check.Options, method, service, datastoreDesc string) (Input, error) {
	return GatherNode(ctx, GatherOptions{Check: o, Method: method, Service: service, Datastore: datastoreDesc})
}

// GatherOptions are Gather's inputs.
type GatherOptions struct {
	Check     check.Options
	Method    string
	Service   string // e.g. "systemd unit k3s"
	Datastore string // DescribeDatastore
	// Root is the filesystem root for /etc lookups (unit files and their
	// environment files); "" = "/".
	Root string
	// Unit is the service unit; "" = k3s, k3s-agent, rke2-server or
	// rke2-agent by program and role.
	Unit string
	// ClusterListener is the server's part in a cluster rotation
	// (ClusterRenew, ClusterAdopt; "" = a single node).
	ClusterListener string
	// DatastoreEndpoint overrides the node's datastore-endpoint (read from
	// its configuration by internal/nodeconfig when "").
	DatastoreEndpoint string
}

// GatherNode is Gather with all options.
func GatherNode(ctx context.Context, g GatherOptions) (Input, error) {
	o := g.Check
	n, err := check.Resolve(o)
	if err != nil {
		return Input{}, err
	}
	r, _, err := check.RunNode(ctx, n, o)
	if err != nil {
		return Input{}, err
	}
	if g.Root == "" {
		g.Root = o.ConfigRoot
	}
	kc, err := AdminKubeconfig(o, n, g.Root)
	if err != nil {
		return Input{}, err
	}
	endpoint := g.DatastoreEndpoint
	if endpoint == "" && n.Role == k3s.RoleServer {
		endpoint = n.Config.DatastoreEndpoint
	}
	if g.Datastore == "" {
		g.Datastore = DescribeDatastoreAt(n.DataDir, endpoint)
	}
	in := Input{Node: r.Node, Program: n.Program, Profile: n.Profile, Method: g.Method, Service: g.Service, Datastore: g.Datastore,
		Kubeconfig: kc, Now: o.At, Present: map[string]bool{}, Findings: r.Findings, NoOfflineSecret: !OfflineSecretAt(n.DataDir, endpoint),
		SelfSigned: map[string]bool{}, ClusterListener: g.ClusterListener, ExternalDatastore: endpoint != "" && ExternalEtcd(endpoint)}
	ports := n.Ports
	in.Ports = &ports
	unit := g.Unit
	if unit == "" {
		unit = DefaultUnit(n.Program, n.Role)
	}
	env, err := ReadUnitEnv(g.Root, unit, string(n.Program))
	if err != nil {
		return Input{}, err
	}
	in.ExpirationDays, in.ExpirationSource = env.ExpirationDays()
	specs := k3s.Specs(n.Program, n.Profile)
	byID := map[string]k3s.Spec{}
	for _, s := range specs {
		byID[s.ID] = s
	}
	paths := []string{}
	for _, s := range specs {
		if s.Role != k3s.RoleServer || s.Cert == "" {
			continue
		}
		p := filepath.Join(n.DataDir, filepath.FromSlash(s.Cert))
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		in.Present[s.Cert] = true
		if !fi.Mode().IsRegular() {
			// Never opened here (a FIFO would block); the preflight
			// refuses what the backup cannot represent.
			continue
		}
		paths = append(paths, p)
		if selfManaged(n.DataDir, s, byID) {
			in.SelfSigned[s.Cert] = true
		}
	}
	in.Leftovers = presentLeftovers(n.DataDir, n.Program, n.Profile)
	if n.Role == k3s.RoleAgent {
		in.AgentCerts = ReadAgentCerts(n.DataDir, n.Program, n.Profile) // agent.go
	}
	ljson := filepath.Join(n.DataDir, filepath.FromSlash(k3s.ListenerSpec(n.Program).JSONPath))
	if fi, err := os.Lstat(ljson); err == nil && fi.Mode().IsRegular() {
		paths = append(paths, ljson)
	}
	for _, p := range paths {
		if fs, err := Fingerprint(p); err == nil {
			in.Inputs = append(in.Inputs, fs)
		}
	}
	if b, err := source.ReadFile(ljson); err == nil && len(b) > 0 {
		var s corev1.Secret
		if json.Unmarshal(b, &s) == nil && IsStaticListener(&s) {
			in.StaticListener = true
		}
	}
	switch {
	case n.Role != k3s.RoleServer:
	case o.Secret != nil:
		if s, _, err := o.Secret(ctx); err == nil && IsStaticListener(s) {
			in.StaticListener = true
		}
	case in.ExternalDatastore:
		if s, err := readSecretAt(ctx, n, endpoint); err == nil && IsStaticListener(s) {
			in.StaticListener = true
		}
	case exists(filepath.Join(n.DataDir, "server", "db", "etcd")):
		// Embedded etcd runs with K3s now: read the secret's static
		// annotation there (the executor cannot, once K3s is stopped).
		// SQLite is checked by the executor itself, offline.
		if s, err := readSecretOnce(ctx, n); err == nil && IsStaticListener(s) {
			in.StaticListener = true
		}
	}
	return in, nil
}

// AdminKubeconfig is the admin kubeconfig K3s really writes on this node:
// --kubeconfig-admin when given, else write-kubeconfig from config.yaml,
// its config.yaml.d drop-ins, the unit's K3S_KUBECONFIG_OUTPUT or ExecStart
// flags (internal/nodeconfig), else /etc/rancher/<p>/<p>.yaml. root is
// the filesystem root of /etc ("" = "/").
func AdminKubeconfig(o check.Options, n check.Node, root string) (string, error) {
	if o.AdminKubeconfig != "" {
		return o.AdminKubeconfig, nil
	}
	if root == n.ConfigRoot && (n.Config.WriteKubeconfig == "" || filepath.IsAbs(n.Config.WriteKubeconfig)) {
		return n.AdminKubeconfig(), nil // check read the same configuration
	}
	at := func(p string) string {
		if root == "" {
			return p
		}
		return filepath.Join(root, filepath.FromSlash(p))
	}
	cfg, errs := nodeconfig.Load(nodeconfig.Options{Program: n.Program, Role: n.Role, Root: root, ConfigFile: o.ConfigFile})
	if len(errs) > 0 && o.ConfigFile != "" {
		return "", errs[0]
	}
	if cfg.WriteKubeconfig != "" {
		p := cfg.WriteKubeconfig
		if !filepath.IsAbs(p) {
			p = "/" + p // K3s runs with / as its working directory
		}
		return at(filepath.Clean(p)), nil
	}
	return at(k3s.DefaultKubeconfig(n.Program)), nil
}

// readSecretOnce reads the listener secret from the node's datastore.
func readSecretOnce(ctx context.Context, n check.Node) (*corev1.Secret, error) {
	return readSecretAt(ctx, n, "")
}

func readSecretAt(ctx context.Context, n check.Node, endpoint string) (*corev1.Secret, error) {
	st, err := DatastoreSecrets(datastore.NodeOptions{DataDir: n.DataDir, Program: n.Program, Endpoint: endpoint, Timeout: 3 * time.Second})(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Get(ctx)
}

// DefaultUnit is the service unit of a node: k3s, k3s-agent, rke2-server
// or rke2-agent.
func DefaultUnit(p k3s.Program, role k3s.Role) string {
	switch {
	case role == k3s.RoleAgent:
		return string(p) + "-agent"
	case p == k3s.RKE2:
		return "rke2-server"
	}
	return string(p)
}

// selfManaged reports whether a kube-controller-manager/kube-scheduler
// serving certificate is the component's own self-signed pair (written to
// its --cert-dir before K3s signed these with server-ca in 2025): it does
// not verify against server-ca.
func selfManaged(dataDir string, s k3s.Spec, byID map[string]k3s.Spec) bool {
	if !strings.HasPrefix(s.Cert, "server/tls/kube-") {
		return false
	}
	if s.SelfSigned {
		return true
	}
	ca, ok := byID[s.Signer]
	if !ok {
		ca, ok = byID["server-ca"]
	}
	if !ok {
		return false
	}
	lb, err := source.ReadFile(filepath.Join(dataDir, filepath.FromSlash(s.Cert)))
	if err != nil {
		return false
	}
	cb, err := source.ReadFile(filepath.Join(dataDir, filepath.FromSlash(ca.Cert)))
	if err != nil {
		return false
	}
	leaf, err1 := pki.ParseCerts(lb)
	cas, err2 := pki.ParseCerts(cb)
	if err1 != nil || err2 != nil {
		return false
	}
	return pki.SignedBy(leaf[0], cas[0]) != nil
}

// presentLeftovers lists the files (relative) of another generation that
// exist on the node but that its row neither uses nor renews.
func presentLeftovers(dataDir string, p k3s.Program, prof k3s.Profile) []string {
	var out []string
	for _, l := range k3s.Leftovers(p, prof) {
		rel := l.Spec.Cert
		if _, err := os.Stat(filepath.Join(dataDir, filepath.FromSlash(rel))); err == nil {
			out = append(out, rel)
		}
	}
	return out
}

// Report exposes the check report a plan was built from.
func (in Input) Report() []report.Finding { return in.Findings }

// DatastoreSecrets opens the node's datastore offline (K3s stopped) for
// the serving secret.
func DatastoreSecrets(o datastore.NodeOptions) func(ctx context.Context) (SecretStore, error) {
	key := k3s.ListenerSpec(o.Program).SecretKey()
	return func(ctx context.Context) (SecretStore, error) {
		s, err := datastore.OpenNode(o)
		if err != nil {
			return nil, err
		}
		return dsSecrets{s: s, key: key}, nil
	}
}

type dsSecrets struct {
	s   datastore.Secrets
	key string
}

func (d dsSecrets) Get(ctx context.Context) (*corev1.Secret, error) {
	sec, _, err := d.s.Get(ctx, d.key)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	return sec, err
}

func (d dsSecrets) Put(ctx context.Context, s *corev1.Secret) error {
	_, err := d.s.Put(ctx, d.key, s)
	return err
}

func (d dsSecrets) Delete(ctx context.Context) error {
	_, err := d.s.Delete(ctx, d.key)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	return err
}

func (d dsSecrets) Close() error { return d.s.Store.Close() }

// OfflineSecret reports whether the serving secret can be written with
// K3s stopped: kine's SQLite can (through kine's library); K3s's embedded
// etcd cannot (it runs inside K3s); RKE2's etcd can, because it is a
// static pod that keeps running while rke2-server is stopped
// (rancher/rke2@6ce1a8019 bundle/lib/systemd/system/rke2-server.service:
// KillMode=process, ExecStopPost kills only containerd and kubelet).
func OfflineSecret(dataDir string) bool {
	// Embedded etcd wins over a state.db left beside it, as in
	// datastore.OpenNode: a node migrated from SQLite to etcd
	// (--cluster-init) may keep the old file.
	if exists(filepath.Join(dataDir, "server", "db", "etcd")) {
		return isRKE2(dataDir)
	}
	return exists(filepath.Join(dataDir, "server", "db", "state.db"))
}

// ExternalEtcd reports whether a datastore-endpoint is one k3scert reads
// and writes with K3s stopped: an etcd-API endpoint over plain http:// (kine
// in front of any database, or an etcd without client TLS), which keeps
// running while this server is stopped. https:// endpoints are refused
// for now: K3s talks to them with datastore-cafile/-certfile/-keyfile,
// which k3scert does not read; SQL DSNs (mysql://, postgres://) need kine.
func ExternalEtcd(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	for _, ep := range strings.Split(endpoint, ",") {
		if !strings.HasPrefix(strings.TrimSpace(ep), "http://") {
			return false
		}
	}
	return true
}

// OfflineSecretAt is OfflineSecret for a node with its datastore-endpoint
// ("" = embedded).
func OfflineSecretAt(dataDir, endpoint string) bool {
	if endpoint != "" {
		return ExternalEtcd(endpoint)
	}
	return OfflineSecret(dataDir)
}

// DescribeDatastoreAt is DescribeDatastore for a node with its
// datastore-endpoint ("" = embedded). The endpoint is never printed (it
// may hold credentials): only its kind.
func DescribeDatastoreAt(dataDir, endpoint string) string {
	switch {
	case endpoint == "":
		return DescribeDatastore(dataDir)
	case ExternalEtcd(endpoint):
		return "an external etcd-API datastore (datastore-endpoint http://…, kine or etcd), still running while this server is stopped: the secret is read and written through it"
	case strings.HasPrefix(endpoint, "https://"):
		return "an external etcd datastore over TLS (datastore-endpoint https://…): k3scert does not read datastore-cafile/-certfile/-keyfile, so it cannot reach it with the server stopped"
	}
	kind := "SQL"
	if scheme, _, ok := strings.Cut(endpoint, "://"); ok && !strings.ContainsAny(scheme, "@:/") {
		kind = scheme
	}
	return "an external " + kind + " datastore (datastore-endpoint), not reachable by k3scert with the server stopped"
}

// NodeDatastore are the datastore options of a server with its
// datastore-endpoint ("" = embedded).
func NodeDatastore(dataDir string, p k3s.Program, endpoint string) datastore.NodeOptions {
	return datastore.NodeOptions{DataDir: dataDir, Program: p, Endpoint: endpoint}
}

// DescribeDatastore names the datastore for the plan, in the order
// datastore.OpenNode opens them.
func DescribeDatastore(dataDir string) string {
	switch {
	case isRKE2(dataDir) && exists(filepath.Join(dataDir, "server", "db", "etcd")):
		return "embedded etcd (RKE2 static pod, still running while rke2-server is stopped): the secret is written through it"
	case exists(filepath.Join(dataDir, "server", "db", "etcd")):
		return "embedded etcd, which stops with K3s"
	case exists(filepath.Join(dataDir, "server", "db", "state.db")):
		return "sqlite server/db/state.db (kine's table), written offline while K3s is stopped"
	}
	return "an external datastore (or none found), not reachable while K3s is stopped"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// isRKE2 tells an RKE2 data dir by its name or its rke2-controller files.
func isRKE2(dataDir string) bool {
	return strings.Contains(filepath.Base(dataDir), "rke2") ||
		exists(filepath.Join(dataDir, "server", "tls", "client-rke2-controller.key")) ||
		exists(filepath.Join(dataDir, "agent", "client-rke2-controller.crt"))
}
