package check_test

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/check/checktest"
	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen/realnode"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

var realT0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// notK3s says whether a location lies in state that is not K3s's.
func notK3s(loc string) bool {
	for _, d := range []string{"/agent/containerd/", "/agent/images/", "/agent/kubelet/", "/agent/pod-manifests/", "/temporary-certs/", "/server/tls-", "/agent/tls-"} {
		if strings.Contains(loc, d) {
			return true
		}
	}
	return strings.Contains(loc, "/agent/etc/") && !strings.Contains(loc, "/certs.d/")
}

// assertOnlyK3s: nothing outside the table (and the registry) was
// inventoried or judged; registry certificates have their own kind and no
// finding; the traps were never read (a read would be a K3C900 or an
// inventory entry).
func assertOnlyK3s(t *testing.T, n *realnode.Node, r report.Report, inv *source.Inventory) {
	t.Helper()
	for _, c := range inv.Certs {
		if notK3s(c.Location) {
			t.Errorf("inventoried foreign file %s", c.Location)
		}
		if c.Source == source.Registry && !strings.Contains(c.Location, "/certs.d/") {
			t.Errorf("registry kind outside certs.d: %s", c.Location)
		}
	}
	for _, f := range r.Findings {
		if notK3s(f.Location) || strings.Contains(f.Location, "/certs.d/") {
			t.Errorf("finding on non-K3s state: %s %s", f.Code, f.Location)
		}
	}
	for _, p := range append(append([]string{}, n.Traps...), n.Foreign...) {
		for _, c := range inv.Certs {
			if c.Location == p {
				t.Errorf("read %s", p)
			}
		}
		for _, pr := range inv.Problems {
			if pr.Location == p {
				t.Errorf("opened %s: %s", p, pr.Detail)
			}
		}
	}
	if !n.O.NoJunk {
		found := false
		for _, c := range r.Certificates {
			if c.Source == string(source.Registry) {
				found = true
			}
		}
		if !found {
			t.Error("registry CA not reported as its own source")
		}
	}
}

func forecastOK(t *testing.T, r report.Report, inv *source.Inventory) report.Forecast {
	t.Helper()
	prof, err := k3s.ProfileByName(r.Node.Profile)
	if err != nil {
		t.Fatalf("report profile %q does not resolve: %v", r.Node.Profile, err)
	}
	certs := forecast.FromInventory(inv, r.Node)
	f := forecast.Run(forecast.Input{Node: r.Node, Profile: prof, Certs: certs, Now: r.At, From: r.At, To: forecast.DefaultTo(certs, r.At), Findings: r.Findings})
	return f
}

// TestRealNodesEveryRow: for every matrix row and both programs, a healthy
// node shaped like a real one (containerd snapshots with expired roots, a
// 4 GiB sparse airgap tarball, registry CAs, kubelet state, a `k3s
// certificate rotate` backup, temporary-certs, IPv6 SANs, configuration
// spread over config.yaml, drop-ins and the unit, pre-v1.21.2 leftovers on
// modern rows, Rancher's kube-* pairs before 2025) checks OK (exit 0), with
// the exact row from --k3s-version and with the row detected from the
// files; forecast runs on it; agent-only nodes likewise.
func TestRealNodesEveryRow(t *testing.T) {
	for _, prog := range []k3s.Program{k3s.K3s, k3s.RKE2} {
		for _, row := range k3s.Rows {
			for _, agent := range []bool{false, true} {
				name := string(prog) + "/" + row.Name
				if agent {
					name += "/agent"
				}
				t.Run(name, func(t *testing.T) {
					n := realnode.New(t, realnode.Options{Program: prog, Profile: row, Agent: agent, Config: true, IPv6: true,
						Leftovers: !row.LegacyNames, RancherCertDir: !row.KCMSchedulerServing}, realT0)
					at := realT0.Add(30 * 24 * time.Hour)
					for _, how := range []string{"version", "detected"} {
						r, inv := checktest.CheckReal(t, n, at, func(o *check.Options) {
							if how == "version" {
								o.Version = row.Name + "+k3s1"
								if row.Name == "v1.18" {
									o.Version = "v1.18.20+k3s1"
								}
							}
						})
						if r.Summary.ExitCode != report.ExitOK {
							dumpReport(t, r)
							t.Fatalf("%s: exit %d on a healthy node", how, r.Summary.ExitCode)
						}
						if r.Node.ProfileSource == "" || (how == "detected" && !agent && !strings.Contains(r.Node.ProfileSource, "detected from the files")) {
							t.Errorf("profile source %q", r.Node.ProfileSource)
						}
						if how == "version" && r.Node.Profile != row.Name {
							t.Errorf("row %s, want %s", r.Node.Profile, row.Name)
						}
						assertOnlyK3s(t, n, r, inv)
						if agent {
							// the server it points at: K3S_URL/RKE2_URL in the unit's .env,
							// server: in a drop-in, the load balancer's json
							if len(r.Node.Servers) == 0 || r.Node.Servers[0].URL != n.O.ServerURL ||
								!strings.Contains(strings.Join(r.Node.Servers[0].From, ","), "config,load-balancer") {
								t.Errorf("%s: agent servers %+v, want %s from config and the load balancer", how, r.Node.Servers, n.O.ServerURL)
							}
						}
						left := 0
						for _, f := range r.Findings {
							if f.Code == "K3C005" {
								left++
								if f.Severity != report.Info || !strings.Contains(f.Message, "expired") {
									t.Errorf("leftover finding %+v", f)
								}
							}
						}
						if wantLeft := !row.LegacyNames && !agent; (left == 1) != wantLeft || left > 1 {
							t.Errorf("%s: %d leftover findings", how, left)
						}
						_ = forecastOK(t, r, inv)
					}
				})
			}
		}
	}
}

