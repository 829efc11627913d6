package exporter_test

import (
	"context"
	"crypto/x509"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// Every certificate of a registry CA bundle gets its series: each is a CA
// that expires on its own. The same certificate twice in the file is one
// series; two CAs with the same subject and issuer (a rollover keeps the
// name) are told apart by the name label, "registry@<sha256 prefix>", and
// an entry whose subject is unique keeps name="registry". K3s's own
// files still export index 0 only (the appended CA copies are the CA
// files' own series).
func TestRegistryBundleEveryEntry(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0.Add(-24*time.Hour))
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	ca := func(cn string, days int) *x509.Certificate {
		c, err := pki.NewCA(cn, key, t0.Add(-time.Hour), t0.Add(time.Duration(days)*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	corp := ca("corp-root", 900)
	old, renewed := ca("corp-issuing", 5), ca("corp-issuing", 700) // same subject and issuer
	other := ca("partner-root", 300)
	dir := filepath.Join(n.dataDir, filepath.FromSlash(k3s.RegistryCertsDir), "registry.example:5000")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(bundle, pki.EncodeCerts(corp, old, renewed, corp, other), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0), Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, e) // a pedantic registry: no duplicate series
	got := map[string]float64{}
	for _, m := range mfs[exporter.NameNotAfter].GetMetric() {
		l := labels(m)
		if l["source"] == "registry" {
			if l["location"] != bundle {
				t.Errorf("registry series at %q, want %q", l["location"], bundle)
			}
			got[l["subject"]+" "+l["name"]] = value(m)
		}
	}
	fp := func(c *x509.Certificate) string { return "registry@" + pki.Fingerprint(c)[:12] }
	want := map[string]float64{
		"CN=corp-root registry":          float64(corp.NotAfter.Unix()),
		"CN=corp-issuing " + fp(old):     float64(old.NotAfter.Unix()),
		"CN=corp-issuing " + fp(renewed): float64(renewed.NotAfter.Unix()),
		"CN=partner-root registry":       float64(other.NotAfter.Unix()),
	}
	if len(got) != len(want) {
		t.Errorf("registry series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("series %q = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// Status too: the CA re-issued under the same name expires in 5 days.
	var statuses []string
	for _, m := range mfs[exporter.NameStatus].GetMetric() {
		if l := labels(m); l["source"] == "registry" && value(m) == 1 {
			statuses = append(statuses, l["name"]+"="+l["status"])
		}
	}
	if len(statuses) != 4 || !strings.Contains(strings.Join(statuses, " "), fp(old)+"=warning") {
		t.Errorf("registry statuses %v: want 4, %s warning", statuses, fp(old))
	}
	// K3s's files: one series per file (index 0), whatever they append.
	r, _ := e.Report()
	files := map[string]bool{}
	for _, c := range r.Certificates {
		if c.Source == "file" {
			files[c.Location] = true
		}
	}
	fileSeries := 0
	for _, m := range mfs[exporter.NameNotAfter].GetMetric() {
		if labels(m)["source"] == "file" {
			fileSeries++
		}
	}
	if fileSeries != len(files) {
		t.Errorf("%d file series, want one per file (%d)", fileSeries, len(files))
	}
	// The expositions written directly hold the same series.
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	text, _ := scrape(t, srv.URL, "text/plain;version=0.0.4", "gzip")
	om, _ := scrape(t, srv.URL, "application/openmetrics-text;version=1.0.0", "")
	text += om
	for k := range want {
		subject, name, _ := strings.Cut(k, " ")
		// not_after and not_before; the status series put status before subject.
		if c := strings.Count(text, `name="`+name+`",node="node-1",source="registry",subject="`+subject+`"}`); c != 2*2 {
			t.Errorf("expositions hold %d not_after/not_before series of %s %s, want 4", c, subject, name)
		}
		re := regexp.MustCompile(`name="` + regexp.QuoteMeta(name) + `",node="node-1",source="registry",status="[a-z_]+",subject="` + regexp.QuoteMeta(subject) + `"}`)
		if c := len(re.FindAllString(text, -1)); c != 2*len(exporter.Statuses) {
			t.Errorf("expositions hold %d status series of %s %s, want %d", c, subject, name, 2*len(exporter.Statuses))
		}
	}
}
