package check_test

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/check/checktest"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen/realnode"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
)

// probeServers: check probes the agent's servers and nothing else (no
// default local ports, which other processes on a shared machine may own).
func probeServers(o *check.Options) {
	o.NoEndpoint = false
	o.Ports = &k3s.Ports{}
	o.Timeout = 2 * time.Second
}

func agentCodes(r report.Report, code string) []report.Finding { return r.FindingsWith(code) }

// TestAgentServers: an agent-only node shaped like a real one (containerd
// junk, K3S_URL in the unit's .env, server: in a config.yaml.d drop-in,
// the load balancer's json with a second server that is down, kubeconfigs
// on the local load balancer) whose server is a loopback TLS server
// serving, in turn: the server's real listener certificate (OK), an
// expired certificate signed by the server CA the agent holds (K3C401,
// the reference log's "/cacerts is not trusted … certificate has
// expired"), and a certificate of another CA (K3C402). The down server is
// K3C403 (info) and never raises the exit code; --no-endpoints judges
// nothing about the servers but still lists them.
func TestAgentServers(t *testing.T) {
	for _, prog := range []k3s.Program{k3s.K3s, k3s.RKE2} {
		t.Run(string(prog), func(t *testing.T) {
			srv := checktest.NewStandIn(t)
			down := checktest.ClosedAddr(t)
			n := realnode.New(t, realnode.Options{Program: prog, Agent: true, ServerURL: "https://" + srv.Addr,
				LBServers: []string{srv.Addr, down}, APIServers: []string{srv.Addr}, KubeletServer: "https://" + srv.Addr}, realT0)
			at := realT0.Add(40 * 24 * time.Hour)
			ca, caKey := checktest.ServerCA(t, filepath.Join(n.ServerDataDir, "server", "tls"))

			// The server's own listener: trusted, nothing to say but the down server.
			chain, key := checktest.ListenerPair(t, filepath.Join(n.ServerDataDir, filepath.FromSlash(k3s.ListenerSpec(prog).JSONPath)))
			srv.Set(t, chain, key)
			r, _ := checktest.CheckReal(t, n, at, probeServers)
			if r.Summary.ExitCode != report.ExitOK || len(agentCodes(r, "K3C401"))+len(agentCodes(r, "K3C402")) != 0 {
				checktest.Dump(t, r)
				t.Fatalf("healthy server: exit %d", r.Summary.ExitCode)
			}
			if f := agentCodes(r, "K3C403"); len(f) != 1 || f[0].Severity != report.Info || f[0].Location != down {
				checktest.Dump(t, r)
				t.Fatalf("down server: %+v", f)
			}
			if len(r.Node.Servers) != 2 || r.Node.Servers[0].Address != srv.Addr || r.Node.Servers[1].Address != down {
				t.Fatalf("servers %+v", r.Node.Servers)
			}
			from := strings.Join(r.Node.Servers[0].From, ",")
			for _, want := range []string{"config", "load-balancer agent/etc/" + string(prog) + "-agent-load-balancer.json", "agent/kubelet.kubeconfig"} {
				if !strings.Contains(from, want) {
					t.Errorf("server %s found from %q, want %q among them", srv.Addr, from, want)
				}
			}
			trusted := false
			for _, e := range r.Endpoints {
				if e.Address == srv.Addr && e.Role == check.AgentServerRole && e.Trusted {
					trusted = true
				}
			}
			if !trusted {
				t.Errorf("endpoints %+v: the server is not reported as trusted", r.Endpoints)
			}

			// Expired, signed by the CA the agent trusts: the agent cannot restart.
			chain, key = checktest.ServingPEM(t, ca, caKey, at.Add(-400*24*time.Hour), at.Add(-24*time.Hour))
			srv.Set(t, chain, key)
			r, _ = checktest.CheckReal(t, n, at, probeServers)
			f := agentCodes(r, "K3C401")
			if r.Summary.ExitCode != report.ExitCritical || len(f) != 1 || f[0].Location != srv.Addr || len(agentCodes(r, "K3C402")) != 0 ||
				!strings.Contains(f[0].Message, "/cacerts is not trusted") || !strings.Contains(f[0].Remedy, "do not restart this agent yet") {
				checktest.Dump(t, r)
				t.Fatalf("expired server certificate: exit %d, %+v", r.Summary.ExitCode, f)
			}
			if len(agentCodes(r, "K3C001")) != 0 || len(agentCodes(r, "K3C103")) != 0 {
				checktest.Dump(t, r)
				t.Fatal("another node's listener judged as this node's certificate")
			}

			// --no-endpoints: offline, nothing judged, servers still listed.
			r, _ = checktest.CheckReal(t, n, at)
			if r.Summary.ExitCode != report.ExitOK || len(r.Findings) != 0 || len(r.Node.Servers) != 2 {
				checktest.Dump(t, r)
				t.Fatalf("--no-endpoints: exit %d, %d findings, servers %+v", r.Summary.ExitCode, len(r.Findings), r.Node.Servers)
			}

			// Another CA: the servers' CA was rotated, this agent was not restarted.
			otherKey, err := pki.NewECKey()
			if err != nil {
				t.Fatal(err)
			}
			other, err := pki.NewCA(string(prog)+"-server-ca@1700000000", otherKey, realT0, realT0.Add(3650*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			chain, key = checktest.ServingPEM(t, other, otherKey, realT0, at.Add(300*24*time.Hour))
			srv.Set(t, chain, key)
			r, _ = checktest.CheckReal(t, n, at, probeServers)
			f = agentCodes(r, "K3C402")
			if r.Summary.ExitCode != report.ExitWarning || len(f) != 1 || f[0].Location != srv.Addr || len(agentCodes(r, "K3C401")) != 0 || len(agentCodes(r, "K3C302")) != 0 {
				checktest.Dump(t, r)
				t.Fatalf("foreign CA: exit %d, %+v", r.Summary.ExitCode, f)
			}
		})
	}
}

// TestAgentServerUnreachable: every server down is info (K3C403), exit 0:
// an agent checked while its server is offline is not in trouble.
func TestAgentServerUnreachable(t *testing.T) {
	down := checktest.ClosedAddr(t)
	n := realnode.New(t, realnode.Options{Agent: true, NoJunk: true, ServerURL: "https://" + down, KubeletServer: "https://" + down}, realT0)
	r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour), probeServers)
	f := agentCodes(r, "K3C403")
	if r.Summary.ExitCode != report.ExitOK || len(f) != 1 || !strings.Contains(f[0].Message, "none of this agent's servers answered") {
		checktest.Dump(t, r)
		t.Fatalf("exit %d, %+v", r.Summary.ExitCode, f)
	}
}