func dumpReport(t *testing.T, r report.Report) {
	t.Helper()
	t.Logf("profile %s (%s)", r.Node.Profile, r.Node.ProfileSource)
	for _, f := range r.Findings {
		t.Logf("  %s %s %s: %s", f.Severity, f.Code, f.Location, f.Message)
	}
}

// TestDetectedRows pins what the files can tell: the detected row always
// has the real row's renew window, naming generation and kube-* serving
// kind, and the ambiguous boundaries fall to the safe side.
func TestDetectedRows(t *testing.T) {
	want := map[string]string{
		"v1.18": "v1.18", "v1.19.1": "v1.18", "v1.21.2": "v1.21.2", "v1.21.8": "v1.21.2", "v1.22.12": "v1.21.2",
		"v1.24.0": "v1.24.0", "v1.24.3": "v1.24.0", "v1.31.9": "v1.31.9", "v1.31.10": "v1.31.9", "v1.31.11": "v1.31.11",
	}
	for _, row := range k3s.Rows {
		t.Run(row.Name, func(t *testing.T) {
			n := realnode.New(t, realnode.Options{Profile: row, NoJunk: true}, realT0)
			got, why := check.DetectProfile(n.DataDir, k3s.K3s, k3s.RoleServer)
			if got.Name != want[row.Name] || got.RenewDays != row.RenewDays || got.LegacyNames != row.LegacyNames || got.KCMSchedulerServing != row.KCMSchedulerServing {
				t.Errorf("detected %s (%s), want %s", got.Name, why, want[row.Name])
			}
			if got.ListenerRenews && !row.ListenerRenews || got.RegenTrigger && !row.RegenTrigger || got.JSONOnlyListenerRenewal() && !row.JSONOnlyListenerRenewal() {
				t.Errorf("detected row %s claims more than the real row %s", got.Name, row.Name)
			}
		})
	}
}

// TestDisableETCD: --disable-etcd in the unit means no etcd/server-client.crt
// and no K3C004 for it; the same node without the flag reports it missing.
func TestDisableETCD(t *testing.T) {
	n := realnode.New(t, realnode.Options{DisableETCD: true, NoJunk: true}, realT0)
	if _, err := os.Stat(n.Path("server/tls/etcd/server-client.crt")); !os.IsNotExist(err) {
		t.Fatalf("server-client.crt written: %v", err)
	}
	r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour))
	if r.Summary.ExitCode != report.ExitOK {
		dumpReport(t, r)
		t.Fatal("not OK")
	}
	r, _ = checktest.CheckReal(t, n, realT0.Add(time.Hour), func(o *check.Options) { o.UnitFile = filepath.Join(n.Root, "nope.service") })
	if len(findingsAt(r, "K3C004", "etcd/server-client.crt")) != 1 {
		dumpReport(t, r)
		t.Error("without --disable-etcd the missing etcd serving cert is not reported")
	}
}

