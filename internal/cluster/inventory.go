package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/source"
	"sigs.k8s.io/yaml"
)

// Inventory is the cluster a `k3scert cluster rotate` works on: the
// program, the nodes in the order they are rotated (servers first), and
// how to reach them over SSH.
//
//	program: k3s
//	ssh:
//	  user: root
//	  identityFile: ~/.ssh/k3s
//	  sudo: false
//	nodes:
//	  - {name: s1, role: server, host: 10.0.0.11, api: 10.0.0.11:6443}
//	  - {name: s2, role: server, host: 10.0.0.12}
//	  - {name: a1, role: agent,  host: 10.0.0.21}
type Inventory struct {
	// Program is k3s (default) or rke2.
	Program k3s.Program `json:"program,omitempty"`
	SSH     SSHOptions  `json:"ssh,omitempty"`
	Nodes   []Node      `json:"nodes"`
	// CAFile is the cluster's server CA (server/tls/server-ca.crt) on this
	// machine, trusted for the TLS dial of every server's API endpoint;
	// "" = fetched from the first server over SSH.
	CAFile string `json:"caFile,omitempty"`
	// Path is the file the inventory was read from (not a field of it).
	Path string `json:"-"`
}

// SSHOptions say how the SSH runner reaches every node: the system
// OpenSSH client, never a password prompt (BatchMode=yes).
type SSHOptions struct {
	User         string `json:"user,omitempty"`
	Port         int    `json:"port,omitempty"`
	IdentityFile string `json:"identityFile,omitempty"`
	// StrictHostKeyChecking is ssh's option: yes (default), accept-new or
	// no; KnownHostsFile replaces the user's known_hosts.
	StrictHostKeyChecking string `json:"strictHostKeyChecking,omitempty"`
	KnownHostsFile        string `json:"knownHostsFile,omitempty"`
	// Options are extra `-o Key=Value` options.
	Options []string `json:"options,omitempty"`
	// Sudo runs the remote k3scert with `sudo -n` (never a prompt).
	Sudo bool `json:"sudo,omitempty"`
	// K3scert is the remote k3scert; default "k3scert" (on the remote PATH).
	K3scert string `json:"k3scert,omitempty"`
	// Args are extra arguments of every remote `k3scert rotate` and
	// `k3scert check` (e.g. -d DATA_DIR); a node's own Args follow them.
	Args []string `json:"args,omitempty"`
	// RotateArgs are extra arguments of every remote `k3scert rotate` only
	// (e.g. --unit, --stop-cmd/--start-cmd); a node's own follow them.
	RotateArgs []string `json:"rotateArgs,omitempty"`
	// Kubectl is the remote kubectl command for "kubectl through each
	// server" (default "k3s kubectl"; RKE2: /var/lib/rancher/rke2/bin/kubectl).
	Kubectl string `json:"kubectl,omitempty"`
}

// ParseInventory reads an inventory strictly: an unknown field is an
// error naming the file and the field; the result is validated.
func ParseInventory(name string, b []byte) (Inventory, error) {
	var inv Inventory
	if len(bytes.TrimSpace(b)) == 0 {
		return inv, fmt.Errorf("inventory %s: empty", name)
	}
	if err := yaml.UnmarshalStrict(b, &inv); err != nil {
		return Inventory{}, fmt.Errorf("inventory %s: %s", name, cleanYAMLError(err))
	}
	inv.Path = name
	if err := inv.Validate(); err != nil {
		return Inventory{}, fmt.Errorf("inventory %s: %w", name, err)
	}
	return inv, nil
}

