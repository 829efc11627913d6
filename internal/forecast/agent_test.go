package forecast_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/check/checktest"
	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen/realnode"
	"github.com/k3scert/k3scert/internal/report"
)

// TestAgentForecast: on an agent-only node whose server (a loopback
// stand-in serving the server's real listener certificate) was probed,
// the forecast says when each agent certificate expires, that a restart
// of the agent renews them all, and when its server's listener expires:
// on a release whose listener never renews (v1.18) that date is the
// agent's lock-out ("cannot start again"), and a planned agent restart
// does not move it; on a current release the server renews it itself.
func TestAgentForecast(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, row := range []string{"v1.18", "v1.31.11"} {
		t.Run(row, func(t *testing.T) {
			prof, _ := k3s.ProfileByName(row)
			srv := checktest.NewStandIn(t)
			n := realnode.New(t, realnode.Options{Profile: prof, Agent: true, ServerURL: "https://" + srv.Addr, KubeletServer: "https://" + srv.Addr}, t0)
			chain, key := checktest.ListenerPair(t, filepath.Join(n.ServerDataDir, "server/tls/dynamic-cert.json"))
			srv.Set(t, chain, key)
			o := checktest.RealOptions(n, t0.Add(24*time.Hour))
			o.Version = row + "+k3s1"
			if row == "v1.18" {
				o.Version = "v1.18.20+k3s1"
			}
			o.NoEndpoint, o.Ports, o.Timeout = false, &k3s.Ports{}, 2*time.Second
			r, inv, err := check.Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			certs := forecast.FromInventory(inv, r.Node)
			restart := r.At.Add(200 * 24 * time.Hour)
			f := forecast.Run(forecast.Input{Node: r.Node, Profile: prof, Certs: certs, Now: r.At, From: r.At,
				To: r.At.Add(700 * 24 * time.Hour), Restarts: []time.Time{restart}, Findings: r.Findings})
			agentLeaves, listener := 0, report.ForecastCertificate{}
			for _, c := range f.Certificates {
				switch {
				case c.Class == report.ClassAgentLeaf:
					agentLeaves++
					if len(c.Validities) < 2 || !c.Validities[0].ReplacedAt.Equal(restart) {
						t.Errorf("%s not renewed by the agent restart: %+v", c.Name, c.Validities)
					}
				case c.Class == report.ClassListener:
					listener = c
				}
			}
			if agentLeaves != 4 {
				t.Errorf("%d agent leaves, want 4 (serving-kubelet, client-kubelet, client-kube-proxy, client-k3s-controller)", agentLeaves)
			}
			if listener.Name != srv.Addr+" (its server's listener)" {
				t.Fatalf("server listener not forecast: %+v", f.Certificates)
			}
			var restartMsg string
			for _, e := range f.Events {
				if e.Type == report.EventRestart {
					restartMsg = e.Message
				}
			}
			if !strings.Contains(restartMsg, "planned restart of k3s-agent: renews 4 certificates") {
				t.Errorf("restart event %q", restartMsg)
			}
			if row == "v1.18" {
				if len(listener.Validities) != 1 {
					t.Errorf("v1.18 server listener renewed: %+v", listener.Validities)
				}
				if f.LockOut == nil || !f.LockOut.At.Equal(listener.Validities[0].NotAfter) || !strings.Contains(f.LockOut.Message, "this agent cannot start again") {
					t.Fatalf("lock-out %+v, want at the server listener's expiry %s", f.LockOut, listener.Validities[0].NotAfter)
				}
				found := false
				for _, a := range f.Actions {
					if a.Action == report.ActionRotateListener && strings.Contains(a.Remedy, "on the server") {
						found = true
					}
				}
				if !found {
					t.Errorf("no server-side listener action: %+v", f.Actions)
				}
			} else if f.LockOut != nil {
				t.Errorf("current row: lock-out %+v (the server renews its listener itself)", f.LockOut)
			}
		})
	}
}