func findingsAt(r report.Report, code, suffix string) []report.Finding {
	var out []report.Finding
	for _, f := range r.Findings {
		if f.Code == code && strings.HasSuffix(f.Location, suffix) {
			out = append(out, f)
		}
	}
	return out
}

// TestConfigSourcesSANs: tls-san and node IPs spread over config.yaml, a
// drop-in ("tls-san+") and the unit are all expected, so the serving
// certificates that carry them raise no K3C303; a name missing from every
// source is still reported; write-kubeconfig from a drop-in is the admin
// kubeconfig that is read.
func TestConfigSourcesSANs(t *testing.T) {
	n := realnode.New(t, realnode.Options{Config: true, IPv6: true, NoJunk: true}, realT0)
	r, inv := checktest.CheckReal(t, n, realT0.Add(time.Hour), func(o *check.Options) { o.TLSSANs = []string{"absent.example.com"} })
	miss := findingsAt(r, "K3C303", "serving-kube-apiserver.crt")
	if len(miss) != 1 || !strings.Contains(miss[0].Message, "absent.example.com") || strings.Contains(miss[0].Message, "lb.example.com") || strings.Contains(miss[0].Message, "2001:db8::1") {
		dumpReport(t, r)
		t.Fatalf("K3C303 %+v", miss)
	}
	seen := false
	for _, k := range inv.Kubeconfigs {
		if k.Location == n.Kubeconfig || strings.HasPrefix(k.Location, n.Kubeconfig+" ") {
			seen = true
		}
	}
	if !seen || !strings.HasSuffix(n.Kubeconfig, "root/.kube/k3s.yaml") {
		t.Errorf("write-kubeconfig %s not read", n.Kubeconfig)
	}
}

// TestStaticListener: a user-provided listener certificate (own CA,
// listener.cattle.io/static) is judged against its own chain: no K3C302 or
// K3C101 while valid; expired it is critical with the user-managed remedy.
func TestStaticListener(t *testing.T) {
	n := realnode.New(t, realnode.Options{StaticListener: true, NoJunk: true}, realT0)
	r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour))
	if r.Summary.ExitCode != report.ExitOK {
		dumpReport(t, r)
		t.Fatal("static listener not OK")
	}
	r, _ = checktest.CheckReal(t, n, realT0.Add(210*24*time.Hour))
	exp := findingsAt(r, "K3C001", "dynamic-cert.json")
	if len(exp) != 1 || exp[0].Severity != report.Critical || !strings.Contains(exp[0].Remedy, "user-provided") {
		dumpReport(t, r)
		t.Fatalf("expired static listener: %+v", exp)
	}
	if len(findingsAt(r, "K3C302", "dynamic-cert.json")) != 0 || len(findingsAt(r, "K3C101", "dynamic-cert.json")) != 0 {
		t.Error("static listener judged against server-ca")
	}
}

// TestSelfSignedKCMScheduler: before 2025, Rancher's --cert-dir pairs are
// warned inside the window and after expiry (K3C006, never critical, never
// K3C001); on the 2025 rows the CA-signed ones are ordinary K3s leaves.
func TestSelfSignedKCMScheduler(t *testing.T) {
	n := realnode.New(t, realnode.Options{Profile: k3s.ProfileV119, RancherCertDir: true, NoJunk: true}, realT0)
	for _, tt := range []struct {
		days   int
		expiry string
	}{{300, "expires"}, {400, "expired"}} {
		r, _ := checktest.CheckReal(t, n, realT0.Add(time.Duration(tt.days)*24*time.Hour), func(o *check.Options) { o.Version = "v1.30.4+k3s1" })
		for _, comp := range []string{"kube-scheduler", "kube-controller-manager"} {
			fs := findingsAt(r, "K3C006", comp+"/"+comp+".crt")
			if len(fs) != 1 || fs[0].Severity != report.Warning || !strings.Contains(fs[0].Message, tt.expiry) || !strings.Contains(fs[0].Remedy, "delete") {
				dumpReport(t, r)
				t.Fatalf("day %d %s: %+v", tt.days, comp, fs)
			}
			if len(findingsAt(r, "K3C001", comp+".crt")) != 0 || len(findingsAt(r, "K3C002", comp+".crt")) != 0 {
				t.Errorf("self-signed %s judged as a K3s leaf", comp)
			}
		}
	}
	cur := realnode.New(t, realnode.Options{NoJunk: true}, realT0)
	c := readCert(t, cur.Path("server/tls/kube-scheduler/kube-scheduler.crt"))
	if !strings.HasPrefix(c.Issuer.CommonName, "k3s-server-ca@") {
		t.Fatalf("issuer %s", c.Issuer.CommonName)
	}
	r, _ := checktest.CheckReal(t, cur, realT0.Add(250*24*time.Hour))
	if len(findingsAt(r, "K3C002", "kube-scheduler/kube-scheduler.crt")) != 1 {
		dumpReport(t, r)
		t.Error("CA-signed kube-scheduler serving cert inside the 120-day window not reported as K3C002")
	}
}