// LoadInventory reads and parses an inventory file.
func LoadInventory(path string) (Inventory, error) {
	b, err := source.ReadFile(path)
	if err != nil {
		return Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	return ParseInventory(path, b)
}

var unknownField = regexp.MustCompile(`unknown field "([^"]*)"`)

// cleanYAMLError keeps what the user needs from sigs.k8s.io/yaml's
// layered message: the unknown field, or the parser's own words.
func cleanYAMLError(err error) string {
	s := err.Error()
	if m := unknownField.FindStringSubmatch(s); m != nil {
		return fmt.Sprintf("unknown field %q", m[1])
	}
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "error unmarshaling JSON: ")
	s = strings.TrimPrefix(s, "while decoding JSON: ")
	return s
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)

// Validate checks the inventory and fills in defaults: program k3s, a
// server's API endpoint as its host on :6443.
func (inv *Inventory) Validate() error {
	switch inv.Program {
	case "":
		inv.Program = k3s.K3s
	case k3s.K3s, k3s.RKE2:
	default:
		return fmt.Errorf("program %q: want k3s or rke2", inv.Program)
	}
	if len(inv.Nodes) == 0 {
		return errors.New("no nodes")
	}
	switch inv.SSH.StrictHostKeyChecking {
	case "", "yes", "accept-new", "no":
	default:
		return fmt.Errorf("ssh.strictHostKeyChecking %q: want yes, accept-new or no", inv.SSH.StrictHostKeyChecking)
	}
	if inv.SSH.Port < 0 || inv.SSH.Port > 65535 {
		return fmt.Errorf("ssh.port %d: want 1 to 65535", inv.SSH.Port)
	}
	for _, o := range inv.SSH.Options {
		if k, _, ok := strings.Cut(o, "="); !ok || k == "" || strings.ContainsAny(o, "\n\r") {
			return fmt.Errorf("ssh.options %q: want Key=Value", o)
		}
	}
	seen := map[string]bool{}
	servers, agentSeen := 0, false
	for i := range inv.Nodes {
		n := &inv.Nodes[i]
		where := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" {
			return fmt.Errorf("%s: no name", where)
		}
		if !nodeName.MatchString(n.Name) {
			return fmt.Errorf("%s: name %q: want a node name (letters, digits, '.', '-', '_')", where, n.Name)
		}
		where = fmt.Sprintf("node %s", n.Name)
		if seen[n.Name] {
			return fmt.Errorf("%s: the name appears twice", where)
		}
		seen[n.Name] = true
		if n.Host == "" {
			n.Host = n.Name
		}
		if strings.HasPrefix(n.Host, "-") || strings.ContainsAny(n.Host, " \t\n\r'\"`$;&|<>\\") {
			return fmt.Errorf("%s: host %q is not an ssh destination", where, n.Host)
		}
		switch n.Role {
		case RoleServer:
			if agentSeen {
				return fmt.Errorf("%s: a server after an agent: list every server before the agents (servers are rotated first, agents fetch their certificates from them)", where)
			}
			servers++
			if n.API == "" {
				h := n.Host
				if _, after, ok := strings.Cut(h, "@"); ok {
					h = after
				}
				n.API = net.JoinHostPort(h, "6443")
			}
			if _, port, err := net.SplitHostPort(n.API); err != nil || port == "" {
				return fmt.Errorf("%s: api %q: want host:port", where, n.API)
			}
		case RoleAgent:
			agentSeen = true
			if n.API != "" {
				return fmt.Errorf("%s: api is a server's endpoint; an agent has none", where)
			}
		case "":
			return fmt.Errorf("%s: no role (server or agent)", where)
		default:
			return fmt.Errorf("%s: role %q: want server or agent", where, n.Role)
		}
	}
	if servers == 0 {
		return errors.New("no server: a cluster rotation starts with the servers")
	}
	return nil
}

// Servers returns the inventory's servers, in order.
func (inv Inventory) Servers() []Node {
	var out []Node
	for _, n := range inv.Nodes {
		if n.Role == RoleServer {
			out = append(out, n)
		}
	}
	return out
}

// JSON renders the inventory (tests, debugging).
func (inv Inventory) JSON() string {
	b, _ := json.Marshal(inv)
	return string(b)
}
