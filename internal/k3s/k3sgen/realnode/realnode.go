// Package realnode builds K3s and RKE2 nodes shaped like real ones, for the
// tests of check, forecast, serve and rotate: a k3sgen data dir of a given
// matrix row plus everything a real node has around it that is not K3s
// certificate state (audit §4, issue 10 item 9):
//
//   - containerd's root with image snapshots holding expired root CAs and
//     test certificates, and a FIFO named *.crt that blocks whoever opens it
//     for reading without O_NONBLOCK;
//   - a sparse multi-GB airgap image tarball under agent/images;
//   - registry CA files under agent/etc/containerd/certs.d;
//   - kubelet and static-pod state, kube-apiserver's temporary-certs and a
//     `k3s certificate rotate` backup (server/tls-<unix>, agent/tls-<unix>);
//   - optionally: pre-v1.21.2 leftovers, a static (user-provided) listener,
//     IPv6 SANs, configuration spread over config.yaml, config.yaml.d and
//     the systemd unit, --disable-etcd, Rancher's --cert-dir kube-* pairs,
//     and agent-only nodes.
//
// Nothing here is a mock of K3s: the certificate files are what k3sgen
// writes by K3s's rules. Configuration lives under Node.Root, a directory
// standing for "/" (check.Options.ConfigRoot).
package realnode

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
)

// Options describe the node.
type Options struct {
	Program k3s.Program // default k3s
	Profile k3s.Profile // default k3s.ProfileCurrent
	// Agent makes an agent-only node; the server it joined is generated
	// in ServerDataDir next to it.
	Agent bool
	// Leftovers: the node was installed before v1.21.2 and upgraded, so an
	// expired client-cloud-controller.{crt,key} (old name, old CN, signed by
	// its client-ca) sits next to the modern file. Modern rows only.
	Leftovers bool
	// StaticListener: dynamic-cert.json holds a user-provided certificate
	// from its own CA, annotated listener.cattle.io/static.
	StaticListener bool
	// IPv6: node IP fd00::10, tls-san 2001:db8::1 (dual-stack).
	IPv6 bool
	// Config spreads tls-san, node-ip and write-kubeconfig over
	// config.yaml, two config.yaml.d drop-ins and the unit's ExecStart.
	Config bool
	// DisableETCD: --disable-etcd in the unit.
	DisableETCD bool
	// RancherCertDir: kube-* self-signed pairs under server/tls/kube-*/
	// (rows before the 2025 serving certs).
	RancherCertDir bool
	// ServerURL is the agent's --server (agent-only nodes; default
	// https://127.0.0.1:6443, or :9345 for RKE2). It is written where
	// install.sh and operators put it: <P>_URL in the unit's .env file and
	// server: in a config.yaml.d drop-in; the agent's load balancer file
	// agent/etc/<p>-agent-load-balancer.json remembers it with LBServers.
	ServerURL string
	// LBServers are the server addresses (host:port) the agent's load
	// balancer learned from the supervisor; default the ServerURL's.
	LBServers []string
	// APIServers are the RKE2 apiserver load balancer's addresses;
	// default LBServers' hosts on port 6443.
	APIServers []string
	// KubeletServer is the server URL of the agent's kubeconfigs: the
	// agent's local load balancer, https://127.0.0.1:6444 by default
	// (k3s --lb-server-port default 6444).
	KubeletServer string
	// NoJunk skips the non-K3s state (containerd, images, registry, backups).
	NoJunk bool
	// AirgapSize is the sparse tarball's size (default 4 GiB).
	AirgapSize int64
}

