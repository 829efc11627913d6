package exporter_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// node is a generated K3s node under t.TempDir().
type node struct {
	root, dataDir, kubeconfig, config string
	opts                              check.Options
}

// genNode writes a server node as K3s starts at each of starts (the first
// creates it, the next ones renew as a restart would).
func genNode(t testing.TB, prof k3s.Profile, starts ...time.Time) node {
	t.Helper()
	return genNodeAt(t, t.TempDir(), prof, starts...)
}

// genNodeAt is genNode into root.
func genNodeAt(t testing.TB, root string, prof k3s.Profile, starts ...time.Time) node {
	t.Helper()
	n := node{root: root, dataDir: filepath.Join(root, "data"), kubeconfig: filepath.Join(root, "etc", "k3s.yaml"),
		config: filepath.Join(root, "etc", "config.yaml")}
	if err := os.MkdirAll(filepath.Dir(n.config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, at := range starts {
		if _, err := k3sgen.Start(k3sgen.Options{DataDir: n.dataDir, Profile: prof, Kubeconfig: n.kubeconfig, Listener: true}, at); err != nil {
			t.Fatal(err)
		}
	}
	n.opts = check.Options{DataDir: n.dataDir, Profile: prof.Name, AdminKubeconfig: n.kubeconfig, ConfigFile: n.config, NoEndpoint: true}
	return n
}

// scanFunc scans the node at the time the exporter passes in.
func (n node) scanFunc(count *atomic.Int64) exporter.ScanFunc {
	return func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error) {
		if count != nil {
			count.Add(1)
		}
		o := n.opts
		o.At = now
		return check.Run(ctx, o)
	}
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

func gather(t testing.TB, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

// find returns the metrics of family name whose labels include want.
func find(mfs map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range mfs[name].GetMetric() {
		l := labels(m)
		ok := true
		for k, v := range want {
			if l[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func TestCollectorMetrics(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	now := t0.Add(time.Hour)
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(now), Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}

	// Before the first scan: every reason and every code is at zero, and
	// no certificate series exist.
	mfs := gather(t, e)
	if got := len(mfs["k3scert_scan_errors_total"].GetMetric()); got != len(source.AllReasons) {
		t.Errorf("before the first scan: %d scan_errors_total series, want one per reason (%d)", got, len(source.AllReasons))
	}
	if _, ok := mfs["k3scert_certificate_not_after_seconds"]; ok {
		t.Error("certificate series before the first scan")
	}
	if v := value(mfs["k3scert_last_scan_timestamp_seconds"].GetMetric()[0]); v != 0 {
		t.Errorf("last_scan_timestamp before the first scan = %v, want 0", v)
	}

	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, ok := e.Report()
	if !ok {
		t.Fatal("no report after a scan")
	}
	mfs = gather(t, e)

	// One series per location (index 0) and per metric.
	var primaries int
	for _, c := range r.Certificates {
		if c.Index == 0 {
			primaries++
		}
	}
	if primaries < 25 {
		t.Fatalf("only %d certificates in the generated node", primaries)
	}
	for _, name := range []string{"k3scert_certificate_not_after_seconds", "k3scert_certificate_not_before_seconds"} {
		if got := len(mfs[name].GetMetric()); got != primaries {
			t.Errorf("%s: %d series, want %d (index 0 of every location)", name, got, primaries)
		}
	}
	if got := len(mfs["k3scert_certificate_status"].GetMetric()); got != primaries*len(exporter.Statuses) {
		t.Errorf("status: %d series, want %d", got, primaries*len(exporter.Statuses))
	}
	for _, m := range mfs["k3scert_certificate_not_after_seconds"].GetMetric() {
		if _, ok := labels(m)["index"]; ok {
			t.Fatal("index label exported; only index 0 is")
		}
	}

	// The values are the file's certificate.
	admin := filepath.Join(n.dataDir, "server/tls/client-admin.crt")
	b, err := os.ReadFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCerts(b)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"source": "file", "location": admin, "name": "client-admin",
		"subject": "CN=system:admin,O=system:masters", "issuer": "CN=" + certs[0].Issuer.CommonName, "node": "node-1"}
	ms := find(mfs, "k3scert_certificate_not_after_seconds", want)
	if len(ms) != 1 {
		t.Fatalf("not_after for %v: %d series", want, len(ms))
	}
	if v := value(ms[0]); v != float64(certs[0].NotAfter.Unix()) {
		t.Errorf("not_after = %v, want %v", v, certs[0].NotAfter.Unix())
	}
	ms = find(mfs, "k3scert_certificate_not_before_seconds", want)
	if len(ms) != 1 || value(ms[0]) != float64(certs[0].NotBefore.Unix()) {
		t.Errorf("not_before for client-admin wrong: %v", ms)
	}
	if !strings.HasPrefix(want["issuer"], "CN=k3s-client-ca@") {
		t.Errorf("issuer %q", want["issuer"])
	}
	for _, st := range exporter.Statuses {
		w := map[string]string{"location": admin, "status": exporter.StatusLabel(st)}
		ms := find(mfs, "k3scert_certificate_status", w)
		if len(ms) != 1 {
			t.Fatalf("status %s: %d series", st, len(ms))
		}
		if wantV := map[bool]float64{true: 1, false: 0}[st == pki.OK]; value(ms[0]) != wantV {
			t.Errorf("status{%s} = %v, want %v", st, value(ms[0]), wantV)
		}
	}
	// Exactly one status is 1 per certificate.
	ones := 0
	for _, m := range mfs["k3scert_certificate_status"].GetMetric() {
		ones += int(value(m))
	}
	if ones != primaries {
		t.Errorf("%d status series at 1, want %d", ones, primaries)
	}
	// The listener copy in dynamic-cert.json is exported too.
	if ms := find(mfs, "k3scert_certificate_not_after_seconds", map[string]string{"source": "dynamic-cert", "name": "listener", "subject": "CN=k3s,O=k3s"}); len(ms) != 1 {
		t.Errorf("dynamic-cert listener: %d series", len(ms))
	}

	// Scan metrics.
	for _, reason := range source.AllReasons {
		if ms := find(mfs, "k3scert_scan_errors_total", map[string]string{"reason": string(reason)}); len(ms) != 1 || value(ms[0]) != 0 {
			t.Errorf("scan_errors_total{reason=%q}: %v, want one series at 0", reason, ms)
		}
	}
	for _, c := range diagnose.All {
		if ms := find(mfs, "k3scert_findings_by_code", map[string]string{"code": c.ID}); len(ms) != 1 {
			t.Errorf("findings{code=%q}: %d series", c.ID, len(ms))
		}
	}
	if v := value(mfs["k3scert_last_scan_timestamp_seconds"].GetMetric()[0]); v != float64(now.Unix()) {
		t.Errorf("last_scan_timestamp = %v, want %v", v, now.Unix())
	}
	if v := value(mfs["k3scert_last_scan_success"].GetMetric()[0]); v != 1 {
		t.Errorf("last_scan_success = %v", v)
	}
	if ms := find(mfs, "k3scert_scans_total", map[string]string{"result": "success"}); len(ms) != 1 || value(ms[0]) != 1 {
		t.Errorf("scans_total{success}: %v", ms)
	}
	if _, ok := mfs["k3scert_scan_duration_seconds"]; !ok {
		t.Error("no scan_duration_seconds")
	}

	// The exposition passes the Prometheus linter.
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	all, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	probs, err := promlint.NewWithMetricFamilies(all).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	assertNoSecrets(t, reg, n.root)
}

// assertNoSecrets fails if the exposition holds PEM armour, or any
// private key (or certificate body) found under dir in base64 or hex.
func assertNoSecrets(t *testing.T, g prometheus.Gatherer, dir string) {
	t.Helper()
	out := exposition(t, g)
	for _, bad := range []string{"-----BEGIN", "PRIVATE KEY", "-----END"} {
		if strings.Contains(out, bad) {
			t.Errorf("metrics contain %q", bad)
		}
	}
	var needles []string
	var err error
	err = filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		// PEM files, and PEM embedded as base64 in kubeconfigs and JSON.
		for _, data := range append([][]byte{b}, embedded(b)...) {
			for rest := data; ; {
				var blk *pem.Block
				blk, rest = pem.Decode(rest)
				if blk == nil {
					break
				}
				for _, s := range []string{base64.StdEncoding.EncodeToString(blk.Bytes), hex.EncodeToString(blk.Bytes)} {
					needles = append(needles, s[len(s)/2:len(s)/2+24])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(needles) < 50 {
		t.Fatalf("only %d PEM blocks found under %s", len(needles)/2, dir)
	}
	for _, nd := range needles {
		if strings.Contains(out, nd) {
			t.Fatalf("metrics contain key or certificate material %q", nd)
		}
	}
}

// exposition is what a scrape in the text format returns.
func exposition(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

// embedded decodes the base64 strings of a kubeconfig or dynamic-cert.json.
func embedded(b []byte) [][]byte {
	var out [][]byte
	for _, f := range strings.FieldsFunc(string(b), func(r rune) bool { return strings.ContainsRune(" \t\n\":,{}", r) }) {
		if len(f) < 100 {
			continue
		}
		if d, err := base64.StdEncoding.DecodeString(f); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// TestListenerDriftMetric is the reference failure as metrics: a v1.18
// node restarted after 300 days renewed its files but not the listener
// certificate, which has expired at day 370: K3C101, critical, at
// dynamic-cert.json.
func TestListenerDriftMetric(t *testing.T) {
	n := genNode(t, k3s.ProfileV118, t0, t0.Add(pki.Days(300)))
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0.Add(pki.Days(370)))})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, e)
	json := filepath.Join(n.dataDir, "server/tls/dynamic-cert.json")
	ms := find(mfs, "k3scert_finding_active", map[string]string{"code": "K3C101", "severity": "critical", "location": json})
	if len(ms) != 1 || value(ms[0]) != 1 {
		var all []string
		for _, m := range mfs["k3scert_finding_active"].GetMetric() {
			all = append(all, m.String())
		}
		t.Fatalf("k3scert_finding{code=K3C101,severity=critical,location=%s}: %v; all findings: %v", json, ms, all)
	}
	if ms := find(mfs, "k3scert_findings_by_code", map[string]string{"code": "K3C101"}); len(ms) != 1 || value(ms[0]) < 1 {
		t.Errorf("k3scert_findings{code=K3C101}: %v", ms)
	}
	if ms := find(mfs, "k3scert_certificate_status", map[string]string{"location": json, "status": "expired"}); len(ms) != 1 || value(ms[0]) != 1 {
		t.Errorf("listener status EXPIRED: %v", ms)
	}
	if ms := find(mfs, "k3scert_certificate_status", map[string]string{"location": filepath.Join(n.dataDir, "server/tls/client-admin.crt"), "status": "ok"}); len(ms) != 1 || value(ms[0]) != 1 {
		t.Errorf("renewed client-admin status OK: %v", ms)
	}
}

// TestScanErrorsCount: source problems count by reason, cumulatively; a
// failed scan keeps the last result and says so.
func TestScanErrorsCount(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	bad := filepath.Join(n.dataDir, "server/tls/client-admin.crt")
	if err := os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := e.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mfs := gather(t, e)
	var total float64
	for _, m := range mfs["k3scert_scan_errors_total"].GetMetric() {
		total += value(m)
	}
	if total != 2 {
		t.Errorf("scan_errors_total summed over reasons = %v, want 2 (one bad file, two scans)", total)
	}
	if ms := find(mfs, "k3scert_findings_by_code", map[string]string{"code": diagnose.SourceUnreadable.ID}); len(ms) != 1 || value(ms[0]) != 1 {
		t.Errorf("findings{K3C900}: %v", ms)
	}

	// The data dir vanishes: the scan fails, the last result stays.
	if err := os.RemoveAll(n.dataDir); err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(context.Background()); err == nil {
		t.Fatal("scan of a missing data dir succeeded")
	}
	mfs = gather(t, e)
	if v := value(mfs["k3scert_last_scan_success"].GetMetric()[0]); v != 0 {
		t.Errorf("last_scan_success = %v after a failed scan", v)
	}
	if ms := find(mfs, "k3scert_scans_total", map[string]string{"result": "failure"}); len(ms) != 1 || value(ms[0]) != 1 {
		t.Errorf("scans_total{failure}: %v", ms)
	}
	if _, ok := mfs["k3scert_certificate_not_after_seconds"]; !ok {
		t.Error("a failed scan dropped the last result")
	}
}

func TestWatchDirs(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	got := map[string]bool{}
	for _, d := range exporter.WatchDirs(n.opts) {
		got[d] = true
	}
	for _, rel := range []string{"data/server/tls", "data/server/tls/etcd", "data/server/cred", "data/agent", "etc"} {
		if !got[filepath.Join(n.root, rel)] {
			t.Errorf("WatchDirs lacks %s; got %v", rel, got)
		}
	}
	// The parents up to the data dir are watched too (non-recursive: a
	// replaced server/tls is seen appearing, f44e106), nothing above it and
	// nothing beside the certificate directories.
	for _, rel := range []string{"data", "data/server"} {
		if !got[filepath.Join(n.root, rel)] {
			t.Errorf("WatchDirs lacks the parent %s; got %v", rel, got)
		}
	}
	if got[n.root] || got[filepath.Join(n.root, "data/server/db")] || got[filepath.Join(n.root, "data/agent/containerd")] {
		t.Errorf("WatchDirs watches more than the certificate directories and their parents: %v", got)
	}
}

// TestInvalidUTF8Location: a file name that is not UTF-8 still yields a
// valid exposition (label values are made valid), not a failed scrape.
func TestInvalidUTF8Location(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	b, err := os.ReadFile(filepath.Join(n.dataDir, "server/tls/client-admin.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// A user file K3s still reads: a registry certificate (containerd's
	// certs.d), the place where names are not K3s's.
	reg := filepath.Join(n.dataDir, k3s.RegistryCertsDir, "registry.example")
	if err := os.MkdirAll(reg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reg, "odd-\xff.crt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, e)
	// client-admin.crt is the leaf and its CA: a registry file exports both.
	certs, err := pki.ParseCerts(b)
	if err != nil {
		t.Fatal(err)
	}
	if ms := find(mfs, "k3scert_certificate_not_after_seconds", map[string]string{"location": filepath.Join(reg, "odd-\uFFFD.crt")}); len(ms) != len(certs) {
		t.Errorf("odd file name: %d series, want %d (one per certificate of the registry file)", len(ms), len(certs))
	}
}
