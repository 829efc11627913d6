package rotate_test

import (
	"context"
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
	"github.com/k3scert/k3scert/internal/rotate"
)

// agentService stands for k3s-agent/rke2-agent: a start fetches fresh
// certificates from the server (k3sgen's agent start, as realnode does it)
// and restarts the kubelet, which then serves the new serving-kubelet
// certificate on its stand-in port. Either half can be switched off to
// reproduce an agent that could not fetch, or a kubelet that kept the old
// certificate.
type agentService struct {
	n             *realnode.Node
	kubelet       *checktest.StandIn
	clock         func() time.Time
	noFetch       bool
	kubeletStale  bool
	starts, stops int
}

func (s *agentService) Name() string               { return "fake k3s-agent" }
func (s *agentService) Stop(context.Context) error { s.stops++; return nil }
func (s *agentService) Start(context.Context) error {
	s.starts++
	if !s.noFetch {
		s.n.Start(s.clock())
	}
	if !s.kubeletStale {
		s.kubelet.Set(s.n.T, readTB(s.n.T, s.n.Path("agent/serving-kubelet.crt")), readTB(s.n.T, s.n.Path("agent/serving-kubelet.key")))
	}
	return nil
}

// agentRig is an agent-only realnode whose certificates were fetched 400
// days ago (all expired), whose server (a loopback stand-in) already
// serves a renewed listener certificate signed by the cluster's server
// CA, and whose kubelet (another stand-in) serves the old serving-kubelet.
type agentRig struct {
	n       *realnode.Node
	server  *checktest.StandIn
	kubelet *checktest.StandIn
	o       check.Options
	now     time.Time
}

func newAgentRig(t *testing.T, prog k3s.Program, row k3s.Profile, junk bool) agentRig {
	t.Helper()
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	srv, kub := checktest.NewStandIn(t), checktest.NewStandIn(t)
	n := realnode.New(t, realnode.Options{Program: prog, Profile: row, Agent: true, NoJunk: !junk, AirgapSize: 1 << 30,
		ServerURL: "https://" + srv.Addr, APIServers: []string{srv.Addr}, KubeletServer: "https://" + srv.Addr}, now.Add(-400*24*time.Hour))
	ca, caKey := checktest.ServerCA(t, filepath.Join(n.ServerDataDir, "server", "tls"))
	chain, key := checktest.ServingPEM(t, ca, caKey, now.Add(-time.Hour), now.Add(365*24*time.Hour))
	srv.Set(t, chain, key)
	kub.Set(t, mustRead(t, n.Path("agent/serving-kubelet.crt")), mustRead(t, n.Path("agent/serving-kubelet.key")))
	o := checktest.RealOptions(n, now)
	o.Profile = row.Name
	o.NoEndpoint, o.Ports, o.Timeout = false, &k3s.Ports{}, 2*time.Second
	return agentRig{n: n, server: srv, kubelet: kub, o: o, now: now}
}

func (r agentRig) plan(t *testing.T) (rotate.Plan, error) {
	t.Helper()
	in, err := rotate.GatherNode(context.Background(), rotate.GatherOptions{Check: r.o, Service: "fake k3s-agent", Datastore: "none"})
	if err != nil {
		t.Fatal(err)
	}
	return rotate.NewPlan(in)
}

func (r agentRig) run(t *testing.T, svc *agentService) (rotate.Plan, error) {
	t.Helper()
	p, err := r.plan(t)
	if err != nil {
		t.Fatal(err)
	}
	clock := stepClock(r.now)
	svc.n, svc.kubelet, svc.clock = r.n, r.kubelet, clock
	v := rotate.Verifier{Check: r.o, Now: clock, Timeout: 2 * time.Minute, KubeletAddress: r.kubelet.Addr}
	e := &rotate.Executor{Plan: p, Service: svc, Now: clock, Verify: v.Verify}
	return p, e.Apply(context.Background())
}