// Node is a generated node.
type Node struct {
	T             testing.TB
	O             Options
	Root          string // stands for "/": etc/rancher/<p>, etc/systemd/system
	DataDir       string // Root/var/lib/rancher/<p>
	ServerDataDir string // agent-only nodes: the server's data dir
	Kubeconfig    string // the admin kubeconfig K3s writes (servers)
	ConfigFile    string // Root/etc/rancher/<p>/config.yaml
	Unit          string // the systemd unit file
	Gen           k3sgen.Options
	// TLSSANs and NodeIPs are what the configuration asks for, from all
	// sources (for assertions).
	TLSSANs []string
	NodeIPs []string
	// Traps are files that must never be opened by k3scert: the FIFO and
	// the airgap tarball.
	Traps []string
	// Foreign are certificate files under the data dir that are not K3s's.
	Foreign []string
	// Registry are the registry CA files.
	Registry []string
	// Leftover is the leftover certificate, when Options.Leftovers.
	Leftover string
}

// New generates the node at time now (its first start).
func New(t testing.TB, o Options, now time.Time) *Node {
	t.Helper()
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.Profile.Name == "" {
		o.Profile = k3s.ProfileCurrent
	}
	if o.AirgapSize == 0 {
		o.AirgapSize = 4 << 30
	}
	root := t.TempDir()
	n := &Node{T: t, O: o, Root: root, DataDir: filepath.Join(root, "var/lib/rancher", string(o.Program))}
	n.ConfigFile = filepath.Join(root, "etc/rancher", string(o.Program), "config.yaml")
	n.Kubeconfig = filepath.Join(root, "etc/rancher", string(o.Program), string(o.Program)+".yaml")

	nodeIPs := []net.IP{net.ParseIP("192.168.50.10")}
	sans := []string{"k3s.example.com"}
	if o.IPv6 {
		nodeIPs = append(nodeIPs, net.ParseIP("fd00::10"))
		sans = append(sans, "2001:db8::1")
	}
	n.Gen = k3sgen.Options{DataDir: n.DataDir, Program: o.Program, Profile: o.Profile, NodeName: "node-1", NodeIPs: nodeIPs,
		TLSSANs: sans, Listener: !o.StaticListener, DisableETCD: o.DisableETCD, RancherCertDir: o.RancherCertDir}
	if o.Agent {
		if o.ServerURL == "" {
			o.ServerURL = fmt.Sprintf("https://127.0.0.1:%d", k3s.DefaultPorts(o.Program).Supervisor)
		}
		if o.KubeletServer == "" {
			o.KubeletServer = "https://127.0.0.1:6444"
		}
		n.O = o
		n.ServerDataDir = filepath.Join(root, "server-node", string(o.Program))
		srv := n.Gen
		srv.DataDir, srv.NoAgent = n.ServerDataDir, true
		if _, err := k3sgen.Start(srv, now); err != nil {
			t.Fatalf("server start: %v", err)
		}
		n.Gen.AgentOnly, n.Gen.ServerDataDir, n.Gen.Listener = true, n.ServerDataDir, false
		n.Kubeconfig = ""
	} else {
		n.Gen.Kubeconfig = n.Kubeconfig
	}
	n.writeConfig()
	if o.Config && !o.Agent {
		n.Kubeconfig = filepath.Join(root, "root/.kube/k3s.yaml")
		n.Gen.Kubeconfig = n.Kubeconfig
	}
	for _, ip := range nodeIPs {
		n.NodeIPs = append(n.NodeIPs, ip.String())
	}
	n.TLSSANs = n.Gen.TLSSANs
	n.Start(now)
	if o.StaticListener && !o.Agent {
		n.writeStaticListener(now)
	}
	if o.Leftovers && !o.Agent && !o.Profile.LegacyNames {
		n.writeLeftover(now)
	}
	if !o.NoJunk {
		n.writeJunk(now)
	}
	return n
}

// Start emulates a service start at now.
func (n *Node) Start(now time.Time) k3sgen.Result {
	n.T.Helper()
	res, err := k3sgen.Start(n.Gen, now)
	if err != nil {
		n.T.Fatalf("start: %v", err)
	}
	if n.O.Agent {
		n.writeAgentState()
	}
	return res
}

// Path is a path under the data dir.
func (n *Node) Path(rel string) string { return filepath.Join(n.DataDir, filepath.FromSlash(rel)) }

