package exporter

import (
	"sort"
	"strings"

	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric names and labels are an API, like finding codes and reasons:
// never rename one. Label values are certificate fields (subject and issuer
// names, paths) and finding codes: public data only, never key material.
var (
	certLabels = []string{"source", "location", "name", "subject", "issuer"}

	descNotAfter = prometheus.NewDesc("k3scert_certificate_not_after_seconds",
		"NotAfter of the certificate, as a Unix time (index 0 of each location only).", certLabels, nil)
	descNotBefore = prometheus.NewDesc("k3scert_certificate_not_before_seconds",
		"NotBefore of the certificate, as a Unix time (index 0 of each location only).", certLabels, nil)
	descStatus = prometheus.NewDesc("k3scert_certificate_status",
		"Status of the certificate at the last scan, as `k3s certificate check` names it: one series per status, 1 for the current one.",
		append(append([]string{}, certLabels...), "status"), nil)
	descFinding = prometheus.NewDesc("k3scert_finding",
		"A finding of the last scan (see docs/findings/<code>.md): the number of findings with these labels, usually 1.",
		[]string{"code", "severity", "location"}, nil)
	descFindings = prometheus.NewDesc("k3scert_findings",
		"Number of findings of the last scan per code; every code is present, at zero when absent.", []string{"code"}, nil)
	descDuration = prometheus.NewDesc("k3scert_scan_duration_seconds",
		"Duration of the last scan.", nil, nil)
	descErrors = prometheus.NewDesc("k3scert_scan_errors_total",
		"Sources that could not be read or parsed, summed over all scans, by stable reason; every reason starts at zero.", []string{"reason"}, nil)
	descScans = prometheus.NewDesc("k3scert_scans_total",
		"Scans by result: success, or failure (nothing to judge, e.g. no data dir; the last good result is kept).", []string{"result"}, nil)
	descLastOK = prometheus.NewDesc("k3scert_last_scan_success",
		"1 if the last scan succeeded, 0 if it failed.", nil, nil)
	descLastAt = prometheus.NewDesc("k3scert_last_scan_timestamp_seconds",
		"Time of the last successful scan (the time the certificates were judged at), as a Unix time; 0 before the first.", nil, nil)
)

// Statuses are the values of the status label, in K3s's spelling.
var Statuses = []pki.Status{pki.OK, pki.Warning, pki.Expired, pki.NotYetValid}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNotAfter, descNotBefore, descStatus, descFinding, descFindings,
		descDuration, descErrors, descScans, descLastOK, descLastAt} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads the cached state only.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	s := e.state.Load()
	for _, m := range s.metrics {
		ch <- m
	}
	for _, c := range diagnose.All {
		ch <- prometheus.MustNewConstMetric(descFindings, prometheus.GaugeValue, s.findings[c.ID], c.ID)
	}
	ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, s.duration.Seconds())
	for _, r := range sortedReasons(s.errs) {
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, s.errs[r], string(r))
	}
	ch <- prometheus.MustNewConstMetric(descScans, prometheus.CounterValue, s.scanOK, "success")
	ch <- prometheus.MustNewConstMetric(descScans, prometheus.CounterValue, s.scanFail, "failure")
	ok := 0.0
	if s.lastOK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(descLastOK, prometheus.GaugeValue, ok)
	at := 0.0
	if !s.lastAt.IsZero() {
		at = float64(s.lastAt.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descLastAt, prometheus.GaugeValue, at)
}

func sortedReasons(m map[source.Reason]float64) []source.Reason {
	out := make([]source.Reason, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// buildMetrics turns a report into its per-certificate and per-finding
// metrics, once per scan.
func buildMetrics(r report.Report) ([]prometheus.Metric, map[string]float64) {
	out := make([]prometheus.Metric, 0, len(r.Certificates)*(2+len(Statuses))+len(r.Findings))
	type certKey struct{ source, location string }
	seen := map[certKey]bool{}
	for _, c := range r.Certificates {
		k := certKey{c.Source, c.Location}
		if c.Index != 0 || seen[k] {
			continue
		}
		seen[k] = true
		// One set of label pairs per certificate, shared by its six series.
		base := []*dto.LabelPair{
			pair(&lnIssuer, c.Issuer), pair(&lnLocation, c.Location), pair(&lnName, c.Name),
			pair(&lnSource, c.Source), pair(&lnSubject, c.Subject),
		}
		out = append(out,
			&gauge{descNotAfter, base, float64(c.NotAfter.Unix())},
			&gauge{descNotBefore, base, float64(c.NotBefore.Unix())})
		for i, st := range Statuses {
			v := 0.0
			if c.Status == string(st) {
				v = 1
			}
			// Sorted by name: issuer, location, name, source, status, subject.
			lp := []*dto.LabelPair{base[0], base[1], base[2], base[3], statusPairs[i], base[4]}
			out = append(out, &gauge{descStatus, lp, v})
		}
	}
	type findKey struct{ code, sev, loc string }
	counts := map[findKey]float64{}
	var order []findKey
	byCode := map[string]float64{}
	for _, f := range r.Findings {
		k := findKey{f.Code, string(f.Severity), f.Location}
		if _, ok := counts[k]; !ok {
			order = append(order, k)
		}
		counts[k]++
		byCode[f.Code]++
	}
	for _, k := range order {
		lp := []*dto.LabelPair{pair(&lnCode, k.code), pair(&lnLocation, k.loc), pair(&lnSeverity, k.sev)}
		out = append(out, &gauge{descFinding, lp, counts[k]})
	}
	return out, byCode
}

// Label names, shared by every label pair.
var (
	lnIssuer, lnLocation, lnName, lnSource, lnSubject = "issuer", "location", "name", "source", "subject"
	lnStatus, lnCode, lnSeverity                      = "status", "code", "severity"
	statusPairs                                       = func() []*dto.LabelPair {
		out := make([]*dto.LabelPair, len(Statuses))
		for i, st := range Statuses {
			out[i] = pair(&lnStatus, string(st))
		}
		return out
	}()
)

// pair makes a label pair; values are made valid UTF-8 (a file name need
// not be), which the exposition requires.
func pair(name *string, value string) *dto.LabelPair {
	v := strings.ToValidUTF8(value, "\uFFFD")
	return &dto.LabelPair{Name: name, Value: &v}
}

// gauge is a constant gauge whose label pairs (sorted by name, as the
// registry expects) are shared with the certificate's other series and
// never modified: 10,000 certificates keep about a third of the memory
// that prometheus.MustNewConstMetric's per-series copies would.
type gauge struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
}

func (g *gauge) Desc() *prometheus.Desc { return g.desc }

func (g *gauge) Write(out *dto.Metric) error {
	v := g.value
	out.Label = g.labels
	out.Gauge = &dto.Gauge{Value: &v}
	return nil
}
