// Package check wires the sources, the K3s table and the diagnosis into the
// inventory of one node: what `k3scert check`, `forecast`, `serve` and
// `rotate` all start from.
package check

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/nodeconfig"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"sigs.k8s.io/yaml"
)

// Options say what to look at.
type Options struct {
	DataDir string      // "" = the program's default
	Program k3s.Program // "" = detect
	// Profile forces a version profile; "" = from Version, else detected.
	Profile string
	// Version is the node's K3s version ("v1.18.6+k3s1"), when known.
	Version string
	At      time.Time
	// AdminKubeconfig is K3s's own k3s.yaml; "" = the default path.
	AdminKubeconfig string
	// Kubeconfigs are copies to compare (--compare-kubeconfig).
	Kubeconfigs []string
	// Endpoints are explicit host:port endpoints; when empty the defaults
	// are probed and only reported when they answer.
	Endpoints  []string
	NoEndpoint bool
	// Timeout per endpoint.
	Timeout time.Duration
	// ConfigFile is K3s's config.yaml (for tls-san); "" = default path.
	ConfigFile string
	TLSSANs    []string
	NodeIPs    []string
	// Secret fetches the listener secret (API or datastore); nil skips it.
	Secret source.SecretGetter
	// Ports override the program's default ports (lab nodes).
	Ports *k3s.Ports
	// ConfigRoot is the filesystem root under which /etc/rancher/<p> and the
	// systemd unit are read ("" = "/"; tests use a directory).
	ConfigRoot string
	// UnitFile is the K3s unit file; "" = searched (nodeconfig.Load).
	UnitFile string
}

// ErrNoDataDir means there is nothing to judge: exit 3.
var ErrNoDataDir = errors.New("data dir not found")

// Node is the resolved view of the node.
type Node struct {
	DataDir       string
	Program       k3s.Program
	Role          k3s.Role
	Profile       k3s.Profile
	ProfileSource string
	Ports         k3s.Ports
	// Config is the node's configuration as K3s reads it (config.yaml,
	// drop-ins, the unit's flags); ConfigErrors the files that failed.
	Config       nodeconfig.Config
	ConfigErrors []*nodeconfig.FileError
	// ConfigRoot is Options.ConfigRoot: absolute paths from the
	// configuration live under it.
	ConfigRoot string
}

