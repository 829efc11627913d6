// Package nodeconfig reads a node's K3s (or RKE2) configuration the way K3s
// itself assembles it: /etc/rancher/<p>/config.yaml, then every
// config.yaml.d/*.yaml (and *.yml) drop-in in lexical order, where a key
// ending in "+" appends to the value so far and any other key replaces it
// (k3s-io/k3s pkg/configfilearg/parser.go: dotDFiles, readConfigFileData),
// then the flags of the systemd unit's ExecStart (install.sh writes them
// there), which K3s parses after the config file: list flags accumulate,
// scalar flags override.
//
// Only the settings k3scert needs are extracted: tls-san, write-kubeconfig,
// disable-etcd, data-dir, https-listen-port, node-ip, node-external-ip,
// node-name, datastore-endpoint, server (an agent's --server / K3S_URL),
// and the unit's environment (CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS).
package nodeconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/source"
	"sigs.k8s.io/yaml"
)

// Config is the node's effective configuration (the parts k3scert uses).
type Config struct {
	TLSSANs         []string
	WriteKubeconfig string // absolute path K3s writes the admin kubeconfig to; "" = the default
	DisableETCD     bool
	DataDir         string
	HTTPSListenPort int
	NodeIPs         []string
	NodeExternalIPs []string
	NodeName        string
	// DatastoreEndpoint is datastore-endpoint (K3S_DATASTORE_ENDPOINT):
	// an external datastore (etcd/kine http(s)://, or a SQL DSN); "" = the
	// embedded one. It may hold credentials: never print it unredacted.
	DatastoreEndpoint string
	// Server is the server URL an agent (or a joining server) registers
	// with: --server/-s, config key server, or <P>_URL in the unit's
	// environment (k3s-io/k3s pkg/cli/cmds/agent.go: ServerURL flag
	// "server,s", EnvVar version.ProgramUpper+"_URL").
	Server string
	// Env is the unit's environment (Environment= and EnvironmentFile=).
	Env map[string]string
	// Sources lists the files that contributed, in the order read.
	Sources []string
}

// FileError is a configuration file that could not be read or parsed.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Options say where to look.
type Options struct {
	Program k3s.Program
	Role    k3s.Role // selects the unit: k3s / k3s-agent, rke2-server / rke2-agent
	// Root is the filesystem root the default paths live under ("" = "/").
	Root string
	// ConfigFile is config.yaml; "" = the unit's --config, K3S_CONFIG_FILE
	// or /etc/rancher/<p>/config.yaml. An explicit file must exist.
	ConfigFile string
	// Unit is the unit file; "" = searched in the systemd directories.
	Unit string
}

// UnitName is the systemd unit of a program and role.
func UnitName(p k3s.Program, role k3s.Role) string {
	switch {
	case p == k3s.RKE2 && role == k3s.RoleAgent:
		return "rke2-agent"
	case p == k3s.RKE2:
		return "rke2-server"
	case role == k3s.RoleAgent:
		return string(p) + "-agent"
	}
	return string(p)
}

// unitDirs are searched in systemd's order of precedence.
var unitDirs = []string{"/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

func (o Options) root(p string) string {
	if o.Root == "" {
		return p
	}
	return filepath.Join(o.Root, filepath.FromSlash(p))
}

// Load reads the unit and the config files. Files that do not exist are
// skipped (except an explicit ConfigFile); files that cannot be read or
// parsed are returned as errors and the rest is still used.
func Load(o Options) (Config, []*FileError) {
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	var errs []*FileError
	var cfg Config
	u, uerr := o.readUnit()
	if uerr != nil {
		errs = append(errs, uerr)
	}
	cfg.Env = u.env
	if u.path != "" {
		cfg.Sources = append(cfg.Sources, u.path)
	}
	flags := parseFlags(u.args)

	path, explicit := o.ConfigFile, o.ConfigFile != ""
	if !explicit {
		switch {
		case len(flags["config"]) > 0:
			path, explicit = o.root(flags["config"][len(flags["config"])-1]), true
		case cfg.Env[envPrefix(o.Program)+"CONFIG_FILE"] != "":
			path, explicit = o.root(cfg.Env[envPrefix(o.Program)+"CONFIG_FILE"]), true
		default:
			path = o.root(k3s.DefaultConfigFile(o.Program))
		}
	}
	merged := map[string]any{}
	files := []string{path}
	if drop, err := dotDFiles(path); err == nil {
		files = append(files, drop...)
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, &FileError{path + ".d", err})
	}
	for i, f := range files {
		b, err := readSmall(f)
		if err != nil {
			if i == 0 && !explicit && errors.Is(err, os.ErrNotExist) {
				continue
			}
			errs = append(errs, &FileError{f, err})
			continue
		}
		if err := MergeYAML(merged, b); err != nil {
			errs = append(errs, &FileError{f, err})
			continue
		}
		cfg.Sources = append(cfg.Sources, f)
	}
	fromFile := flagsFromMap(merged)

	// Environment variables K3s maps to flags (K3S_NODE_NAME ...).
	env := map[string][]string{}
	for flag, v := range envFlags {
		if x := cfg.Env[envPrefix(o.Program)+v]; x != "" {
			env[flag] = []string{x}
		}
	}
	cfg.apply(fromFile, env, flags)
	return cfg, errs
}