// Role is the node's role.
func (n *Node) Role() k3s.Role {
	if n.O.Agent {
		return k3s.RoleAgent
	}
	return k3s.RoleServer
}

func (n *Node) write(p string, b []byte, mode os.FileMode) {
	n.T.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.T.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		n.T.Fatal(err)
	}
}

// writeConfig writes config.yaml (+ drop-ins) and the unit the way
// install.sh and an operator would.
func (n *Node) writeConfig() {
	p := string(n.O.Program)
	unitName := "k3s"
	switch {
	case n.O.Program == k3s.RKE2 && n.O.Agent:
		unitName = "rke2-agent"
	case n.O.Program == k3s.RKE2:
		unitName = "rke2-server"
	case n.O.Agent:
		unitName = "k3s-agent"
	}
	sub := "server"
	if n.O.Agent {
		sub = "agent"
	}
	n.Unit = filepath.Join(n.Root, "etc/systemd/system", unitName+".service")
	var flags []string
	cfg := "write-kubeconfig-mode: \"0644\"\n"
	if n.O.Config && !n.O.Agent {
		// Spread over every source K3s reads: config.yaml has the first
		// name, a drop-in appends, the unit adds the rest.
		cfg += "tls-san:\n  - " + n.Gen.TLSSANs[0] + "\nnode-ip: 192.168.50.10\n"
		n.write(n.ConfigFile+".d/10-write.yaml", []byte("write-kubeconfig: /root/.kube/k3s.yaml\n"), 0o600)
		more := "tls-san+:\n  - lb.example.com\n"
		if n.O.IPv6 {
			more += "node-ip+: [\"fd00::10\"]\n"
		}
		n.write(n.ConfigFile+".d/20-lb.yaml", []byte(more), 0o600)
		n.Gen.TLSSANs = append(n.Gen.TLSSANs, "lb.example.com")
		for _, s := range n.Gen.TLSSANs[1:] {
			if s != "lb.example.com" {
				flags = append(flags, "'--tls-san'", "'"+s+"'")
			}
		}
	} else if !n.O.Agent {
		cfg += "tls-san:\n"
		for _, s := range n.Gen.TLSSANs {
			cfg += "  - \"" + s + "\"\n"
		}
		cfg += "node-ip: \"" + joinIPs(n.Gen.NodeIPs) + "\"\n"
	}
	if n.O.DisableETCD {
		flags = append(flags, "'--disable-etcd'")
	}
	n.write(n.ConfigFile, []byte(cfg), 0o600)
	unit := fmt.Sprintf(`[Unit]
Description=Lightweight Kubernetes
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%%N
EnvironmentFile=-/etc/sysconfig/%%N
EnvironmentFile=-/etc/systemd/system/%s.service.env
KillMode=process
Delegate=yes
TimeoutStartSec=0
Restart=always
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStart=/usr/local/bin/%s \
    %s \
`, unitName, p, sub)
	for _, f := range flags {
		unit += "\t" + f + " \\\n"
	}
	unit += "\n"
	n.write(n.Unit, []byte(unit), 0o644)
	env := strings.ToUpper(p) + "_TOKEN=K10secret::server:secret\n"
	if n.O.Agent {
		// install.sh writes K3S_URL next to the token for agents; an
		// operator later moved it to a drop-in as well.
		env += strings.ToUpper(p) + "_URL=" + n.O.ServerURL + "\n"
		n.write(n.ConfigFile+".d/10-server.yaml", []byte("server: "+n.O.ServerURL+"\nnode-label+:\n  - zone=a\n"), 0o600)
	}
	n.write(filepath.Join(n.Root, "etc/systemd/system", unitName+".service.env"), []byte(env), 0o600)
}

func joinIPs(ips []net.IP) string {
	var s []string
	for _, ip := range ips {
		s = append(s, ip.String())
	}
	return strings.Join(s, ",")
}

// expiredCA makes a self-signed CA that expired long before now.
func expiredCA(t testing.TB, cn string, now time.Time) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	nb := now.Add(-pki.Days(3000))
	c, err := pki.NewCA(cn, key, nb, now.Add(-pki.Days(400)))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return c, kb
}