// TestAgentNoServerConfigured: no server anywhere (a hand-made agent with
// its configuration elsewhere): K3C403 says so when probing, nothing
// without probes.
func TestAgentNoServerConfigured(t *testing.T) {
	n := realnode.New(t, realnode.Options{Agent: true, NoJunk: true}, realT0)
	for _, p := range []string{n.ConfigFile + ".d/10-server.yaml", filepath.Join(n.Root, "etc/systemd/system/k3s-agent.service.env"), n.Path(k3s.AgentLoadBalancerFiles(k3s.K3s)[0])} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, kc := range []string{"kubelet.kubeconfig", "kubeproxy.kubeconfig", "k3scontroller.kubeconfig"} {
		if err := os.Remove(n.Path("agent/" + kc)); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour), probeServers)
	f := agentCodes(r, "K3C403")
	if len(r.Node.Servers) != 0 || len(f) != 1 || !strings.Contains(f[0].Message, "no server found") {
		checktest.Dump(t, r)
		t.Fatalf("servers %+v, %+v", r.Node.Servers, f)
	}
	r, _ = checktest.CheckReal(t, n, realT0.Add(time.Hour))
	if len(agentCodes(r, "K3C403")) != 0 {
		t.Fatal("K3C403 without probes")
	}
}

// TestAgentServerCrossSigned: after a CA rotation with a cross-signed
// CA (k3s certificate rotate-ca with contrib/util/rotate-default-ca-certs.sh),
// a server serves its leaf from the new CA plus the new CA cross-signed by
// the old one: the agent that still holds the old CA trusts that chain, so
// there is no K3C402.
func TestAgentServerCrossSigned(t *testing.T) {
	srv := checktest.NewStandIn(t)
	n := realnode.New(t, realnode.Options{Agent: true, NoJunk: true, ServerURL: "https://" + srv.Addr, KubeletServer: "https://" + srv.Addr}, realT0)
	at := realT0.Add(24 * time.Hour)
	oldCA, oldKey := checktest.ServerCA(t, filepath.Join(n.ServerDataDir, "server", "tls"))
	newKey, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := pki.NewCA("k3s-server-ca@1800000000", newKey, realT0, realT0.Add(3650*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *newCA
	tmpl.SerialNumber = big.NewInt(2)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, oldCA, newKey.Public(), oldKey)
	if err != nil {
		t.Fatal(err)
	}
	cross, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	leaf, key := checktest.ServingPEM(t, newCA, newKey, realT0, at.Add(365*24*time.Hour))
	certs, err := pki.ParseCerts(leaf)
	if err != nil {
		t.Fatal(err)
	}
	srv.Set(t, pki.EncodeCerts(certs[0], cross), key)
	r, _ := checktest.CheckReal(t, n, at, probeServers)
	if len(agentCodes(r, "K3C402")) != 0 || r.Summary.ExitCode != report.ExitOK {
		checktest.Dump(t, r)
		t.Fatal("a cross-signed chain to the agent's CA is reported as another CA")
	}
	// Without the cross-signed intermediate the same leaf is K3C402.
	srv.Set(t, pki.EncodeCerts(certs[0]), key)
	r, _ = checktest.CheckReal(t, n, at, probeServers)
	if len(agentCodes(r, "K3C402")) != 1 {
		checktest.Dump(t, r)
		t.Fatal("no K3C402 for a leaf of a CA the agent does not hold")
	}
}
