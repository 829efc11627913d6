package lab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
)

// A lab cluster is K3s's HA mode with an external datastore: one kine on
// SQLite that every server uses (config.yaml `datastore-endpoint`), each
// server with its own kube-apiserver, its own :6443 supervisor, its own
// server/tls leaves and dynamic-cert.json; the CAs, the service-account key
// and the listener secret kube-system/k3s-serving are shared. Agents
// (agent.go) fetch their certificates from a server's supervisor on every
// start.
//
// Server 1 creates the CAs and stores them as K3s's encrypted bootstrap
// data in the datastore; joining servers read them from there
// (bootstrap.go).

// ClusterOptions describe a lab cluster.
type ClusterOptions struct {
	// Root holds datastore/ (the shared kine's SQLite), server-<i>/ and
	// agent-<i>/ (each a node's file system root) and log/kine.log.
	Root     string
	Program  k3s.Program
	Profile  k3s.Profile
	Listener string // dynamiclistener release; "" = the profile's
	Servers  int    // default 3
	Agents   int    // default 2; 0 is allowed only with NoAgents
	NoAgents bool
	Log      func(format string, args ...any)
}

// Cluster is a lab HA cluster. It is not safe for concurrent use.
type Cluster struct {
	o        ClusterOptions
	bins     Bins
	kinePort int
	kine     *proc
	token    string
	Servers  []*Node
	Agents   []*Agent
	offset   time.Duration
}

// NewCluster prepares a cluster; nothing runs until Start.
func NewCluster(o ClusterOptions) (*Cluster, error) {
	if o.Root == "" {
		return nil, errors.New("lab: ClusterOptions.Root is required")
	}
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.Profile.Name == "" {
		o.Profile = k3s.ProfileCurrent
	}
	if o.Servers <= 0 {
		o.Servers = 3
	}
	if o.Agents <= 0 && !o.NoAgents {
		o.Agents = 2
	}
	if o.NoAgents {
		o.Agents = 0
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	abs, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	o.Root = abs
	bins, err := FindBins()
	if err != nil {
		return nil, err
	}
	kp, err := FreePort()
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return nil, err
	}
	c := &Cluster{o: o, bins: bins, kinePort: kp, token: hex.EncodeToString(pw)}
	for i := 1; i <= o.Servers; i++ {
		name := fmt.Sprintf("server-%d", i)
		logf := o.Log
		n, err := New(Options{Root: filepath.Join(abs, name), Program: o.Program, Profile: o.Profile, Listener: o.Listener,
			NodeName: name, ExternalDatastore: true, KinePort: kp, Token: c.token,
			Log: func(f string, a ...any) { logf(name+": "+f, a...) }})
		if err != nil {
			return nil, err
		}
		c.Servers = append(c.Servers, n)
	}
	for i := 1; i <= o.Agents; i++ {
		name := fmt.Sprintf("agent-%d", i)
		// Agents are spread over the servers, as `server:` URLs or a
		// fixed registration address behind a load balancer would be.
		srv := c.Servers[(i-1)%len(c.Servers)]
		a, err := NewAgent(AgentOptions{Root: filepath.Join(abs, name), Name: name, Program: o.Program, Profile: o.Profile,
			Server: srv, Token: c.token, CAFrom: c.Servers[0], Log: o.Log})
		if err != nil {
			return nil, err
		}
		c.Agents = append(c.Agents, a)
	}
	return c, nil
}

// Root is the cluster's root directory.
func (c *Cluster) Root() string { return c.o.Root }

// Profile is the cluster's version profile.
func (c *Cluster) Profile() k3s.Profile { return c.o.Profile }

// DatastoreEndpoint is every server's datastore-endpoint.
func (c *Cluster) DatastoreEndpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.kinePort))
}

// Now is the cluster's virtual time.
func (c *Cluster) Now() time.Time { return time.Now().Add(c.offset).UTC() }

// Offset is how far the cluster has been advanced.
func (c *Cluster) Offset() time.Duration { return c.offset }

func (c *Cluster) startKine(ctx context.Context) error {
	if c.kine != nil {
		return nil
	}
	dir := filepath.Join(c.o.Root, "datastore")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.kinePort))
	p, err := startProc("kine", filepath.Join(c.o.Root, "log", "kine.log"), nil, c.bins.Kine,
		"--endpoint", "sqlite://"+filepath.Join(dir, "state.db"), "--listen-address", addr, "--metrics-bind-address", "0")
	if err != nil {
		return err
	}
	if err := waitPort(ctx, p, addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return err
	}
	c.kine = p
	return nil
}