func rooted(root, p string) string {
	if root == "" || p == "" || !filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// AdminKubeconfig is the kubeconfig K3s writes on this node's server
// starts: --write-kubeconfig (config or unit) or the default.
func (n Node) AdminKubeconfig() string {
	if n.Config.WriteKubeconfig != "" {
		return rooted(n.ConfigRoot, n.Config.WriteKubeconfig)
	}
	return rooted(n.ConfigRoot, k3s.DefaultKubeconfig(n.Program))
}

// Resolve finds the data dir, program, role and profile.
func Resolve(o Options) (Node, error) {
	n := Node{Program: o.Program, DataDir: o.DataDir, ConfigRoot: o.ConfigRoot}
	if n.DataDir == "" {
		if n.Program == "" {
			n.Program = k3s.K3s
			if _, err := os.Stat(rooted(o.ConfigRoot, k3s.DefaultDataDir(k3s.K3s))); err != nil {
				if _, err := os.Stat(rooted(o.ConfigRoot, k3s.DefaultDataDir(k3s.RKE2))); err == nil {
					n.Program = k3s.RKE2
				}
			}
		}
		n.DataDir = rooted(o.ConfigRoot, k3s.DefaultDataDir(n.Program))
		// --data-dir in config.yaml, a drop-in or the unit.
		for _, role := range []k3s.Role{k3s.RoleServer, k3s.RoleAgent} {
			c, _ := nodeconfig.Load(nodeconfig.Options{Program: n.Program, Role: role, Root: o.ConfigRoot, ConfigFile: o.ConfigFile, Unit: o.UnitFile})
			if c.DataDir != "" {
				n.DataDir = rooted(o.ConfigRoot, c.DataDir)
				break
			}
		}
	}
	abs, err := filepath.Abs(n.DataDir)
	if err == nil {
		n.DataDir = abs
	}
	fi, err := os.Stat(n.DataDir)
	if err != nil {
		return n, fmt.Errorf("%w: %s: %v", ErrNoDataDir, n.DataDir, err)
	}
	if !fi.IsDir() {
		return n, fmt.Errorf("%w: %s is not a directory", ErrNoDataDir, n.DataDir)
	}
	// A data dir we may not look into is "permission denied", not "not a
	// data dir": stat what decides the role and keep a permission error.
	for _, sub := range []string{filepath.Join("server", "tls"), "agent"} {
		if _, err := os.Stat(filepath.Join(n.DataDir, sub)); errors.Is(err, fs.ErrPermission) {
			return n, fmt.Errorf("%w: %s: %w", ErrNoDataDir, n.DataDir, err)
		}
	}
	if n.Program == "" {
		n.Program = detectProgram(n.DataDir)
	}
	switch {
	case exists(filepath.Join(n.DataDir, "server", "tls")):
		n.Role = k3s.RoleServer
	case exists(filepath.Join(n.DataDir, "agent")):
		n.Role = k3s.RoleAgent
	default:
		return n, fmt.Errorf("%w: %s has neither server/tls nor agent/ (is this a %s data dir?)", ErrNoDataDir, n.DataDir, n.Program)
	}
	switch {
	case o.Profile != "":
		n.Profile, err = k3s.ProfileByName(o.Profile)
		n.ProfileSource = "--profile " + o.Profile
		if err == nil && n.Profile.Name != o.Profile {
			n.ProfileSource += " = matrix row " + n.Profile.Name + " (" + n.Profile.Versions + ")"
		}
	case o.Version != "":
		n.Profile, err = k3s.ProfileForVersion(o.Version)
		n.ProfileSource = "version " + o.Version + " = matrix row " + n.Profile.Name + " (" + n.Profile.Versions + ")"
	default:
		n.Profile, n.ProfileSource = DetectProfile(n.DataDir, n.Program, n.Role)
	}
	if err != nil {
		return n, err
	}
	n.Config, n.ConfigErrors = nodeconfig.Load(nodeconfig.Options{Program: n.Program, Role: n.Role, Root: o.ConfigRoot, ConfigFile: o.ConfigFile, Unit: o.UnitFile})
	n.Ports = k3s.DefaultPorts(n.Program)
	if n.Program == k3s.K3s && n.Config.HTTPSListenPort > 0 {
		// K3s: the supervisor listens on --https-listen-port, the
		// apiserver on the next port (pkg/daemons/control/server.go defaults).
		n.Ports.Supervisor, n.Ports.APIServer = n.Config.HTTPSListenPort, n.Config.HTTPSListenPort+1
	}
	if o.Ports != nil {
		n.Ports = *o.Ports
	}
	return n, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func detectProgram(dataDir string) k3s.Program {
	if strings.Contains(filepath.Base(dataDir), "rke2") ||
		exists(filepath.Join(dataDir, "server", "tls", "client-rke2-controller.crt")) ||
		exists(filepath.Join(dataDir, "agent", "client-rke2-controller.crt")) {
		return k3s.RKE2
	}
	return k3s.K3s
}

// DetectProfile picks the matrix row from the files of a node whose
// version is not known, and says how. The files tell the release lines
// apart only in part; between the rows they cannot separate it picks the
// one with the safest behaviour (the listener not renewing, no JSON-only
// listener renewal, no regenerate trigger) and says so.
func DetectProfile(dataDir string, p k3s.Program, role k3s.Role) (k3s.Profile, string) {
	tls := filepath.Join(dataDir, "server", "tls")
	row := func(name, why string) (k3s.Profile, string) {
		prof, _ := k3s.ProfileByName(name)
		return prof, "detected from the files: " + why + " = matrix row " + prof.Name + " (" + prof.Versions + "); pass --k3s-version for the exact row"
	}
	if role == k3s.RoleAgent || !exists(tls) {
		prof := k3s.ProfileCurrent
		return prof, "assumed: an agent has no server files to tell the release from; matrix row " + prof.Name + " (" + prof.Versions + ") warns earliest; pass --k3s-version"
	}
	legacy := exists(filepath.Join(tls, "client-cloud-controller.crt"))
	modern := exists(filepath.Join(tls, "client-"+string(p)+"-cloud-controller.crt"))
	if legacy && !modern {
		if exists(filepath.Join(tls, "client-supervisor.crt")) {
			return row("v1.19.1", "pre-v1.21.2 file names (client-cloud-controller.crt) with client-supervisor.crt")
		}
		return row("v1.18", "pre-v1.21.2 file names (client-cloud-controller.crt); v1.18 and early v1.19–v1.21.1 look alike, the listener is assumed not to renew itself")
	}
	for _, comp := range []string{"kube-scheduler", "kube-controller-manager"} {
		if signedByServerCA(filepath.Join(tls, comp, comp+".crt"), p) {
			if !exists(filepath.Join(tls, "client-kube-proxy.crt")) && exists(filepath.Join(tls, "client-kube-proxy.key")) {
				return row("v1.31.11", "server-ca-signed "+comp+" serving certificate (120-day lines) and client-kube-proxy.crt removed at start (v1.33.3/v1.32.7/v1.31.11 and later)")
			}
			return row("v1.31.9", "server-ca-signed "+comp+" serving certificate (120-day lines) with client-kube-proxy.crt still present (v1.33.1–2, v1.32.5–6, v1.31.9–10)")
		}
	}
	if cn := certCN(filepath.Join(tls, "client-kube-apiserver.crt")); cn == "kube-apiserver" {
		return row("v1.21.2", "modern file names, client-kube-apiserver CN kube-apiserver (v1.21.2–v1.23.x, 90 days)")
	}
	return row("v1.24.0", "modern file names, no server-ca-signed kube-scheduler serving certificate (v1.24.0–v1.33.0 and the patch lines before the 120-day change, 90 days)")
}

// signedByServerCA reports whether the first certificate of path is
// issued by the program's server CA (CN <p>-server-ca@<unix>).
func signedByServerCA(path string, p k3s.Program) bool {
	c := firstCert(path)
	return c != nil && strings.HasPrefix(c.Issuer.CommonName, string(p)+"-server-ca@")
}

func certCN(path string) string {
	if c := firstCert(path); c != nil {
		return c.Subject.CommonName
	}
	return ""
}

func firstCert(path string) *x509.Certificate {
	b, err := source.ReadFile(path)
	if err != nil {
		return nil
	}
	certs, _ := pki.ParseCerts(b)
	if len(certs) == 0 {
		return nil
	}
	return certs[0]
}

// Run reads every source of the node and diagnoses it.
func Run(ctx context.Context, o Options) (report.Report, *source.Inventory, error) {
	n, err := Resolve(o)
	if err != nil {
		return report.Report{}, nil, err
	}
	return RunNode(ctx, n, o)
}

// RunNode is Run for an already resolved node.
func RunNode(ctx context.Context, n Node, o Options) (report.Report, *source.Inventory, error) {
	sources := Sources(n, o)
	inv := source.ReadAll(ctx, sources...)
	// Endpoints need the node's CAs as roots: read them after the files.
	// An agent's servers are probed at the same time, with the agent's
	// server CA copy as the only root.
	servers := AgentServers(n, inv, !o.NoEndpoint)
	var probes []source.Source
	if ep := endpointSource(n, o, inv); ep != nil {
		probes = append(probes, ep)
	}
	if as := agentServerSource(n, o, inv, servers); as != nil {
		probes = append(probes, as)
	}
	if len(probes) > 0 {
		done := make(chan struct{}, len(probes))
		for _, p := range probes {
			go func(p source.Source) {
				defer func() { done <- struct{}{} }()
				p.Read(ctx, inv)
			}(p)
		}
		for range probes {
			<-done
		}
		inv.Sort()
	}
	// tls-san and node IPs from every source K3s reads (config.yaml,
	// drop-ins, the unit's flags) plus the command line.
	tlsSANs := append(append([]string{}, o.TLSSANs...), n.Config.TLSSANs...)
	nodeIPs := append(append(append([]string{}, o.NodeIPs...), n.Config.NodeIPs...), n.Config.NodeExternalIPs...)
	for _, e := range n.ConfigErrors {
		// A file that could not be read (missing --config, permission, a
		// FIFO, too large) says so; only what was read and did not parse
		// is bad_kubeconfig.
		reason := source.ReasonBadYAML
		var pe *fs.PathError
		if errors.As(e.Err, &pe) {
			reason = source.ReasonFor(e.Err)
		}
		inv.AddProblem(source.Problem{Source: source.File, Location: e.Path, Reason: reason, Detail: e.Error()})
	}
	inv.Sort()
	r := diagnose.Run(diagnose.Input{
		Inventory: inv, Program: n.Program, Profile: n.Profile, At: o.At,
		Node: report.Node{DataDir: n.DataDir, Program: string(n.Program), Role: string(n.Role), Profile: n.Profile.Name, ProfileSource: n.ProfileSource,
			Servers: servers},
		AgentServersProbed: !o.NoEndpoint,
		TLSSANs:            tlsSANs, NodeIPs: nodeIPs, DisableETCD: n.Config.DisableETCD,
		StaticListener: source.ListenerIsStatic(filepath.Join(n.DataDir, filepath.FromSlash(k3s.ListenerSpec(n.Program).JSONPath))),
	})
	return r, inv, nil
}

// Sources lists the readers for a node (without endpoints, which need the
// CAs found by the others).
func Sources(n Node, o Options) []source.Source {
	l := k3s.ListenerSpec(n.Program)
	srcs := []source.Source{
		source.Files{DataDir: n.DataDir, Program: n.Program},
		source.RegistryCerts{DataDir: n.DataDir},
		source.DynamicCertJSON{Path: filepath.Join(n.DataDir, filepath.FromSlash(l.JSONPath))},
	}
	var kcs []source.KubeconfigFile
	for _, rel := range k3s.Kubeconfigs(n.Program, n.Profile) {
		p := filepath.Join(n.DataDir, filepath.FromSlash(rel))
		if exists(p) {
			kcs = append(kcs, source.KubeconfigFile{Path: p})
		}
	}
	if n.Role == k3s.RoleServer {
		admin := o.AdminKubeconfig
		if admin == "" {
			admin = n.AdminKubeconfig()
		}
		kcs = append(kcs, source.KubeconfigFile{Path: admin, Optional: o.AdminKubeconfig == ""})
	}
	for _, p := range o.Kubeconfigs {
		kcs = append(kcs, source.KubeconfigFile{Path: p, Copy: true})
	}
	srcs = append(srcs, source.Kubeconfigs{Files: kcs})
	if o.Secret != nil {
		srcs = append(srcs, source.ServingSecret{Namespace: l.Namespace, SecretName: l.SecretName, Get: o.Secret})
	}
	return srcs
}

func endpointSource(n Node, o Options, inv *source.Inventory) source.Source {
	if o.NoEndpoint {
		return nil
	}
	var targets []source.EndpointTarget
	role := map[int]string{n.Ports.Supervisor: "supervisor", n.Ports.APIServer: "apiserver", n.Ports.Kubelet: "kubelet", n.Ports.Etcd: "etcd",
		n.Ports.ControllerManager: "controller-manager", n.Ports.Scheduler: "scheduler"}
	delete(role, 0)
	if len(o.Endpoints) == 0 {
		ports := []int{n.Ports.Supervisor, n.Ports.APIServer, n.Ports.Kubelet, n.Ports.Etcd}
		if n.Role == k3s.RoleServer {
			// kube-controller-manager and kube-scheduler (rancher/rancher#41125)
			ports = append(ports, n.Ports.ControllerManager, n.Ports.Scheduler)
		}
		for _, p := range ports {
			if p > 0 {
				targets = append(targets, source.EndpointTarget{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), Role: role[p]})
			}
		}
	}
	for _, e := range o.Endpoints {
		r := ""
		if _, port, err := net.SplitHostPort(e); err == nil {
			if p, err := strconv.Atoi(port); err == nil {
				r = role[p]
			}
		}
		targets = append(targets, source.EndpointTarget{Address: e, Role: r, Explicit: true})
	}
	var roots []*x509.Certificate
	for _, c := range inv.Certs {
		if c.Source == source.File && c.Cert.IsCA {
			roots = append(roots, c.Cert)
		}
	}
	return source.Endpoints{Targets: targets, Roots: roots, At: o.At, Timeout: o.Timeout}
}

// ParseConfigSANs returns the tls-san entries of a K3s config.yaml: a
// comma-separated string or a list of strings.
func ParseConfigSANs(b []byte) ([]string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	var out []string
	switch v := cfg["tls-san"].(type) {
	case string:
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out, nil
}