// writeJunk writes the non-K3s state of a real node.
func (n *Node) writeJunk(now time.Time) {
	t := n.T
	snap := n.Path("agent/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/17/fs")
	old, _ := expiredCA(t, "DST Root CA X3", now)
	n.write(filepath.Join(snap, "etc/ssl/certs/DST_Root_CA_X3.pem"), pki.EncodeCerts(old), 0o644)
	testCA, testKey := expiredCA(t, "Python test CA", now)
	n.write(filepath.Join(snap, "usr/lib/python3.11/test/keycert.pem"), append(pki.EncodeCerts(testCA), testKey...), 0o644)
	n.write(filepath.Join(snap, "usr/lib/python3.11/test/keycert.crt"), pki.EncodeCerts(testCA), 0o644)
	n.write(filepath.Join(snap, "usr/lib/python3.11/test/keycert.key"), testKey, 0o600)
	n.write(n.Path("agent/containerd/io.containerd.metadata.v1.bolt/meta.db"), []byte("bolt\x00not a certificate"), 0o600)
	n.Foreign = append(n.Foreign, filepath.Join(snap, "etc/ssl/certs/DST_Root_CA_X3.pem"), filepath.Join(snap, "usr/lib/python3.11/test/keycert.crt"))

	fifo := n.Path("agent/containerd/io.containerd.grpc.v1.cri/sandboxes/trap.crt")
	if err := os.MkdirAll(filepath.Dir(fifo), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	n.Traps = append(n.Traps, fifo)

	tar := n.Path("agent/images/" + string(n.O.Program) + "-airgap-images-amd64.tar")
	if err := os.MkdirAll(filepath.Dir(tar), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(tar)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(n.O.AirgapSize); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	n.Traps = append(n.Traps, tar)

	reg := n.Path("agent/etc/containerd/certs.d/registry.example.com:5000/ca.crt")
	regKey, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	regCA, err := pki.NewCA("Example Registry CA", regKey, now.Add(-pki.Days(10)), now.Add(pki.Days(3000)))
	if err != nil {
		t.Fatal(err)
	}
	n.write(reg, pki.EncodeCerts(regCA), 0o644)
	n.write(filepath.Dir(reg)+"/hosts.toml", []byte("server = \"https://registry.example.com:5000\"\n[host.\"https://registry.example.com:5000\"]\n  ca = \""+reg+"\"\n"), 0o644)
	n.Registry = append(n.Registry, reg)
	n.write(n.Path("agent/etc/containerd/config.toml"), []byte("version = 2\n"), 0o600)

	kubeletCA, _ := expiredCA(t, "kubelet-self@1600000000", now)
	n.write(n.Path("agent/kubelet/pki/kubelet.crt"), pki.EncodeCerts(kubeletCA), 0o644)
	n.write(n.Path("agent/pod-manifests/etcd.yaml"), []byte("apiVersion: v1\nkind: Pod\n"), 0o600)
	n.Foreign = append(n.Foreign, n.Path("agent/kubelet/pki/kubelet.crt"))

	// A `k3s certificate rotate` backup of expired leaves.
	backup := "server/tls-1600000000/client-admin.crt"
	if n.O.Agent {
		backup = "agent/tls-1600000000/client-kubelet.crt"
	}
	bk, _ := expiredCA(t, "system:admin", now)
	n.write(n.Path(backup), pki.EncodeCerts(bk), 0o644)
	n.Foreign = append(n.Foreign, n.Path(backup))
	if !n.O.Agent {
		tmp, _ := expiredCA(t, "apiserver-loopback-client-ca@1600000000", now)
		n.write(n.Path("server/tls/temporary-certs/apiserver-loopback-client__.crt"), pki.EncodeCerts(tmp), 0o644)
		n.Foreign = append(n.Foreign, n.Path("server/tls/temporary-certs/apiserver-loopback-client__.crt"))
	}
}

// writeLeftover writes an expired pre-v1.21.2 client-cloud-controller
// pair signed by the node's client-ca, as K3s v1.21.1 left it.
func (n *Node) writeLeftover(now time.Time) {
	t := n.T
	caB, err := os.ReadFile(n.Path("server/tls/client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKeyB, err := os.ReadFile(n.Path("server/tls/client-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	cas, err := pki.ParseCerts(caB)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _, err := pki.ParseKey(caKeyB)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	nb := cas[0].NotBefore
	na := now.Add(-pki.Days(30))
	if !na.After(nb) {
		na = nb.Add(time.Hour)
	}
	c, err := pki.SignLeaf(pki.LeafRequest{CN: "cloud-controller-manager", Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: nb, NotAfter: na}, key.Public(), cas[0], caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	n.Leftover = n.Path("server/tls/client-cloud-controller.crt")
	n.write(n.Leftover, pki.EncodeCerts(c, cas[0]), 0o644)
	n.write(n.Path("server/tls/client-cloud-controller.key"), kb, 0o600)
}

// writeStaticListener puts a user-provided listener certificate (its own
// CA, not server-ca) into dynamic-cert.json, annotated static.
func (n *Node) writeStaticListener(now time.Time) {
	t := n.T
	caKey, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("Corp Issuing CA", caKey, now.Add(-pki.Days(100)), now.Add(pki.Days(2000)))
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	dns, ips := n.Gen.ListenerSANs()
	leaf, err := pki.SignLeaf(pki.LeafRequest{CN: "k3s.example.com", DNSNames: dns, IPs: ips, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore: now.Add(-pki.Days(10)), NotAfter: now.Add(pki.Days(200))}, key.Public(), ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k3sgen.MarshalListenerFor(n.O.Program, n.O.Profile, []*x509.Certificate{leaf, ca}, kb, true)
	if err != nil {
		t.Fatal(err)
	}
	n.write(n.Path(k3s.ListenerSpec(n.O.Program).JSONPath), b, 0o600)
}

// writeAgentState writes what a running agent keeps besides its
// certificates: the load balancer's server list
// (agent/etc/<p>-agent-load-balancer.json, and for RKE2, whose apiserver
// port differs, <p>-api-server-agent-load-balancer.json; k3s
// pkg/agent/loadbalancer) and kubeconfigs that point at the local load
// balancer.
func (n *Node) writeAgentState() {
	t := n.T
	addr, ok := k3s.ServerAddress(n.O.ServerURL)
	if !ok {
		t.Fatalf("bad ServerURL %q", n.O.ServerURL)
	}
	servers := n.O.LBServers
	if len(servers) == 0 {
		servers = []string{addr}
	}
	lb := func(url string, addrs []string) []byte {
		b, err := json.MarshalIndent(k3s.LoadBalancerState{ServerURL: url, ServerAddresses: addrs}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := k3s.AgentLoadBalancerFiles(n.O.Program)
	n.write(n.Path(files[0]), lb(n.O.ServerURL, servers), 0o600)
	if n.O.Program == k3s.RKE2 {
		api := n.O.APIServers
		for _, s := range servers {
			if len(n.O.APIServers) > 0 {
				break
			}
			if h, _, err := net.SplitHostPort(s); err == nil {
				api = append(api, net.JoinHostPort(h, fmt.Sprint(k3s.DefaultPorts(k3s.RKE2).APIServer)))
			}
		}
		n.write(n.Path(files[1]), lb("https://"+api[0], api), 0o600)
	}
	for _, kc := range k3s.Kubeconfigs(n.O.Program, n.O.Profile) {
		if !strings.HasPrefix(kc, "agent/") {
			continue
		}
		p := n.Path(kc)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "server: ") {
				l = l[:strings.Index(l, "server: ")] + "server: " + n.O.KubeletServer
			}
			out = append(out, l)
		}
		n.write(p, []byte(strings.Join(out, "\n")), 0o600)
	}
}
