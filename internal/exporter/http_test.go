package exporter_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape asks /metrics with the given Accept and Accept-Encoding headers,
// as Prometheus does, and returns the decoded body and the response.
func scrape(t *testing.T, url, accept, encoding string) (string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	if encoding != "" {
		req.Header.Set("Accept-Encoding", encoding)
	}
	// A transport that does not decompress by itself, to see the encoding.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body) // multistream, like Prometheus's scraper
		if err != nil {
			t.Fatal(err)
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b), resp
}

// TestMetricsNegotiation: the pre-rendered exposition is served in text,
// OpenMetrics and protobuf, plain or gzip, and each parses to the same
// families as the collector gathers, every series with the node label.
func TestMetricsNegotiation(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0.Add(time.Hour)), Node: "srv-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	others := prometheus.NewRegistry()
	// Holding the exporter too (as callers did before pre-rendering) must
	// not serve its families twice.
	others.MustRegister(collectors.NewGoCollector(), e)
	srv := httptest.NewServer(e.Handler(others))
	defer srv.Close()
	want := gather(t, e)

	const (
		promAccept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
		textAccept = "text/plain;version=0.0.4"
		protoAcc   = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
	)
	for _, tc := range []struct {
		name, accept, enc, wantType string
		gz                          bool
	}{
		{"text", textAccept, "", "text/plain", false},
		{"text-gzip", textAccept, "gzip", "text/plain", true},
		{"openmetrics-gzip", promAccept, "gzip, deflate", "application/openmetrics-text", true},
		{"openmetrics-identity", promAccept, "gzip;q=0, identity", "application/openmetrics-text", false},
		{"protobuf", protoAcc, "gzip", "application/vnd.google.protobuf", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, resp := scrape(t, srv.URL, tc.accept, tc.enc)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.wantType)
			}
			if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.gz {
				t.Errorf("gzip = %v, want %v", got, tc.gz)
			}
			got := map[string]*dto.MetricFamily{}
			switch tc.wantType {
			case "application/openmetrics-text":
				if !strings.HasSuffix(body, "# EOF\n") || strings.Count(body, "# EOF") != 1 {
					t.Fatalf("OpenMetrics body does not end with exactly one # EOF: ...%q", body[max(0, len(body)-200):])
				}
				for _, name := range []string{exporter.NameNotAfter, exporter.NameStatus, "k3scert_last_scan_success", "go_goroutines"} {
					if !strings.Contains(body, "# TYPE "+name+" gauge\n") {
						t.Errorf("OpenMetrics body lacks the family %s", name)
					}
				}
				return
			case "application/vnd.google.protobuf":
				dec := expfmt.NewDecoder(strings.NewReader(body), expfmt.NewFormat(expfmt.TypeProtoDelim))
				for {
					var mf dto.MetricFamily
					if err := dec.Decode(&mf); err == io.EOF {
						break
					} else if err != nil {
						t.Fatal(err)
					}
					got[mf.GetName()] = &mf
				}
			default:
				p := expfmt.NewTextParser(model.UTF8Validation)
				mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				got = mfs
			}
			for name, mf := range want {
				g, ok := got[name]
				if !ok {
					t.Errorf("%s missing from the scrape", name)
					continue
				}
				if len(g.GetMetric()) != len(mf.GetMetric()) {
					t.Errorf("%s: %d series scraped, %d gathered", name, len(g.GetMetric()), len(mf.GetMetric()))
				}
				for _, m := range g.GetMetric() {
					if labels(m)["node"] != "srv-1" {
						t.Fatalf("%s series without node=srv-1: %v", name, labels(m))
					}
				}
			}
			if _, ok := got["go_goroutines"]; !ok {
				t.Error("the other gatherer's families are missing")
			}
		})
	}
	if e.Scans() != 1 {
		t.Errorf("%d scans: scrapes must not rescan", e.Scans())
	}
}