func envPrefix(p k3s.Program) string { return strings.ToUpper(string(p)) + "_" }

// envFlags are the K3S_* variables of the settings we read.
var envFlags = map[string]string{
	"write-kubeconfig": "KUBECONFIG_OUTPUT",
	"node-name":        "NODE_NAME",
	"data-dir":         "DATA_DIR",
	// k3s-io/k3s pkg/cli/cmds/server.go: the datastore-endpoint flag,
	// EnvVar version.ProgramUpper + "_DATASTORE_ENDPOINT".
	"datastore-endpoint": "DATASTORE_ENDPOINT",
	"server":             "URL",
}

// apply layers the sources: config files, then environment, then flags.
// Lists accumulate; scalars are overridden by the later source.
func (c *Config) apply(layers ...map[string][]string) {
	last := func(key string) (string, bool) {
		v, ok := "", false
		for _, l := range layers {
			if xs := l[key]; len(xs) > 0 {
				v, ok = xs[len(xs)-1], true
			}
		}
		return v, ok
	}
	all := func(key string) []string {
		var out []string
		for _, l := range layers {
			for _, x := range l[key] {
				for _, y := range strings.Split(x, ",") { // K3s splits list flags on commas
					if y = strings.TrimSpace(y); y != "" {
						out = append(out, y)
					}
				}
			}
		}
		return out
	}
	c.TLSSANs = all("tls-san")
	c.NodeIPs = all("node-ip")
	c.NodeExternalIPs = all("node-external-ip")
	c.WriteKubeconfig, _ = last("write-kubeconfig")
	c.DataDir, _ = last("data-dir")
	c.NodeName, _ = last("node-name")
	c.DatastoreEndpoint, _ = last("datastore-endpoint")
	c.Server, _ = last("server")
	if v, ok := last("disable-etcd"); ok {
		c.DisableETCD, _ = strconv.ParseBool(v)
	}
	if v, ok := last("https-listen-port"); ok {
		c.HTTPSListenPort, _ = strconv.Atoi(v)
	}
}

// aliases are the short flag names K3s accepts for the settings we read.
var aliases = map[string]string{"o": "write-kubeconfig", "d": "data-dir", "i": "node-ip", "c": "config", "s": "server"}

// boolFlags take no value on the command line.
var boolFlags = map[string]bool{"disable-etcd": true}

// known are the flags (and config keys) read here.
var known = map[string]bool{"tls-san": true, "write-kubeconfig": true, "disable-etcd": true, "data-dir": true,
	"https-listen-port": true, "node-ip": true, "node-external-ip": true, "node-name": true, "config": true,
	"datastore-endpoint": true, "server": true}

// parseFlags extracts the known flags from a command line after the
// server/agent subcommand: --flag=value, --flag value, -flag value, and
// boolean flags without a value.
func parseFlags(args []string) map[string][]string {
	out := map[string][]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if n, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = n, v, true
		}
		if full, ok := aliases[name]; ok {
			name = full
		}
		if !known[name] {
			continue
		}
		if !hasVal {
			if boolFlags[name] {
				val, hasVal = "true", true
			} else if i+1 < len(args) {
				i++
				val, hasVal = args[i], true
			}
		}
		if hasVal {
			out[name] = append(out[name], val)
		}
	}
	return out
}

// MergeYAML merges one config document into merged with K3s's rules: a key
// "k+" appends its value(s) to k's, any other key replaces k. An empty
// document is fine; a document that is not a mapping is an error.
func MergeYAML(merged map[string]any, b []byte) error {
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := doc[k]
		if base, ok := strings.CutSuffix(k, "+"); ok {
			merged[base] = append(toList(merged[base]), toList(v)...)
			continue
		}
		merged[k] = v
	}
	return nil
}

func toList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}

// flagsFromMap turns the merged config into flag values.
func flagsFromMap(m map[string]any) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		if !known[k] {
			continue
		}
		for _, x := range toList(v) {
			switch y := x.(type) {
			case string:
				out[k] = append(out[k], y)
			case bool, float64, int, int64:
				out[k] = append(out[k], fmt.Sprint(y))
			}
		}
	}
	return out
}

// dotDFiles lists the drop-ins of a config file: <file>.d/*.yaml and
// *.yml, in lexical order.
func dotDFiles(base string) ([]string, error) {
	des, err := os.ReadDir(base + ".d")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		n := strings.ToLower(de.Name())
		if de.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		out = append(out, filepath.Join(base+".d", de.Name()))
	}
	sort.Strings(out)
	return out, nil
}

// maxConfigSize bounds what is read from /etc.
const maxConfigSize = 1 << 20

// readSmall is source.ReadFile (non-blocking open, regular files only, at
// most source.MaxFileSize, which equals maxConfigSize): no stat-then-read
// window in which a file can turn into a FIFO or grow.
func readSmall(p string) ([]byte, error) { return source.ReadFile(p) }