// TestAgentRotateVerify: for every release row and both programs, an
// expired agent-only node is rotated by restarting the agent, and verify
// proves it on what the agent really holds and serves: each of its four
// certificates is another one than before (new serial), chains to the
// agent's server-ca/client-ca copies, and the kubelet serves the new
// serving-kubelet certificate. Afterwards check exits 0 with the server
// probed.
func TestAgentRotateVerify(t *testing.T) {
	for i, row := range k3s.Rows {
		for _, prog := range []k3s.Program{k3s.K3s, k3s.RKE2} {
			t.Run(row.Name+"/"+string(prog), func(t *testing.T) {
				rig := newAgentRig(t, prog, row, i == len(k3s.Rows)-1)
				r, _, err := check.Run(context.Background(), rig.o)
				if err != nil {
					t.Fatal(err)
				}
				if r.Summary.ExitCode != report.ExitCritical || len(r.FindingsWith("K3C001")) != 4 || len(r.FindingsWith("K3C401")) != 0 {
					checktest.Dump(t, r)
					t.Fatalf("before: exit %d", r.Summary.ExitCode)
				}
				svc := &agentService{}
				p, err := rig.run(t, svc)
				if err != nil {
					t.Fatalf("agent rotation: %v", err)
				}
				if p.Method != "restart-agent" || len(p.AgentBefore) != 4 || svc.starts != 1 {
					t.Fatalf("method %s, %d agent certificates recorded, %d starts", p.Method, len(p.AgentBefore), svc.starts)
				}
				for _, b := range p.AgentBefore {
					c := firstCert(t, mustRead(t, b.Path))
					if pki.Fingerprint(c) == b.SHA256 || c.SerialNumber.Text(16) == b.Serial {
						t.Errorf("%s not renewed", b.Path)
					}
				}
				o := rig.o
				o.At = rig.now.Add(time.Hour)
				r, _, err = check.Run(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				if r.Summary.ExitCode != report.ExitOK {
					checktest.Dump(t, r)
					t.Fatalf("after: exit %d", r.Summary.ExitCode)
				}
			})
		}
	}
}

// TestAgentRotateVerifyFails: verify refuses what a restart did not
// really renew, and the executor rolls the agent back to its backup: the
// agent could not fetch (the same certificates as before), or the kubelet
// still serves the old serving certificate. And a server that serves an
// expired certificate (K3C401) stops the plan before the agent is touched.
func TestAgentRotateVerifyFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  agentService
		want string
	}{
		{"no fetch", agentService{noFetch: true}, "still the certificate from before the rotation"},
		{"kubelet stale", agentService{kubeletStale: true}, "still serves another certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rig := newAgentRig(t, k3s.K3s, k3s.ProfileCurrent, false)
			before := mustRead(t, rig.n.Path("agent/client-kubelet.crt"))
			svc := tc.svc
			_, err := rig.run(t, &svc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply: %v, want %q", err, tc.want)
			}
			t.Logf("apply: %v", err)
			if !strings.Contains(err.Error(), "rolled back") {
				t.Errorf("no rollback: %v", err)
			}
			// The rollback restores agent/ and starts the agent again; a
			// real agent fetches anew at that start, so only an agent that
			// cannot fetch keeps exactly its old files.
			if got := mustRead(t, rig.n.Path("agent/client-kubelet.crt")); svc.noFetch && string(got) != string(before) {
				t.Error("agent/client-kubelet.crt not rolled back")
			}
			if svc.starts < 2 {
				t.Errorf("%d starts: the rollback did not start the agent again", svc.starts)
			}
		})
	}
	t.Run("server expired", func(t *testing.T) {
		rig := newAgentRig(t, k3s.K3s, k3s.ProfileCurrent, false)
		ca, caKey := checktest.ServerCA(t, filepath.Join(rig.n.ServerDataDir, "server", "tls"))
		chain, key := checktest.ServingPEM(t, ca, caKey, rig.now.Add(-400*24*time.Hour), rig.now.Add(-time.Hour))
		rig.server.Set(t, chain, key)
		before := snapshotAgent(t, rig.n)
		if _, err := rig.plan(t); err == nil || !strings.Contains(err.Error(), "K3C401") {
			t.Fatalf("plan: %v, want a refusal naming K3C401", err)
		}
		if after := snapshotAgent(t, rig.n); after != before {
			t.Error("the agent changed")
		}
	})
}

func snapshotAgent(t *testing.T, n *realnode.Node) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"client-kubelet.crt", "serving-kubelet.crt", "client-kube-proxy.crt", "server-ca.crt"} {
		b.Write(mustRead(t, n.Path("agent/"+f)))
	}
	return b.String()
}

func readTB(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAgentRotateServerExpiringSoon: a server whose listener is valid now
// but expires inside --verify-days does not roll the agent back: the agent
// rotation itself worked; the server's listener is that server's to renew
// (check on the agent shows it, forecast dates it).
func TestAgentRotateServerExpiringSoon(t *testing.T) {
	rig := newAgentRig(t, k3s.K3s, k3s.ProfileV118, false)
	ca, caKey := checktest.ServerCA(t, filepath.Join(rig.n.ServerDataDir, "server", "tls"))
	chain, key := checktest.ServingPEM(t, ca, caKey, rig.now.Add(-355*24*time.Hour), rig.now.Add(10*24*time.Hour))
	rig.server.Set(t, chain, key)
	if _, err := rig.run(t, &agentService{}); err != nil {
		t.Fatalf("agent rotation: %v", err)
	}
}
