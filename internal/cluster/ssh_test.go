package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/cluster"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/rotate"
	corev1 "k8s.io/api/core/v1"
)

// The remote K3s start of the SSH test: this test binary, run by the
// node's `k3scert rotate --start-cmd`, does to the node's files what a
// K3s start does (k3sgen.Start: the embedded agent fetches fresh
// certificates, k3s.yaml is rewritten, leaves in the renew window are
// renewed; dynamic-cert.json is left to the listener).
func TestMain(m *testing.M) {
	if root := os.Getenv("K3SCERT_FAKE_K3S_START"); root != "" {
		os.Exit(fakeStart(root))
	}
	os.Exit(m.Run())
}

type genFile struct {
	DataDir, Kubeconfig, NodeName string
	SupervisorPort                int
	AgentOnly                     bool
	ServerDataDir                 string
}

func fakeStart(root string) int {
	if f := os.Getenv("K3SCERT_FAKE_K3S_FAIL_ONCE"); f != "" {
		if _, err := os.Stat(f); err == nil {
			os.Remove(f)
			fmt.Fprintln(os.Stderr, "fake k3s: the start fails (injected once)")
			return 1
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "gen.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var g genFile
	if err := json.Unmarshal(b, &g); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o := k3sgen.Options{DataDir: g.DataDir, Profile: k3s.ProfileCurrent, Kubeconfig: g.Kubeconfig, NodeName: g.NodeName, SupervisorPort: g.SupervisorPort,
		Listener: !g.AgentOnly, AgentOnly: g.AgentOnly, ServerDataDir: g.ServerDataDir}
	if _, err := k3sgen.Start(o, time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, addr string, what string, logf string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf)
	t.Fatalf("%s did not listen on %s:\n%s", what, addr, b)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// sshd is a real OpenSSH server on a loopback port, run by the test with
// its own host key, authorized key and configuration; stopped at the end.
type sshd struct {
	port               int
	key, known, logDir string
}

func startSSHD(t *testing.T) sshd {
	t.Helper()
	bin := "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		if testing.Short() {
			t.Skip("-short: no /usr/sbin/sshd (openssh-server; .ci/run installs it)")
		}
		t.Fatalf("the SSH runner test needs a real sshd (openssh-server; .ci/run installs it): %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd started as root insists on its privilege separation
		// directory (the package's service creates it at boot).
		if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
			if err := os.Mkdir("/run/sshd", 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove("/run/sshd") })
		}
	}
	dir := t.TempDir()
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_key"))
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "user_key"))
	pub, _ := os.ReadFile(filepath.Join(dir, "user_key.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	s := sshd{port: freePort(t), key: filepath.Join(dir, "user_key"), known: filepath.Join(dir, "known_hosts"), logDir: dir}
	hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	os.WriteFile(s.known, []byte(fmt.Sprintf("[127.0.0.1]:%d %s", s.port, hostPub)), 0o600)
	cfg := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
LogLevel ERROR
`, s.port, filepath.Join(dir, "host_key"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"))
	os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600)
	logf := filepath.Join(dir, "sshd.log")
	lf, _ := os.Create(logf)
	cmd := exec.Command(bin, "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); lf.Close() })
	waitPort(t, fmt.Sprintf("127.0.0.1:%d", s.port), "sshd", logf)
	return s
}

// kine is the cluster's shared datastore: the real kine binary on SQLite,
// which every server reaches as datastore-endpoint http://127.0.0.1:PORT.
func startKine(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(os.Getenv("K3SCERT_LAB_BIN"), "kine")
	if os.Getenv("K3SCERT_LAB_BIN") == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache/k3scert/labbin/kine")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kine binary (%v): set K3SCERT_LAB_BIN (make lab-bin builds it)", err)
	}
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logf := filepath.Join(dir, "kine.log")
	lf, _ := os.Create(logf)
	cmd := exec.Command(bin, "--endpoint", "sqlite://"+filepath.Join(dir, "state.db"), "--listen-address", addr, "--metrics-bind-address", "0")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); lf.Close() })
	waitPort(t, addr, "kine", logf)
	return "http://" + addr
}

type tnode struct {
	name, root, dataDir, kc, cfg string
	port                         int
}

func (n tnode) path(rel string) string { return filepath.Join(n.dataDir, filepath.FromSlash(rel)) }

// genServer writes a K3s server installed at install; with caFrom its CAs
// are that server's (one cluster: the bootstrap data).
func genServer(t *testing.T, name string, install time.Time, caFrom *tnode, endpoint string) tnode {
	t.Helper()
	root := t.TempDir()
	n := tnode{name: name, root: root, dataDir: filepath.Join(root, "var/lib/rancher/k3s"), kc: filepath.Join(root, "etc/rancher/k3s/k3s.yaml"),
		cfg: filepath.Join(root, "etc/rancher/k3s/config.yaml"), port: freePort(t)}
	if caFrom != nil {
		for _, dir := range []string{"server/tls", "server/tls/etcd"} {
			ms, _ := filepath.Glob(filepath.Join(caFrom.dataDir, dir, "*-ca.*"))
			for _, m := range ms {
				b, _ := os.ReadFile(m)
				os.MkdirAll(n.path(dir), 0o700)
				os.WriteFile(n.path(dir+"/"+filepath.Base(m)), b, 0o600)
			}
		}
	}
	g := genFile{DataDir: n.dataDir, Kubeconfig: n.kc, NodeName: name, SupervisorPort: n.port}
	o := k3sgen.Options{DataDir: g.DataDir, Profile: k3s.ProfileCurrent, Kubeconfig: g.Kubeconfig, NodeName: name, SupervisorPort: n.port, Listener: true}
	if _, err := k3sgen.Start(o, install); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	os.WriteFile(filepath.Join(root, "gen.json"), gb, 0o600)
	os.WriteFile(n.cfg, []byte(fmt.Sprintf("datastore-endpoint: %s\nhttps-listen-port: %d\n", endpoint, n.port)), 0o600)
	return n
}

// genAgent writes an agent node of server's cluster installed at install;
// its start fetches fresh certificates from server's CAs (k3sgen).
func genAgent(t *testing.T, name string, install time.Time, server tnode) tnode {
	t.Helper()
	root := t.TempDir()
	n := tnode{name: name, root: root, dataDir: filepath.Join(root, "var/lib/rancher/k3s")}
	g := genFile{DataDir: n.dataDir, NodeName: name, AgentOnly: true, ServerDataDir: server.dataDir}
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: n.dataDir, Profile: k3s.ProfileCurrent, NodeName: name, AgentOnly: true, ServerDataDir: server.dataDir}, install); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	os.WriteFile(filepath.Join(root, "gen.json"), gb, 0o600)
	return n
}

// serveK3s stands in for the node's running K3s on its :6443: it serves
// whatever dynamic-cert.json holds at each handshake (as the listener
// serves its backing copy) and answers /readyz to client certificates of
// the node's client-ca. Start and stop of "K3s" are the rotation's
// --stop-cmd/--start-cmd (no process is restarted).
func serveK3s(t *testing.T, n tnode) {
	t.Helper()
	cb, err := os.ReadFile(n.path("server/tls/client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cb)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		b, err := os.ReadFile(n.path("server/tls/dynamic-cert.json"))
		if err != nil {
			return nil, err
		}
		var s corev1.Secret
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		c, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
		return &c, err
	}
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), &tls.Config{GetCertificate: getCert, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	})
	srv := &http.Server{Handler: mux, ErrorLog: log.New(io.Discard, "", 0)} // clients probing the expired certificate hang up
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func readSecret(t *testing.T, n tnode, endpoint string) *corev1.Secret {
	t.Helper()
	ds, err := datastore.OpenNode(datastore.NodeOptions{DataDir: n.dataDir, Program: k3s.K3s, Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Store.Close()
	s, _, err := ds.Get(context.Background(), k3s.ListenerSpec(k3s.K3s).SecretKey())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jsonCert(t *testing.T, n tnode) []byte {
	t.Helper()
	b, err := os.ReadFile(n.path("server/tls/dynamic-cert.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s.Data[corev1.TLSCertKey]
}

func buildK3scert(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "k3scert")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/k3scert/k3scert/cmd/k3scert")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build k3scert: %v\n%s", err, out)
	}
	return bin
}

// The recovery of an expired 2-server cluster over SSH, for real: the
// system ssh client talks to a real sshd on a loopback port (BatchMode,
// strict host key checking against a known_hosts file); on each "node"
// the freshly built k3scert runs `rotate` on a generated K3s server whose
// shared datastore is a real kine (datastore-endpoint http://): the first
// server renews the shared k3s-serving secret through kine, the second
// adopts it. The node's K3s is a stand-in (serveK3s; its start is
// k3sgen's start run by --start-cmd). s2's first start fails once: its
// rotation rolls itself back, the cluster run stops there with the
// journal saying so, and --resume rotates s2 again and verifies the
// cluster: each server's API endpoint dialled with the cluster CA fetched
// over ssh, kubectl through each server, each node's own check.
func TestSSHRecoveryOfAnExpiredCluster(t *testing.T) {
	s := startSSHD(t)
	endpoint := startKine(t)
	bin := buildK3scert(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	install := time.Now().AddDate(0, 0, -400) // every leaf and the listener expired
	s1 := genServer(t, "s1", install, nil, endpoint)
	s2 := genServer(t, "s2", install, &s1, endpoint)
	a1 := genAgent(t, "a1", install, s1)
	// One cluster, one shared listener secret in kine: every server's copy
	// is the secret (dynamiclistener keeps them merged).
	os.WriteFile(s2.path("server/tls/dynamic-cert.json"), mustRead(t, s1.path("server/tls/dynamic-cert.json")), 0o600)
	ds, err := datastore.OpenNode(datastore.NodeOptions{DataDir: s1.dataDir, Program: k3s.K3s, Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	var seed corev1.Secret
	json.Unmarshal(mustRead(t, s1.path("server/tls/dynamic-cert.json")), &seed)
	seed.Name, seed.Namespace = "k3s-serving", "kube-system"
	enc, _ := datastore.EncodeSecret(&seed)
	if _, err := ds.Store.Put(context.Background(), k3s.ListenerSpec(k3s.K3s).SecretKey(), enc, 0); err != nil {
		t.Fatal(err)
	}
	ds.Store.Close()
	serveK3s(t, s1)
	serveK3s(t, s2)

	failOnce := filepath.Join(t.TempDir(), "fail-once")
	os.WriteFile(failOnce, nil, 0o600)
	node := func(n tnode, extraEnv string) string {
		start := fmt.Sprintf("K3SCERT_FAKE_K3S_START=%s %s%s", n.root, extraEnv, self)
		return fmt.Sprintf(`  - name: %s
    role: server
    host: 127.0.0.1
    api: 127.0.0.1:%d
    args: [-d, %s, --config, %s, --admin-kubeconfig, %s, --supervisor-port, "%d", --apiserver-port, "%d", --endpoint, "127.0.0.1:%d", --secret, none]
    rotateArgs: [--stop-cmd, "true", --start-cmd, %q]
`, n.name, n.port, n.dataDir, n.cfg, n.kc, n.port, n.port, n.port, start)
	}
	inv := fmt.Sprintf(`program: k3s
ssh:
  port: %d
  identityFile: %s
  knownHostsFile: %s
  k3scert: %s
  kubectl: kubectl
  rotateArgs: [--start-timeout, 2m]
nodes:
%s%s  - name: a1
    role: agent
    host: 127.0.0.1
    args: [-d, %s, --no-endpoints]
    rotateArgs: [--stop-cmd, "true", --start-cmd, "K3SCERT_FAKE_K3S_START=%s %s"]
`, s.port, s.key, s.known, bin, node(s1, ""), node(s2, "K3SCERT_FAKE_K3S_FAIL_ONCE="+failOnce+" "), a1.dataDir, a1.root, self)
	invPath := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(invPath, []byte(inv), 0o600)
	k3scert := func(args ...string) ([]byte, string, error) {
		cmd := exec.Command(bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.Bytes(), errb.String(), err
	}

	// The dry run lists every node in order with its exact command.
	out, stderr, err := k3scert("cluster", "rotate", "-i", invPath, "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, stderr)
	}
	i1, i2, i3 := bytes.Index(out, []byte("1. s1")), bytes.Index(out, []byte("2. s2")), bytes.Index(out, []byte("3. a1"))
	if i1 < 0 || i2 < i1 || i3 < i2 || !bytes.Contains(out, []byte("--cluster-listener renew")) || !bytes.Contains(out, []byte("--cluster-listener adopt")) ||
		!bytes.Contains(out, []byte("BatchMode=yes")) || !bytes.Contains(out, []byte("StrictHostKeyChecking=yes")) {
		t.Fatalf("dry run:\n%s", out)
	}

	// An unreachable node is found before anything changes: the run is
	// refused, every node is left alone, no journal is written.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(inv+"  - {name: a9, role: agent, host: nohost.invalid}\n"), 0o600)
	out, stderr, err = k3scert("cluster", "rotate", "-i", bad, "--yes")
	if err == nil || !strings.Contains(stderr, "preflight: 1 of 4 nodes cannot be reached") || !strings.Contains(stderr, "a9: ssh nohost.invalid failed") ||
		!strings.Contains(stderr, "nothing was changed") {
		t.Fatalf("run with an unreachable node: %v\n%s\nstderr:\n%s", err, out, stderr)
	}
	if _, err := os.Stat(bad + ".journal"); err == nil {
		t.Error("a refused run wrote a journal")
	}
	if _, err := os.Stat(rotate.JournalPath(s1.dataDir, k3s.RoleServer)); err == nil {
		t.Error("a refused run touched s1")
	}

	// The run: s1 renews, s2's start fails once and rolls s2 back.
	out, stderr, err = k3scert("cluster", "rotate", "-i", invPath, "--yes", "-o", "json")
	if err == nil {
		t.Fatalf("the run succeeded although s2's start fails:\n%s", out)
	}
	var rep cluster.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("report: %v\n%s\nstderr:\n%s", jerr, out, stderr)
	}
	if len(rep.Nodes) != 3 || rep.Nodes[0].State != "done" || rep.Nodes[1].State != "failed" || rep.Nodes[2].State != "not run" || rep.Verified {
		t.Fatalf("report after the failed run: %+v\nstderr:\n%s", rep.Nodes, stderr)
	}
	if !strings.Contains(rep.Error, "rolled it back") || !strings.Contains(rep.Error, "--resume") {
		t.Errorf("the error does not say the node rolled back and how to go on: %s", rep.Error)
	}
	st, err := cluster.ReadJournal(invPath + ".journal")
	if err != nil {
		t.Fatal(err)
	}
	if st.Nodes["s1"] != cluster.NodeDone || st.Nodes["s2"] != cluster.NodeFailed || st.Nodes["a1"] != cluster.NodePending || st.Complete {
		t.Fatalf("cluster journal: %+v", st.Nodes)
	}
	nj, err := rotate.ReadJournal(rotate.JournalPath(s2.dataDir, k3s.RoleServer))
	if err != nil || nj.End != "rolledback" {
		t.Fatalf("s2's own journal: end %q, %v", nj.End, err)
	}
	renewed := readSecret(t, s1, endpoint)
	if !bytes.Equal(renewed.Data[corev1.TLSCertKey], jsonCert(t, s1)) {
		t.Fatal("s1 did not renew the shared secret and its dynamic-cert.json alike")
	}

	// --resume: s1 is skipped, s2 is rotated again, the cluster verified.
	out, stderr, err = k3scert("cluster", "rotate", "-i", invPath, "--resume", "-o", "json")
	if err != nil {
		t.Fatalf("resume: %v\n%s\nstderr:\n%s", err, out, stderr)
	}
	rep = cluster.Report{}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	t.Logf("failed run's error: %s", st.Errors["s2"])
	t.Logf("after --resume:\n%s", rep.Text())
	if !rep.Verified || !rep.Resumed || rep.Nodes[0].State != "done earlier" || rep.Nodes[1].State != "done" || rep.Nodes[2].State != "done" || len(rep.Checks) != 3 {
		t.Fatalf("report after resume: %+v", rep)
	}
	for _, c := range rep.Checks {
		if (c.Role == cluster.RoleServer) != c.KubectlOK || len(c.Problems) > 0 || c.ServedNotAfter.Before(time.Now().AddDate(0, 0, 300)) {
			t.Errorf("check %+v", c)
		}
	}
	if rep.Nodes[1].Result == nil || rep.Nodes[1].Result.Downtime <= 0 {
		t.Errorf("s2's downtime not measured: %+v", rep.Nodes[1].Result)
	}
	// The secret was renewed once (by s1) and adopted by s2 as is.
	after := readSecret(t, s1, endpoint)
	if !bytes.Equal(after.Data[corev1.TLSCertKey], renewed.Data[corev1.TLSCertKey]) || !bytes.Equal(jsonCert(t, s2), renewed.Data[corev1.TLSCertKey]) {
		t.Error("s2 did not adopt the renewed secret as is (or re-signed it)")
	}
	c, _ := pki.ParseCerts(renewed.Data[corev1.TLSCertKey])
	if time.Now().After(c[0].NotAfter) {
		t.Errorf("the shared secret is expired: %s", c[0].NotAfter)
	}
	if st, err := cluster.ReadJournal(invPath + ".journal"); err != nil || !st.Complete {
		t.Errorf("cluster journal after resume: %+v %v", st, err)
	}

	// A controller that died after s2's own rotation completed but before
	// the cluster journal recorded it: --resume asks s2 to resume, s2's
	// journal says complete, so s2 counts as done and is NOT rotated again.
	lines := strings.SplitAfter(string(mustRead(t, invPath+".journal")), "\n")
	cut, starts := 0, 0
	for i, l := range lines {
		if strings.Contains(l, `"t":"started"`) && strings.Contains(l, `"node":"s2"`) {
			if starts++; starts == 2 {
				cut = i + 1
			}
		}
	}
	if cut == 0 {
		t.Fatalf("no second start of s2 in the journal:\n%s", strings.Join(lines, ""))
	}
	crashed := filepath.Join(t.TempDir(), "crashed.journal")
	os.WriteFile(crashed, []byte(strings.Join(lines[:cut], "")), 0o600)
	before, _ := filepath.Glob(rotate.JournalPath(s2.dataDir, k3s.RoleServer) + ".*")
	out, stderr, err = k3scert("cluster", "rotate", "-i", invPath, "--resume", "--journal", crashed, "-o", "json")
	if err != nil {
		t.Fatalf("resume after a crash: %v\n%s\nstderr:\n%s", err, out, stderr)
	}
	rep = cluster.Report{}
	json.Unmarshal(out, &rep)
	after2, _ := filepath.Glob(rotate.JournalPath(s2.dataDir, k3s.RoleServer) + ".*")
	if !rep.Verified || rep.Nodes[1].State != "done" || rep.Nodes[1].Result == nil || !strings.Contains(rep.Nodes[1].Result.Outcome, "had completed") || len(after2) != len(before) {
		t.Errorf("resume after a crash: s2 %+v, s2's journals before %d after %d", rep.Nodes[1], len(before), len(after2))
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
