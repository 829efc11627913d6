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
}

// Resolve finds the data dir, program, role and profile.
func Resolve(o Options) (Node, error) {
	n := Node{Program: o.Program, DataDir: o.DataDir}
	if n.DataDir == "" {
		if n.Program == "" {
			n.Program = k3s.K3s
			if _, err := os.Stat(k3s.DefaultDataDir(k3s.K3s)); err != nil {
				if _, err := os.Stat(k3s.DefaultDataDir(k3s.RKE2)); err == nil {
					n.Program = k3s.RKE2
				}
			}
		}
		n.DataDir = k3s.DefaultDataDir(n.Program)
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
		n.ProfileSource = "--profile"
	case o.Version != "":
		n.Profile, err = k3s.ProfileForVersion(o.Version)
		n.ProfileSource = "version " + o.Version
	default:
		n.Profile, n.ProfileSource = detectProfile(n)
	}
	if err != nil {
		return n, err
	}
	n.Ports = k3s.DefaultPorts(n.Program)
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

// detectProfile guesses from the files: v1.18 names mean v1.18.
func detectProfile(n Node) (k3s.Profile, string) {
	tls := filepath.Join(n.DataDir, "server", "tls")
	if exists(filepath.Join(tls, "client-cloud-controller.crt")) && !exists(filepath.Join(tls, "client-"+string(n.Program)+"-cloud-controller.crt")) {
		return k3s.ProfileV118, "detected (v1.18 file names)"
	}
	return k3s.ProfileCurrent, "assumed (pass --k3s-version or --profile)"
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
	if ep := endpointSource(n, o, inv); ep != nil {
		ep.Read(ctx, inv)
		inv.Sort()
	}
	tlsSANs, nodeIPs := o.TLSSANs, o.NodeIPs
	cfgSANs, err := configSANs(o.ConfigFile, n.Program)
	if err != nil {
		inv.AddProblem(source.Problem{Source: source.File, Location: err.path, Reason: err.reason, Detail: err.Error()})
	}
	tlsSANs = append(tlsSANs, cfgSANs...)
	r := diagnose.Run(diagnose.Input{
		Inventory: inv, Program: n.Program, Profile: n.Profile, At: o.At,
		Node:    report.Node{DataDir: n.DataDir, Program: string(n.Program), Role: string(n.Role), Profile: n.Profile.Name, ProfileSource: n.ProfileSource},
		TLSSANs: tlsSANs, NodeIPs: nodeIPs,
	})
	return r, inv, nil
}

// Sources lists the readers for a node (without endpoints, which need the
// CAs found by the others).
func Sources(n Node, o Options) []source.Source {
	l := k3s.ListenerSpec(n.Program)
	srcs := []source.Source{
		source.Files{DataDir: n.DataDir, Program: n.Program},
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
			admin = k3s.DefaultKubeconfig(n.Program)
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
	role := map[int]string{n.Ports.Supervisor: "supervisor", n.Ports.APIServer: "apiserver", n.Ports.Kubelet: "kubelet", n.Ports.Etcd: "etcd"}
	if len(o.Endpoints) == 0 {
		for _, p := range []int{n.Ports.Supervisor, n.Ports.APIServer, n.Ports.Kubelet, n.Ports.Etcd} {
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

type cfgErr struct {
	path   string
	reason source.Reason
	err    error
}

func (e *cfgErr) Error() string { return e.err.Error() }

// configSANs reads tls-san from K3s's config.yaml (a string or a list).
func configSANs(path string, p k3s.Program) ([]string, *cfgErr) {
	explicit := path != ""
	if !explicit {
		path = k3s.DefaultConfigFile(p)
	}
	b, err := source.ReadFile(path)
	if err != nil {
		if !explicit && os.IsNotExist(err) {
			return nil, nil
		}
		// A missing or unreadable --config is not_found / permission_denied
		// / not_regular_file, not a YAML error.
		return nil, &cfgErr{path, source.ReasonFor(err), err}
	}
	sans, err := ParseConfigSANs(b)
	if err != nil {
		return nil, &cfgErr{path, source.ReasonBadYAML, err}
	}
	return sans, nil
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
