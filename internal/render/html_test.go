package render_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/report"
	"golang.org/x/net/html"
)

var (
	install  = time.Date(2020, 7, 24, 7, 4, 4, 0, time.UTC)
	from     = time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	restart  = time.Date(2021, 7, 20, 0, 0, 0, 0, time.UTC)
	horizon  = time.Date(2022, 12, 31, 0, 0, 0, 0, time.UTC)
	todayRef = time.Date(2021, 7, 10, 12, 0, 0, 0, time.UTC)
)

// scenario2 is the reference scenario 2 node (reference/README.md) judged
// at from: its check report and the forecast with the 2021-07-20 restart.
func scenario2(t testing.TB, p k3s.Profile) (report.Report, report.Forecast) {
	t.Helper()
	dir := t.TempDir()
	data, kc := filepath.Join(dir, "data"), filepath.Join(dir, "k3s.yaml")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: data, Profile: p, Kubeconfig: kc, Listener: true}, install); err != nil {
		t.Fatal(err)
	}
	r, inv, err := check.Run(context.Background(), check.Options{DataDir: data, Profile: p.Name, At: from, AdminKubeconfig: kc,
		NoEndpoint: true, ConfigFile: filepath.Join(dir, "none.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	f := forecast.Run(forecast.Input{Node: r.Node, Profile: p, Certs: forecast.FromInventory(inv, r.Node), Now: todayRef,
		From: from, To: horizon, Restarts: []time.Time{restart}, Findings: r.Findings})
	return r, f
}

// svgElems walks a parsed page and returns the elements with class c
// (among space-separated classes).
func elems(n *html.Node, c string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == "class" {
					for _, x := range strings.Fields(a.Val) {
						if x == c {
							out = append(out, n)
						}
					}
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// checkPage verifies a page: it parses, is self-contained, has one bar per
// certificate (data-cert = the IDs), and its SVG is well-formed XML.
func checkPage(t *testing.T, page []byte, f report.Forecast) *html.Node {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	bars := elems(doc, "bar")
	if len(bars) != len(f.Certificates) {
		t.Errorf("%d bars, want one per certificate (%d)", len(bars), len(f.Certificates))
	}
	ids := map[string]bool{}
	for _, c := range f.Certificates {
		ids[c.ID] = true
	}
	for _, b := range bars {
		id := attr(b, "data-cert")
		if !ids[id] {
			t.Errorf("bar data-cert=%q is no certificate, or a second bar for one", id)
		}
		delete(ids, id)
	}
	s := string(page)
	for _, bad := range []string{"<script", "<link", " src=", "@import", "https://", "url(http"} {
		if strings.Contains(s, bad) {
			t.Errorf("page is not self-contained: it contains %q", bad)
		}
	}
	if n := strings.Count(s, "http://"); n != strings.Count(s, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Errorf("page refers to http:// URLs other than the SVG namespace")
	}
	// The SVG alone is well-formed XML.
	i, j := strings.Index(s, "<svg"), strings.Index(s, "</svg>")
	if i < 0 || j < i {
		t.Fatal("no <svg> timeline")
	}
	dec := xml.NewDecoder(strings.NewReader(s[i : j+len("</svg>")]))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	return doc
}

func TestForecastHTML(t *testing.T) {
	tests := []struct {
		profile  k3s.Profile
		lockOuts int
		windows  bool
		headline string
	}{
		{k3s.ProfileV118, 1, true, "Lock-out 2021-07-24 06:04 UTC"},
		{k3s.ProfileCurrent, 1, true, "Lock-out 2022-07-19 23:00 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.profile.Name, func(t *testing.T) {
			_, f := scenario2(t, tt.profile)
			var b bytes.Buffer
			if err := render.Forecast(&b, f, "html", render.Options{}); err != nil {
				t.Fatal(err)
			}
			doc := checkPage(t, b.Bytes(), f)
			if n := len(elems(doc, "lockout")); n != tt.lockOuts {
				t.Errorf("%d lock-out marks, want %d", n, tt.lockOuts)
			}
			if n := len(elems(doc, "restart")); n != 1 {
				t.Errorf("%d restart marks, want 1", n)
			}
			if n := len(elems(doc, "today")); n != 1 {
				t.Errorf("%d today lines, want 1", n)
			}
			if n := len(elems(doc, "window")); tt.windows && n == 0 {
				t.Error("no renew window is shaded")
			}
			if !strings.Contains(b.String(), tt.headline) {
				t.Errorf("headline %q missing", tt.headline)
			}
			if n := len(elems(doc, "finding")); n != len(f.Findings) {
				t.Errorf("%d finding rows, want %d", n, len(f.Findings))
			}
		})
	}
}

// TestReportHTML: check -o html is the same page for the present.
func TestReportHTML(t *testing.T) {
	r, _ := scenario2(t, k3s.ProfileV118)
	var b bytes.Buffer
	if err := render.Report(&b, r, "html", render.Options{}); err != nil {
		t.Fatal(err)
	}
	f := forecast.ForReport(r)
	doc := checkPage(t, b.Bytes(), f)
	if n := len(elems(doc, "today")); n != 1 {
		t.Errorf("%d today lines, want 1", n)
	}
	if n := len(elems(doc, "restart")); n != 0 {
		t.Errorf("%d restart marks, want none", n)
	}
	if !strings.Contains(b.String(), "k3scert check") || !strings.Contains(b.String(), `class="status WARNING"`) {
		t.Error("the check page lacks its title or status")
	}
	if n := len(elems(doc, "finding")); n != len(r.Findings) || n == 0 {
		t.Errorf("%d finding rows, want %d", n, len(r.Findings))
	}
	// Issue 12 item 6: 13 months ahead, not to the CAs' expiry; the CAs
	// summarised; the lock-out in 23 days told in the future tense.
	page := b.String()
	end := r.At.AddDate(0, render.ReportHorizonMonths, 0).UTC().Format("2006-01-02 15:04 MST")
	for _, want := range []string{
		"to " + end,
		`id="ca-summary">CAs: 8 of them expire after this view; the first on `,
		"will have expired; every client of :6443 (kubectl, agents, k3s itself) will fail with",
		"so a restart will not help",
		">Jan 2022</text>", // readable monthly ticks
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the check page lacks %q", want)
		}
	}
	if strings.Contains(page, "in in ") || strings.Contains(page, ">2021-08</text>") {
		t.Error("odd wording or numeric ticks on the check page")
	}
}