// TestStuckScan: a scan that ignores its deadline shows in /healthz and in
// k3scert_scan_stuck, and Serve still returns when its context ends.
func TestStuckScan(t *testing.T) {
	release := make(chan struct{})
	var now atomic.Pointer[time.Time]
	at := t0
	now.Store(&at)
	e, err := exporter.New(exporter.Options{
		Scan: func(context.Context, time.Time) (report.Report, *source.Inventory, error) {
			<-release // ignores its context
			return report.Report{}, nil, nil
		},
		ScanTimeout: time.Minute, Interval: time.Hour, Node: "n",
		Now: func() time.Time { return *now.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- e.Scan(context.Background()) }()
	waitFor(t, "the scan to start", func() bool { return e.Scans() == 1 })

	later := at.Add(5 * time.Minute)
	now.Store(&later)
	code, body := get(t, srv.URL+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "scan stuck") {
		t.Errorf("/healthz during a stuck scan: %d %q", code, body)
	}
	text, _ := scrape(t, srv.URL, "text/plain;version=0.0.4", "")
	if !strings.Contains(text, `k3scert_scan_stuck{node="n"} 1`) || !strings.Contains(text, `k3scert_scan_running_seconds{node="n"} 300`) {
		t.Errorf("stuck scan not in the metrics:\n%s", grepLines(text, "k3scert_scan_"))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text, _ = scrape(t, srv.URL, "text/plain;version=0.0.4", "")
	if !strings.Contains(text, `k3scert_scan_stuck{node="n"} 0`) {
		t.Errorf("k3scert_scan_stuck after the scan returned:\n%s", grepLines(text, "k3scert_scan_"))
	}
}

func grepLines(s, sub string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestScrapeIsOneScan: an exposition never mixes two scans. Scan k reports
// k certificates; scrapes run while scans end, and each must show as many
// certificate series as its own scans_total says succeeded (before the
// fix, a scrape that began before a scan ended served the old scan's
// certificates with the new scan's counters: last_scan_success 1 and no
// certificate at all on the first scan).
func TestScrapeIsOneScan(t *testing.T) {
	var k int
	scan := func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error) {
		k++
		r := report.Report{}
		for i := 0; i < k*50; i++ {
			r.Certificates = append(r.Certificates, report.Certificate{Source: "file", Location: fmt.Sprintf("/c/%05d.crt", i),
				Name: "c", Subject: "CN=c", Issuer: "CN=ca", NotBefore: t0, NotAfter: t0.Add(time.Hour), Status: "OK"})
		}
		return r, nil, nil
	}
	e, err := exporter.New(exporter.Options{Scan: scan, Now: fixedClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	scansRE := regexp.MustCompile(`(?m)^k3scert_scans_total\{[^}]*result="success"[^}]*\} (\d+)$`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 60; i++ {
			_ = e.Scan(context.Background())
		}
	}()
	scrapes := 0
	for running := true; running; scrapes++ {
		select {
		case <-done:
			running = false
		default:
		}
		resp, err := srv.Client().Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		m := scansRE.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no k3scert_scans_total success in\n%s", body)
		}
		n, _ := strconv.Atoi(m[1])
		if got := strings.Count(body, "\nk3scert_certificate_not_after_seconds{"); got != n*50 {
			t.Fatalf("scrape %d: %d certificate series but scans_total success %s: two scans in one exposition", scrapes, got, m[1])
		}
	}
	t.Logf("%d consistent scrapes during 60 scans", scrapes)
}

// A compressed /metrics is one gzip member: a reader that stops after the
// first member (curl --compressed does) still gets the whole exposition,
// the same as an uncompressed scrape, in the text format and OpenMetrics.
func TestMetricsGzipOneMember(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0.Add(-24*time.Hour))
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0), Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	for _, accept := range []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0"} {
		plain, _ := scrape(t, srv.URL, accept, "")
		req, err := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s: %v, Content-Encoding %q", accept, err, resp.Header.Get("Content-Encoding"))
		}
		br := bytes.NewReader(body)
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != plain || br.Len() != 0 {
			t.Errorf("%s: the first gzip member holds %d bytes (%d left after it), the plain scrape %d", accept, len(got), br.Len(), len(plain))
		}
		if !strings.Contains(string(got), "k3scert_last_scan_success") || !strings.Contains(string(got), exporter.NameNotAfter) {
			t.Errorf("%s: families missing from the compressed scrape", accept)
		}
	}
}
