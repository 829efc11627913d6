package forecast_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/report"
)

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// node writes a K3s server node installed at install under profile p (with
// dynamic-cert.json and k3s.yaml) and returns its check report and the
// forecast certificates, as judged at at.
func node(t *testing.T, p k3s.Profile, install, at time.Time) (report.Report, []forecast.Cert) {
	t.Helper()
	dir := t.TempDir()
	kc := filepath.Join(dir, "etc", "k3s.yaml")
	data := filepath.Join(dir, "data")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: data, Profile: p, Kubeconfig: kc, Listener: true}, install); err != nil {
		t.Fatal(err)
	}
	r, inv, err := check.Run(context.Background(), check.Options{DataDir: data, Profile: p.Name, At: at,
		AdminKubeconfig: kc, NoEndpoint: true, ConfigFile: filepath.Join(dir, "no-config.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	return r, forecast.FromInventory(inv, r.Node)
}

func fc(t *testing.T, p k3s.Profile, install, from, to time.Time, restarts ...time.Time) report.Forecast {
	t.Helper()
	r, certs := node(t, p, install, from)
	return forecast.Run(forecast.Input{Node: r.Node, Profile: p, Certs: certs, From: from, To: to, Restarts: restarts})
}

func byName(t *testing.T, f report.Forecast, name string) report.ForecastCertificate {
	t.Helper()
	for _, c := range f.Certificates {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no certificate %q in forecast", name)
	return report.ForecastCertificate{}
}

func near(a, b time.Time, tol time.Duration) bool {
	d := a.Sub(b)
	return d <= tol && d >= -tol
}

func TestClassify(t *testing.T) {
	_, certs := node(t, k3s.ProfileV118, day("2020-07-24"), day("2020-08-01"))
	want := map[string]string{
		"server/tls/client-admin.crt":            report.ClassServerLeaf,
		"server/tls/client-cloud-controller.crt": report.ClassServerLeaf,
		"server/tls/serving-kube-apiserver.crt":  report.ClassServerLeaf,
		"server/tls/etcd/server-client.crt":      report.ClassServerLeaf,
		"server/tls/server-ca.crt":               report.ClassCA,
		"server/tls/etcd/peer-ca.crt":            report.ClassCA,
		"agent/client-kubelet.crt":               report.ClassAgentLeaf,
		"agent/server-ca.crt":                    report.ClassCA,
		"server/tls/dynamic-cert.json":           report.ClassListener,
		"k3s.yaml (user default)":                report.ClassAdminKubecfg,
		"k3s.yaml (user default) CA":             report.ClassCA,
	}
	got := map[string]forecast.Cert{}
	for _, c := range certs {
		got[c.Name] = c
	}
	for name, class := range want {
		c, ok := got[name]
		if !ok {
			t.Errorf("%s: not found (have %d certificates)", name, len(certs))
			continue
		}
		if c.Class != class {
			t.Errorf("%s: class %s, want %s", name, c.Class, class)
		}
	}
	if f := got["k3s.yaml (user default)"].Follows; f != "server/tls/client-admin.crt" {
		t.Errorf("k3s.yaml follows %q", f)
	}
}

// TestScenarios replays the reference verification (reference/README.md)
// under each profile.
func TestScenarios(t *testing.T) {
	type check struct {
		name        string
		renewals    int       // renewals of the named certificate inside the horizon
		notAfterAt  time.Time // its NotAfter after the last renewal (zero = unchanged)
		certificate string
	}
	tests := []struct {
		name     string
		profile  k3s.Profile
		install  time.Time
		from, to time.Time
		restarts []time.Time
		// lockOut is the expected first lock-out; zero = none in [from, to].
		lockOut      time.Time
		lockTol      time.Duration
		lockOpen     bool // the first lock-out lasts past to
		cause        string
		checks       []check
		noLockBefore time.Time
	}{
		{
			name: "scenario 2 v1.18: files renewed, listener not, lock-out at the old expiry", profile: k3s.ProfileV118,
			install: day("2020-07-24"), from: day("2020-07-25"), to: day("2022-12-31"), restarts: []time.Time{day("2021-07-20")},
			lockOut: day("2021-07-24"), lockTol: 24 * time.Hour, lockOpen: true, cause: "server/tls/dynamic-cert.json",
			checks: []check{
				{certificate: "server/tls/client-admin.crt", renewals: 1, notAfterAt: day("2022-07-20")},
				{certificate: "server/tls/serving-kube-apiserver.crt", renewals: 1, notAfterAt: day("2022-07-20")},
				{certificate: "k3s.yaml (user default)", renewals: 1, notAfterAt: day("2022-07-20")},
				{certificate: "agent/client-kubelet.crt", renewals: 1, notAfterAt: day("2022-07-20")},
				{certificate: "server/tls/dynamic-cert.json", renewals: 0},
				{certificate: "server/tls/server-ca.crt", renewals: 0},
			},
		},
		{
			name: "scenario 2 current: listener renews itself, no lock-out before 2022", profile: k3s.ProfileCurrent,
			install: day("2020-07-24"), from: day("2020-07-25"), to: day("2022-12-31"), restarts: []time.Time{day("2021-07-20")},
			// k3s.yaml, renewed at the restart, expires a year later: the
			// next lock-out without another restart.
			lockOut: day("2022-07-20"), lockTol: 24 * time.Hour, lockOpen: true, cause: "k3s.yaml (user default)",
			noLockBefore: day("2022-01-01"),
			checks: []check{
				{certificate: "server/tls/client-admin.crt", renewals: 1, notAfterAt: day("2022-07-20")},
				// 2021-07-24 − 120 d = 2021-03-26, then every 245 days.
				{certificate: "server/tls/dynamic-cert.json", renewals: 3},
			},
		},
		{
			name: "scenario 2 v1.19+: listener renews 90 days before", profile: k3s.ProfileV119,
			install: day("2020-07-24"), from: day("2020-07-25"), to: day("2021-12-31"), restarts: []time.Time{day("2021-07-20")},
			checks: []check{
				{certificate: "server/tls/dynamic-cert.json", renewals: 1, notAfterAt: day("2022-04-25")},
			},
		},
		{
			name: "scenario 1 v1.18: expired, restart renews files only, still locked out", profile: k3s.ProfileV118,
			install: day("2020-07-26"), from: day("2021-09-20"), to: day("2022-06-30"), restarts: []time.Time{day("2021-09-20").Add(time.Hour)},
			lockOut: day("2021-09-20"), lockOpen: true, cause: "server/tls/dynamic-cert.json",
			checks: []check{
				{certificate: "server/tls/client-admin.crt", renewals: 1, notAfterAt: day("2022-09-20")},
				{certificate: "server/tls/dynamic-cert.json", renewals: 0},
			},
		},
		{
			name: "scenario 1 current: the restart ends the lock-out", profile: k3s.ProfileCurrent,
			install: day("2020-07-26"), from: day("2021-09-20"), to: day("2022-06-30"), restarts: []time.Time{day("2021-09-20").Add(time.Hour)},
			lockOut: day("2021-09-20"), cause: "k3s.yaml (user default)",
			checks: []check{
				{certificate: "server/tls/client-admin.crt", renewals: 1, notAfterAt: day("2022-09-20")},
				// at once by the running listener, then 120 days before that expiry.
				{certificate: "server/tls/dynamic-cert.json", renewals: 2, notAfterAt: day("2023-05-22")},
			},
		},
		{
			name: "no restart on current: files expire, k3s.yaml locks out", profile: k3s.ProfileCurrent,
			install: day("2020-07-24"), from: day("2020-07-25"), to: day("2021-12-31"),
			lockOut: day("2021-07-24"), lockTol: 24 * time.Hour, lockOpen: true, cause: "k3s.yaml (user default)",
			checks: []check{{certificate: "server/tls/client-admin.crt", renewals: 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fc(t, tt.profile, tt.install, tt.from, tt.to, tt.restarts...)
			if f.APIVersion != report.APIVersion || f.Kind != "Forecast" {
				t.Errorf("apiVersion/kind = %s/%s", f.APIVersion, f.Kind)
			}
			for _, c := range tt.checks {
				got := byName(t, f, c.certificate)
				if n := len(got.Validities) - 1; n != c.renewals {
					t.Errorf("%s: %d renewals, want %d (%+v)", c.certificate, n, c.renewals, got.Validities)
				}
				if !c.notAfterAt.IsZero() {
					last := got.Validities[len(got.Validities)-1]
					if !near(last.NotAfter, c.notAfterAt, 25*time.Hour) {
						t.Errorf("%s: NotAfter %s, want about %s", c.certificate, last.NotAfter, c.notAfterAt)
					}
				}
			}
			switch {
			case tt.lockOut.IsZero() && f.LockOut != nil:
				t.Errorf("lock-out at %s, want none: %s", f.LockOut.At, f.LockOut.Message)
			case !tt.lockOut.IsZero() && f.LockOut == nil:
				t.Errorf("no lock-out, want one at %s", tt.lockOut)
			case !tt.lockOut.IsZero():
				if !near(f.LockOut.At, tt.lockOut, tt.lockTol) {
					t.Errorf("lock-out at %s, want about %s", f.LockOut.At, tt.lockOut)
				}
				if (f.LockOut.Until == nil) != tt.lockOpen {
					t.Errorf("lock-out until %v, open want %v", f.LockOut.Until, tt.lockOpen)
				}
				names := map[string]bool{}
				for _, id := range f.LockOut.Causes {
					c, _ := forecast.Find(f, id)
					names[c.Name] = true
				}
				if !names[tt.cause] {
					t.Errorf("lock-out causes %v, want %s among them", f.LockOut.Causes, tt.cause)
				}
			}
			if !tt.noLockBefore.IsZero() {
				for _, lo := range f.LockOuts {
					if lo.At.Before(tt.noLockBefore) {
						t.Errorf("lock-out at %s, want none before %s: %s", lo.At, tt.noLockBefore, lo.Message)
					}
				}
			}
		})
	}
}

// TestScenario2Actions checks what the user is told to do on v1.18.
func TestScenario2Actions(t *testing.T) {
	f := fc(t, k3s.ProfileV118, day("2020-07-24"), day("2020-07-25"), day("2022-12-31"), day("2021-07-20"))
	if len(f.Actions) == 0 || f.Actions[0].Action != report.ActionRotateListener || !f.Actions[0].Required {
		t.Fatalf("first action = %+v, want required %s", f.Actions, report.ActionRotateListener)
	}
	if d := f.Actions[0].Deadline; d == nil || !near(*d, day("2021-07-24"), 24*time.Hour) {
		t.Errorf("rotate-listener deadline %v, want about 2021-07-24", d)
	}
	var restart *report.ForecastEvent
	for i, e := range f.Events {
		if e.Type == report.EventRestart {
			restart = &f.Events[i]
		}
	}
	if restart == nil || !strings.Contains(restart.Message, "does NOT renew server/tls/dynamic-cert.json") {
		t.Errorf("restart event = %+v, want it to say the listener is not renewed", restart)
	}
	for _, e := range f.Events {
		if e.Type == report.EventLockOut && !strings.Contains(e.Message, "never renews the listener certificate") {
			t.Errorf("lock-out message %q does not say why", e.Message)
		}
	}
	// The lock-out comes before the files would have expired.
	for i := 1; i < len(f.Events); i++ {
		if f.Events[i].At.Before(f.Events[i-1].At) {
			t.Fatalf("events out of order at %d: %s before %s", i, f.Events[i].At, f.Events[i-1].At)
		}
	}
}

// TestFromReportAgrees: check -o html forecasts from the report alone; it
// must agree with the inventory-based forecast.
func TestFromReportAgrees(t *testing.T) {
	for _, p := range k3s.Profiles {
		t.Run(p.Name, func(t *testing.T) {
			r, certs := node(t, p, day("2020-07-24"), day("2021-01-01"))
			byInv := forecast.Run(forecast.Input{Node: r.Node, Profile: p, Certs: certs, From: r.At, To: forecast.DefaultTo(certs, r.At)})
			byRep := forecast.ForReport(r)
			if len(byInv.Certificates) != len(byRep.Certificates) {
				t.Fatalf("%d certificates from the inventory, %d from the report", len(byInv.Certificates), len(byRep.Certificates))
			}
			for i := range byInv.Certificates {
				a, b := byInv.Certificates[i], byRep.Certificates[i]
				if a.ID != b.ID || a.Class != b.Class || len(a.Validities) != len(b.Validities) {
					t.Errorf("%s: inventory %s/%d validities, report %s/%s/%d", a.ID, a.Class, len(a.Validities), b.ID, b.Class, len(b.Validities))
				}
			}
			if (byInv.LockOut == nil) != (byRep.LockOut == nil) || byInv.LockOut != nil && !byInv.LockOut.At.Equal(byRep.LockOut.At) {
				t.Errorf("lock-outs differ: %+v vs %+v", byInv.LockOut, byRep.LockOut)
			}
			if byRep.To.Year() != 2030 {
				t.Errorf("default to = %s, want the latest CA expiry (2030)", byRep.To)
			}
		})
	}
}

// TestPure runs the forecast on hand-made certificates.
func TestPure(t *testing.T) {
	from := day("2024-01-01")
	ca := forecast.Cert{ID: "ca", Name: "ca", Source: "file", Class: report.ClassCA, IsCA: true, NotBefore: day("2020-01-01"), NotAfter: day("2030-01-01")}
	cp := forecast.Cert{ID: "copy", Name: "copy.yaml (user admin)", Source: "kubeconfig", Class: report.ClassKubeconfigCopy, NotBefore: day("2023-06-01"), NotAfter: day("2024-06-01")}
	leaf := forecast.Cert{ID: "leaf", Name: "server/tls/client-admin.crt", Source: "file", Class: report.ClassServerLeaf, NotBefore: day("2023-06-01"), NotAfter: day("2024-06-01")}
	tests := []struct {
		name      string
		certs     []forecast.Cert
		restarts  []time.Time
		wantLock  time.Time
		wantFirst string // first required action
	}{
		{"copy is never refreshed", []forecast.Cert{ca, cp, leaf}, []time.Time{day("2024-05-01")}, day("2024-06-01"), report.ActionRefreshKubeconfig},
		{"restart outside the window does nothing", []forecast.Cert{ca, leaf}, []time.Time{day("2024-01-15")}, time.Time{}, report.ActionRestartServer},
		{"CA expiry is the last action", []forecast.Cert{ca}, nil, time.Time{}, report.ActionRotateCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forecast.Run(forecast.Input{Node: report.Node{Program: "k3s", Role: "server"}, Profile: k3s.ProfileCurrent,
				Certs: tt.certs, From: from, To: day("2030-06-01"), Restarts: tt.restarts})
			if tt.wantLock.IsZero() != (f.LockOut == nil) || f.LockOut != nil && !f.LockOut.At.Equal(tt.wantLock) {
				t.Errorf("lock-out %+v, want %v", f.LockOut, tt.wantLock)
			}
			if len(f.Actions) == 0 || f.Actions[0].Action != tt.wantFirst {
				t.Errorf("actions %+v, want %s first", f.Actions, tt.wantFirst)
			}
			if got := forecast.Renewals(f, "leaf"); len(tt.restarts) > 0 && tt.restarts[0].After(day("2024-02-01")) && len(got) != 1 {
				t.Errorf("leaf renewals %v", got)
			}
		})
	}
}

// TestAgentNode: on an agent node a planned restart is an agent restart; it
// renews the agent leaves whatever their age, and the kubelet endpoint
// follows its file.
func TestAgentNode(t *testing.T) {
	from := day("2024-01-01")
	leaf := forecast.Cert{ID: "/d/agent/client-kubelet.crt", Name: "agent/client-kubelet.crt", Source: "file", Class: report.ClassAgentLeaf,
		NotBefore: day("2023-12-01"), NotAfter: day("2024-12-01")}
	serving := forecast.Cert{ID: "/d/agent/serving-kubelet.crt", Name: "agent/serving-kubelet.crt", Source: "file", Class: report.ClassAgentLeaf,
		NotBefore: day("2023-03-01"), NotAfter: day("2024-03-01")}
	ep := forecast.Cert{ID: "127.0.0.1:10250", Name: "127.0.0.1:10250 (kubelet)", Source: "endpoint", Class: report.ClassFollower,
		Follows: "agent/serving-kubelet.crt", NotBefore: day("2023-03-01"), NotAfter: day("2024-03-01")}
	f := forecast.Run(forecast.Input{Node: report.Node{Program: "k3s", Role: "agent", DataDir: "/d"}, Profile: k3s.ProfileV118,
		Certs: []forecast.Cert{leaf, serving, ep}, From: from, To: day("2024-12-31"), Restarts: []time.Time{day("2024-02-01")}})
	for _, id := range []string{leaf.ID, serving.ID, ep.ID} {
		if r := forecast.Renewals(f, id); len(r) != 1 || !r[0].Equal(day("2024-02-01")) {
			t.Errorf("%s renewals %v, want the restart", id, r)
		}
	}
	if v, _ := forecast.ValidityAt(f, ep.ID, day("2024-06-01")); !v.NotAfter.Equal(day("2024-02-01").Add(-time.Hour).Add(365 * 24 * time.Hour)) {
		t.Errorf("kubelet endpoint after the restart expires %s, want restart − 1h + 365d", v.NotAfter)
	}
	if c, _ := forecast.Find(f, ep.ID); c.Follows != serving.ID {
		t.Errorf("endpoint follows %q", c.Follows)
	}
	var req []string
	for _, a := range f.Actions {
		if a.Required {
			req = append(req, a.Action)
		}
	}
	if len(req) == 0 || req[0] != report.ActionRestartAgent {
		t.Errorf("required actions %v, want %s", req, report.ActionRestartAgent)
	}
}