func readCert(t *testing.T, p string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := pki.ParseCerts(b)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

// TestLeftoversAndDeletions: on the current row, client-kube-proxy.crt and
// client-k3s-controller.crt are deleted at every start (not "missing"); a
// node upgraded without a restart still has them: info "removed at next
// start"; the pre-v1.21.2 client-cloud-controller.crt is info, never
// critical, however expired, and a restart does not change that.
func TestLeftoversAndDeletions(t *testing.T) {
	n := realnode.New(t, realnode.Options{Profile: k3s.ProfileV119, Leftovers: true, NoJunk: true}, realT0)
	// upgrade to the current row's files without a start: the proxy
	// certificates are still there.
	r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour), func(o *check.Options) { o.Version = "v1.33.3+k3s1" })
	for _, f := range []string{"client-kube-proxy.crt", "client-k3s-controller.crt"} {
		fs := findingsAt(r, "K3C005", f)
		if len(fs) != 1 || !strings.Contains(fs[0].Remedy, "deletes it at its next start") {
			dumpReport(t, r)
			t.Fatalf("%s: %+v", f, fs)
		}
	}
	n.Gen.Profile = k3s.ProfileCurrent
	n.Start(realT0.Add(2 * time.Hour))
	r, _ = checktest.CheckReal(t, n, realT0.Add(3*time.Hour))
	if r.Summary.ExitCode != report.ExitOK || len(findingsAt(r, "K3C004", ".crt")) != 0 {
		dumpReport(t, r)
		t.Fatal("deleted certificates reported")
	}
	fs := findingsAt(r, "K3C005", "client-cloud-controller.crt")
	if len(fs) != 1 || fs[0].Severity != report.Info || !strings.Contains(fs[0].Message, "expired") || !strings.Contains(fs[0].Remedy, "safe to remove") {
		t.Fatalf("leftover %+v", fs)
	}
	if r.Node.Profile != "v1.31.11" {
		t.Errorf("detected %s", r.Node.Profile)
	}
}

// TestAgentOnlyTrapsNeverOpened runs the file reader on an agent node whose
// agent/containerd holds a FIFO named *.crt: an open without O_NONBLOCK
// would hang the test, any open would show in the inventory.
func TestAgentOnlyTrapsNeverOpened(t *testing.T) {
	n := realnode.New(t, realnode.Options{Agent: true}, realT0)
	paths := source.Files{DataDir: n.DataDir, Program: k3s.K3s}.Paths()
	for _, p := range paths {
		if notK3s(p) {
			t.Errorf("would read %s", p)
		}
		if !strings.HasPrefix(p, n.DataDir+"/agent/") || strings.Count(strings.TrimPrefix(p, n.DataDir+"/agent/"), "/") != 0 {
			t.Errorf("agent path %s is not a top-level agent/ file", p)
		}
	}
	if len(paths) < 8 {
		t.Errorf("paths %v", paths)
	}
	r, _, err := check.Run(context.Background(), checktest.RealOptions(n, realT0.Add(time.Hour)))
	if err != nil || r.Node.Role != "agent" || r.Summary.ExitCode != report.ExitOK {
		dumpReport(t, r)
		t.Fatalf("agent: %v exit %d", err, r.Summary.ExitCode)
	}
}