// TestHTMLSupervisorPort: a node on another supervisor port (a lab node,
// --supervisor-port) is named by its port in every message of the page.
func TestHTMLSupervisorPort(t *testing.T) {
	_, f := scenario2(t, k3s.ProfileV118)
	var b bytes.Buffer
	if err := render.ForecastHTMLWith(&b, f, render.HTMLOptions{SupervisorPort: 16443}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, ":6443") || !strings.Contains(page, "every client of :16443") || !strings.Contains(page, "renew the :16443 listener certificate") {
		t.Errorf("the page does not name port 16443 everywhere: %d × :6443, %d × :16443", strings.Count(page, ":6443"), strings.Count(page, ":16443"))
	}
	// The report page takes the port it probed.
	r, _ := scenario2(t, k3s.ProfileV118)
	r.Endpoints = append(r.Endpoints, report.Endpoint{Address: "127.0.0.1:16443", Role: "supervisor"})
	b.Reset()
	if err := render.ReportHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), ":6443") || !strings.Contains(b.String(), ":16443") {
		t.Error("the check page does not use the probed supervisor port")
	}
}

func TestForecastText(t *testing.T) {
	_, f := scenario2(t, k3s.ProfileV118)
	var b bytes.Buffer
	if err := render.Forecast(&b, f, "text", render.Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"LOCK-OUT  2021-07-24 06:04 UTC",
		"never renews the listener certificate",
		"renew the :6443 listener certificate between 2021-07-01 00:00 UTC and 2021-07-24 06:04 UTC",
		"does NOT renew\n", // the restart line says the listener is not renewed
	} {
		if !strings.Contains(out, strings.TrimSuffix(want, "\n")) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour without Options.Color")
	}
	if err := render.Forecast(&b, f, "xml", render.Options{}); err == nil {
		t.Error("-o xml accepted")
	}
}

// TestEmptyReportHTML: a report with nothing in it still makes a page.
func TestEmptyReportHTML(t *testing.T) {
	r := report.Report{APIVersion: report.APIVersion, Kind: "Report", At: from, Node: report.Node{DataDir: "/nowhere", Program: "k3s", Role: "server", Profile: "current"}}
	r.Summarize()
	var b bytes.Buffer
	if err := render.Report(&b, r, "html", render.Options{}); err != nil {
		t.Fatal(err)
	}
	doc := checkPage(t, b.Bytes(), forecast.ForReport(r))
	if n := len(elems(doc, "bar")); n != 0 {
		t.Errorf("%d bars for no certificate", n)
	}
	if !strings.Contains(b.String(), "No lock-out") {
		t.Error("an empty node should have no lock-out")
	}
}
