package forecast_test

import (
	"context"
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

// TestRealNodeClasses: on realistic nodes of the matrix rows, forecast
// predicts renewal only for what K3s renews on that row: the pre-v1.21.2
// leftover and Rancher's self-signed kube-* pairs are never "renewed at a
// start"; the 2025 CA-signed kube-* serving certs are server leaves; the
// registry CA and nothing under containerd appear as K3s certificates.
func TestRealNodeClasses(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		row          string
		wantSched    string
		rancherPairs bool
	}{
		{"v1.24.3", report.ClassOther, true},
		{"v1.31.11", report.ClassServerLeaf, false},
	} {
		t.Run(tt.row, func(t *testing.T) {
			prof, _ := k3s.ProfileByName(tt.row)
			n := realnode.New(t, realnode.Options{Profile: prof, Leftovers: true, RancherCertDir: tt.rancherPairs, Config: true}, t0)
			o := checktest.RealOptions(n, t0.Add(24*time.Hour))
			o.Version = tt.row + "+k3s1"
			r, inv, err := check.Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			certs := forecast.FromInventory(inv, r.Node)
			seen := map[string]string{}
			for _, c := range certs {
				seen[c.Name] = c.Class
				if strings.Contains(c.Location, "/agent/containerd/") || strings.Contains(c.Location, "/agent/images/") {
					t.Errorf("forecast holds %s", c.Location)
				}
			}
			if got := seen["server/tls/client-cloud-controller.crt"]; got != report.ClassOther {
				t.Errorf("leftover class %q", got)
			}
			if got := seen["server/tls/kube-scheduler/kube-scheduler.crt"]; got != tt.wantSched {
				t.Errorf("kube-scheduler serving class %q, want %q", got, tt.wantSched)
			}
			f := forecast.Run(forecast.Input{Node: r.Node, Profile: prof, Certs: certs, Now: r.At, From: r.At,
				To: r.At.Add(500 * 24 * time.Hour), Restarts: []time.Time{r.At.Add(300 * 24 * time.Hour)}, Findings: r.Findings})
			for _, c := range f.Certificates {
				if c.Name != "server/tls/client-cloud-controller.crt" && !(tt.rancherPairs && strings.Contains(c.Name, "kube-scheduler/")) {
					continue
				}
				if len(c.Validities) > 1 {
					t.Errorf("%s predicted to be renewed: %+v", c.Name, c.Validities)
				}
			}
		})
	}
}