// Start starts the datastore, the servers one after the other (server 1
// creates the CAs, the others join with them) and then the agents. It
// returns each node's k3sgen result by node name.
func (c *Cluster) Start(ctx context.Context) (map[string]k3sgen.Result, error) {
	out := map[string]k3sgen.Result{}
	if err := c.startKine(ctx); err != nil {
		return out, err
	}
	for i, n := range c.Servers {
		if i > 0 {
			if err := c.join(ctx, n); err != nil {
				return out, err
			}
		}
		if err := c.writeConfig(n); err != nil {
			return out, err
		}
		res, err := n.Start(ctx)
		out[n.Name()] = res
		if err != nil {
			return out, fmt.Errorf("%s: %w", n.Name(), err)
		}
		if i == 0 {
			if err := c.saveBootstrap(ctx); err != nil {
				return out, fmt.Errorf("%s: save bootstrap data: %w", n.Name(), err)
			}
		}
	}
	for _, a := range c.Agents {
		if err := a.Start(ctx); err != nil {
			return out, fmt.Errorf("%s: %w", a.Name(), err)
		}
	}
	return out, nil
}

// Close stops every node and the datastore.
func (c *Cluster) Close() {
	for _, a := range c.Agents {
		a.Stop()
	}
	for _, n := range c.Servers {
		n.Stop()
	}
	c.kine.stop(5 * time.Second)
	c.kine = nil
}

// writeConfig writes the server's /etc/rancher/k3s/config.yaml as an HA
// server with an external datastore has it.
func (c *Cluster) writeConfig(n *Node) error {
	body := fmt.Sprintf("# lab HA server (external datastore)\nnode-name: %s\ndatastore-endpoint: %s\ntoken-file: %s\n",
		n.Name(), c.DatastoreEndpoint(), filepath.Join(n.DataDir(), "server", "token"))
	return writeAtomic(filepath.Join(n.o.Root, "etc", "rancher", string(c.o.Program), "config.yaml"), []byte(body), 0o600)
}

// writeToken writes server/token as K3s does: K10<sha256 of server-ca.crt>
// ::server:<password> (pkg/clientaccess/token.go FormatTokenBytes; a
// single-certificate CA file is hashed as its bytes).
func (n *Node) writeToken() error {
	ca, err := os.ReadFile(n.tls("server-ca.crt"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(ca)
	return writeAtomic(filepath.Join(n.dataDir, "server", "token"), []byte("K10"+hex.EncodeToString(sum[:])+"::server:"+n.o.Token+"\n"), 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
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

// Advance moves the whole cluster's time forward by days without touching
// the clock, as Node.Advance does for one node, with ONE shifter for every
// copy: the CAs on every server and agent, the one listener secret, each
// server's dynamic-cert.json and k3s.yaml stay byte-identical wherever they
// are copies of one certificate. The processes start again without the
// renewal a K3s start would do; agents start again on their shifted files
// without fetching (a running agent does not fetch).
func (c *Cluster) Advance(ctx context.Context, days int) error {
	c.o.Log("cluster: advance %d days", days)
	s, err := k3sgen.NewShifter(c.Servers[0].DataDir(), days)
	if err != nil {
		return err
	}
	agentsRunning := make([]bool, len(c.Agents))
	for i, a := range c.Agents {
		agentsRunning[i] = a.Running()
		a.Stop()
	}
	running := make([]bool, len(c.Servers))
	for i, n := range c.Servers {
		running[i] = n.started
		n.stopAPI()
	}
	if err := c.startKine(ctx); err != nil {
		return err
	}
	if err := c.Servers[0].shiftSecret(ctx, s); err != nil {
		return err
	}
	c.kine.stop(5 * time.Second)
	c.kine = nil
	for _, n := range c.Servers {
		if err := s.Files(n.dataDir, n.kubecfg); err != nil {
			return fmt.Errorf("lab: advance %s: %w", n.Name(), err)
		}
		n.offset += time.Duration(days) * 24 * time.Hour
	}
	for _, a := range c.Agents {
		if err := s.Files(a.dataDir, ""); err != nil {
			return fmt.Errorf("lab: advance %s: %w", a.Name(), err)
		}
		a.offset += time.Duration(days) * 24 * time.Hour
	}
	c.offset += time.Duration(days) * 24 * time.Hour
	if err := c.startKine(ctx); err != nil {
		return err
	}
	// The bootstrap data holds the CAs too: the same re-signed bytes.
	if err := c.saveBootstrap(ctx); err != nil {
		return err
	}
	for i, n := range c.Servers {
		if running[i] {
			if err := n.writeToken(); err != nil {
				return err
			}
			if err := n.startProcs(ctx); err != nil {
				return fmt.Errorf("%s: %w", n.Name(), err)
			}
		}
	}
	for i, a := range c.Agents {
		if agentsRunning[i] {
			if err := a.resume(); err != nil {
				return fmt.Errorf("%s: %w", a.Name(), err)
			}
		}
	}
	return nil
}
