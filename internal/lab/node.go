// Package lab is an emulated K3s server node built from the real upstream
// parts: kine on SQLite at server/db/state.db, kube-apiserver (built from
// k8s.io/kubernetes) on the node's own certificates, and a supervisor
// listener built from the rancher/dynamiclistener release of the node's
// era, wired as that K3s line wired it, proxying to the apiserver. Certificates are generated and renewed on each
// start following internal/k3s and the node's version profile; time moves
// by re-signing certificates into the past, never by touching the clock.
//
// The lab may read the clock (it runs real processes); everything it
// reports is in the node's virtual time: the real time plus the days the
// node has been advanced.
package lab

import (
	"context"
	"crypto/x509"
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

// Options describe a lab node.
type Options struct {
	// Root is the node's file system root: the data dir is
	// Root/var/lib/rancher/k3s and the admin kubeconfig
	// Root/etc/rancher/k3s/k3s.yaml, as on a real node.
	Root    string
	Program k3s.Program // default k3s
	Profile k3s.Profile // default current
	// Ports; 0 picks a free loopback port.
	SupervisorPort, APIServerPort, KinePort int
	// SecretsEncryption starts the apiserver with an aescbc encryption
	// config in server/cred/encryption-config.json, as
	// `k3s server --secrets-encryption` does.
	SecretsEncryption bool
	// DatastoreStopsWithK3s keeps kine's SQLite outside the data dir, so
	// that to k3scert the node looks like one whose datastore stops with
	// K3s and cannot be written offline (embedded etcd, RKE2): rotate plans
	// for such a node. The lab itself still reaches the datastore.
	DatastoreStopsWithK3s bool
	// Listener is the dynamiclistener release of the :6443 supervisor
	// ("v0.2.0", ...); empty: the one Profile names (ListenerFor).
	Listener string
	// Log receives one line per lab action; nil discards.
	Log func(format string, args ...any)

	// Cluster servers (cluster.go). NodeName is the node's name (default
	// lab-node); it is in the node's SANs and so, through dynamiclistener,
	// in the shared listener secret.
	NodeName string
	// ExternalDatastore: kine is not the node's own but the cluster's
	// (K3s's external-datastore mode: datastore-endpoint in config.yaml);
	// KinePort is where it listens and the node neither starts nor stops it.
	ExternalDatastore bool
	// Token, when set, is the cluster token (server/token); the supervisor
	// then serves the agent endpoints (/v1-k3s/...) and authenticates
	// agents with it.
	Token string
}

// Node is a lab node. It is not safe for concurrent use.
type Node struct {
	o       Options
	bins    Bins
	dataDir string
	kubecfg string
	offset  time.Duration
	started bool

	listener Listener
	supBin   string
	supDesc  SupervisorDescription
	// supStarted is when the running supervisor process was started,
	// supStartCert the dynamic-cert.json leaf it started with (nil on a
	// first start), seen the fingerprints of every listener certificate
	// served or in dynamic-cert.json since then.
	supStarted   time.Time
	supStartCert *x509.Certificate
	seen         map[string]bool
	supLogOffset int64

	kine, apiserver, supervisor *proc
}

// New prepares a node; nothing runs until Start.
func New(o Options) (*Node, error) {
	if o.Root == "" {
		return nil, errors.New("lab: Options.Root is required")
	}
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.Profile.Name == "" {
		o.Profile = k3s.ProfileCurrent
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.NodeName == "" {
		o.NodeName = "lab-node"
	}
	if o.ExternalDatastore && o.KinePort == 0 {
		return nil, errors.New("lab: ExternalDatastore needs the datastore's KinePort")
	}
	var lst Listener
	var err error
	if o.Listener != "" {
		lst, err = ListenerByRelease(o.Listener)
	} else {
		lst, err = ListenerFor(o.Profile)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	bins, err := FindBins()
	if err != nil {
		return nil, err
	}
	supBin := bins.Supervisors[lst.Binary()]
	desc, err := DescribeSupervisor(supBin, lst)
	if err != nil {
		return nil, err
	}
	if o.Token != "" && !desc.AgentServer {
		return nil, fmt.Errorf("lab: %s does not serve the agent endpoints (built before them): rebuild it with `make lab-bin`", supBin)
	}
	for _, p := range []*int{&o.SupervisorPort, &o.APIServerPort, &o.KinePort} {
		if *p == 0 {
			if *p, err = FreePort(); err != nil {
				return nil, err
			}
		}
	}
	abs, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	o.Root = abs
	n := &Node{o: o, bins: bins, listener: lst, supBin: supBin, supDesc: desc,
		dataDir: filepath.Join(abs, "var", "lib", "rancher", string(o.Program)),
		kubecfg: filepath.Join(abs, "etc", "rancher", string(o.Program), string(o.Program)+".yaml")}
	return n, nil
}

// DataDir is the node's data dir.
func (n *Node) DataDir() string { return n.dataDir }

// Kubeconfig is the admin kubeconfig K3s writes on start (k3s.yaml).
func (n *Node) Kubeconfig() string { return n.kubecfg }

// Profile is the node's version profile.
func (n *Node) Profile() k3s.Profile { return n.o.Profile }

// Listener is the dynamiclistener era the node's supervisor runs.
func (n *Node) Listener() Listener { return n.listener }

// ListenerLabel names the listener code the node runs, for reports:
// "dynamiclistener v0.2.0 (real)".
func (n *Node) ListenerLabel() string { return n.supDesc.Label() }

// Program is k3s or rke2.
func (n *Node) Program() k3s.Program { return n.o.Program }

// Ports are the node's listeners.
func (n *Node) Ports() k3s.Ports {
	return k3s.Ports{Supervisor: n.o.SupervisorPort, APIServer: n.o.APIServerPort, Etcd: n.o.KinePort}
}

// Offset is how far the node has been advanced.
func (n *Node) Offset() time.Duration { return n.offset }

// Now is the node's virtual time: the real time plus the offset.
func (n *Node) Now() time.Time { return time.Now().Add(n.offset).UTC() }

// Virtual converts a real certificate time into the node's virtual frame.
func (n *Node) Virtual(t time.Time) time.Time { return t.Add(n.offset).UTC() }

func (n *Node) genOptions() k3sgen.Options {
	return k3sgen.Options{DataDir: n.dataDir, Program: n.o.Program, Profile: n.o.Profile, Kubeconfig: n.kubecfg,
		APIServerPort: n.o.APIServerPort, SupervisorPort: n.o.SupervisorPort, NodeName: n.o.NodeName}
}

// Start does what starting K3s does: renew the certificate files per the
// profile (create them on first start), write k3s.yaml, start the datastore,
// the apiserver and the supervisor listener.
func (n *Node) Start(ctx context.Context) (k3sgen.Result, error) {
	if n.started {
		return k3sgen.Result{}, errors.New("lab: node already running")
	}
	// K3s renews at the real clock; the files carry the shift, so the
	// decision is the same as at the virtual date.
	res, err := k3sgen.Start(n.genOptions(), time.Now())
	if err != nil {
		return res, fmt.Errorf("lab: certificates: %w", err)
	}
	n.o.Log("%s start: renewed %d, created %d, kept %d certificate files", n.o.NodeName, len(res.Renewed), len(res.Created), len(res.Kept))
	if n.o.Token != "" {
		if err := n.writeToken(); err != nil {
			return res, err
		}
	}
	if n.o.SecretsEncryption {
		if err := n.writeEncryptionConfig(); err != nil {
			return res, err
		}
	}
	return res, n.startProcs(ctx)
}

// stopAPI stops the supervisor and the apiserver (kine keeps running).
func (n *Node) stopAPI() {
	n.supervisor.stop(5 * time.Second)
	n.apiserver.stop(10 * time.Second)
	n.supervisor, n.apiserver = nil, nil
	n.started = false
}

// Running reports whether the node's processes run.
func (n *Node) Running() bool { return n.started }

// Name is the node's name.
func (n *Node) Name() string { return n.o.NodeName }

// Stop stops the supervisor, the apiserver and kine, in that order.
func (n *Node) Stop() {
	n.supervisor.stop(5 * time.Second)
	n.apiserver.stop(10 * time.Second)
	n.kine.stop(5 * time.Second)
	n.supervisor, n.apiserver, n.kine = nil, nil, nil
	n.started = false
}

// Restart is `systemctl restart k3s`.
func (n *Node) Restart(ctx context.Context) (k3sgen.Result, error) {
	n.o.Log("restart k3s")
	n.Stop()
	return n.Start(ctx)
}

// Advance moves the node's time forward by days without touching the
// clock: the running processes are stopped, every certificate (files,
// dynamic-cert.json, k3s.yaml and the serving secret in the datastore) is
// re-signed with its validity shifted days into the past by the same CA
// keys, and the processes start again on the shifted files WITHOUT the
// renewal a K3s restart would do — exactly what a running K3s sees when
// the clock moves under it.
func (n *Node) Advance(ctx context.Context, days int) error {
	if n.o.SecretsEncryption {
		return errors.New("lab: Advance on a node with secrets encryption is not supported (the secret would need re-encryption)")
	}
	if n.o.ExternalDatastore {
		return errors.New("lab: a cluster server moves in time with its cluster (Cluster.Advance)")
	}
	n.o.Log("advance %d days", days)
	wasRunning := n.started
	s, err := k3sgen.NewShifter(n.dataDir, days)
	if err != nil {
		return err
	}
	if wasRunning {
		n.supervisor.stop(5 * time.Second)
		n.apiserver.stop(10 * time.Second)
		n.supervisor, n.apiserver = nil, nil
		if err := n.shiftSecret(ctx, s); err != nil {
			return err
		}
		n.kine.stop(5 * time.Second)
		n.kine = nil
		n.started = false
	}
	if err := s.Files(n.dataDir, n.kubecfg); err != nil {
		return fmt.Errorf("lab: advance files: %w", err)
	}
	n.offset += time.Duration(days) * 24 * time.Hour
	if wasRunning {
		return n.startProcs(ctx)
	}
	return nil
}

func (n *Node) logPath(name string) string {
	return filepath.Join(n.o.Root, "log", name+".log")
}

func (n *Node) tls(name string) string { return filepath.Join(n.dataDir, "server", "tls", name) }

func (n *Node) startProcs(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	kineAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.KinePort))
	if !n.o.ExternalDatastore {
		db, err := n.dbPath()
		if err != nil {
			return err
		}
		n.kine, err = startProc("kine", n.logPath("kine"), nil, n.bins.Kine,
			"--endpoint", "sqlite://"+db,
			"--listen-address", kineAddr, "--metrics-bind-address", "0")
		if err != nil {
			return err
		}
		if err := waitPort(ctx, n.kine, kineAddr, 20*time.Second); err != nil {
			return err
		}
	}
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.APIServerPort))
	args := []string{
		"--etcd-servers=http://" + kineAddr,
		"--secure-port=" + strconv.Itoa(n.o.APIServerPort), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--tls-cert-file=" + n.tls("serving-kube-apiserver.crt"), "--tls-private-key-file=" + n.tls("serving-kube-apiserver.key"),
		"--client-ca-file=" + n.tls("client-ca.crt"),
		"--service-account-key-file=" + n.tls("service.key"), "--service-account-signing-key-file=" + n.tls("service.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local", "--api-audiences=https://kubernetes.default.svc.cluster.local,k3s",
		"--service-cluster-ip-range=10.43.0.0/16", "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
		"--requestheader-client-ca-file=" + n.tls("request-header-ca.crt"), "--requestheader-allowed-names=system:auth-proxy",
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + n.tls("client-auth-proxy.crt"), "--proxy-client-key-file=" + n.tls("client-auth-proxy.key"),
		"--kubelet-client-certificate=" + n.tls("client-kube-apiserver.crt"), "--kubelet-client-key=" + n.tls("client-kube-apiserver.key"),
		"--cert-dir=" + n.tls("temporary-certs"), "--profiling=false", "--allow-privileged=true", "--storage-backend=etcd3",
		"--enable-priority-and-fairness=false", "--v=1",
	}
	if n.o.SecretsEncryption {
		args = append(args, "--encryption-provider-config="+filepath.Join(n.dataDir, "server", "cred", "encryption-config.json"))
	}
	n.apiserver, err = startProc("kube-apiserver", n.logPath("kube-apiserver"), nil, n.bins.KubeAPIServer, args...)
	if err != nil {
		return err
	}
	if err := waitPort(ctx, n.apiserver, apiAddr, 60*time.Second); err != nil {
		return err
	}
	if err := n.waitKey(ctx, "/registry/namespaces/kube-system", 60*time.Second); err != nil {
		return fmt.Errorf("lab: apiserver did not create kube-system: %w; log %s:\n%s", err, n.apiserver.log, n.apiserver.tail(2000))
	}
	if err := n.waitReady(ctx, 60*time.Second); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	n.seen = nil
	n.supStartCert = n.jsonCert()
	n.seen = map[string]bool{}
	n.supStarted = time.Now()
	n.supLogOffset = 0
	if fi, err := os.Stat(n.logPath("supervisor")); err == nil {
		n.supLogOffset = fi.Size()
	}
	n.supervisor, err = startProc("supervisor", n.logPath("supervisor"), nil, n.supBin, n.supervisorArgs()...)
	if err != nil {
		return err
	}
	supAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.SupervisorPort))
	if err := waitPort(ctx, n.supervisor, supAddr, 20*time.Second); err != nil {
		return err
	}
	n.started = true
	if err := n.settle(ctx, 30*time.Second); err != nil {
		return err
	}
	n.o.Log("running: kine %s, kube-apiserver %s, supervisor %s", kineAddr, apiAddr, supAddr)
	return nil
}

// settle waits until the listener has its certificate in both places.
// dynamiclistener defers loading until its storage initialises or a
// client connects, and writes the secret asynchronously; a started K3s
// has both copies, so a lab start is not done before they exist. Without
// this, an Advance right after a start (under load) finds no certificate
// to shift and the listener signs a fresh one afterwards. The copies need
// not agree: after the clock has passed the supervisor's own client
// certificate, dynamiclistener cannot update the secret, as on a real node
// (Observe reports the difference, check calls it K3C102).
func (n *Node) settle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n.served() // a TLS connection makes dynamiclistener load its certificate
		j := n.jsonCert()
		raw, _ := n.RawSecret(ctx) // raw: an encrypted secret counts too
		if j != nil && len(raw) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: the listener did not write its certificate to dynamic-cert.json and the secret within %s (json %v, secret %v); log %s:\n%s",
				timeout, j != nil, len(raw) > 0, n.supervisor.log, n.supervisor.tail(2000))
		}
		if ok, _ := n.supervisor.exited(); ok {
			return fmt.Errorf("lab: supervisor exited; log %s:\n%s", n.supervisor.log, n.supervisor.tail(2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close stops everything the node started.
func (n *Node) Close() { n.Stop() }
