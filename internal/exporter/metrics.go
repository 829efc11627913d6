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

// Metric names and labels are an API, like finding codes and reasons.
// Label values are certificate fields (subject and issuer names, paths),
// finding codes and the node name: public data only, never key material.
//
// Every series carries `node` (Options.Node: --node-name, or NODE_NAME from
// the downward API), so a plain scrape_config identifies the node without
// relabelling. Label values are lower snake case where they are an
// enumeration (status="expired", severity="critical", result="success").
// subject and issuer are both distinguished names in the same spelling
// ("CN=system:admin,O=system:masters", "CN=k3s-client-ca@1700000000").
//
// Renamed in this version (docs/metrics.md): k3scert_finding is now
// k3scert_finding_active and k3scert_findings is k3scert_findings_by_code;
// status values are lower snake (was "EXPIRED", "NOT YET VALID"); issuer
// is "CN=..." like subject (was the bare common name).
const (
	NameNotAfter       = "k3scert_certificate_not_after_seconds"
	NameNotBefore      = "k3scert_certificate_not_before_seconds"
	NameStatus         = "k3scert_certificate_status"
	NameFindingActive  = "k3scert_finding_active"
	NameFindingsByCode = "k3scert_findings_by_code"
)

// The help of the certificate families says which certificates get series.
const (
	helpNotAfter  = "NotAfter of the certificate, as a Unix time (every certificate of a registry bundle; index 0 of other locations)."
	helpNotBefore = "NotBefore of the certificate, as a Unix time (every certificate of a registry bundle; index 0 of other locations)."
)

var (
	certLabels = []string{"node", "source", "location", "name", "subject", "issuer"}

	descNotAfter = prometheus.NewDesc(NameNotAfter,
		helpNotAfter, certLabels, nil)
	descNotBefore = prometheus.NewDesc(NameNotBefore,
		helpNotBefore, certLabels, nil)
	descStatus = prometheus.NewDesc(NameStatus,
		"Status of the certificate at the last scan (ok, warning, expired, not_yet_valid): one series per status, 1 for the current one.",
		append(append([]string{}, certLabels...), "status"), nil)
	descFinding = prometheus.NewDesc(NameFindingActive,
		"A finding of the last scan at one location (see docs/findings/<code>.md): the number of findings with these labels, usually 1; remedy is the finding's own remedy.",
		[]string{"node", "code", "severity", "location", "remedy"}, nil)
	descFindings = prometheus.NewDesc(NameFindingsByCode,
		"Number of findings of the last scan per code; every code is present, at zero when absent.", []string{"node", "code"}, nil)
	descDuration = prometheus.NewDesc("k3scert_scan_duration_seconds",
		"Duration of the last scan.", []string{"node"}, nil)
	descErrors = prometheus.NewDesc("k3scert_scan_errors_total",
		"Sources that could not be read or parsed, summed over all scans, by stable reason; every reason starts at zero.", []string{"node", "reason"}, nil)
	descScans = prometheus.NewDesc("k3scert_scans_total",
		"Scans by result: success, or failure (nothing to judge, e.g. no data dir; the last good result is kept).", []string{"node", "result"}, nil)
	descLastOK = prometheus.NewDesc("k3scert_last_scan_success",
		"1 if the last scan succeeded, 0 if it failed.", []string{"node"}, nil)
	descLastAt = prometheus.NewDesc("k3scert_last_scan_timestamp_seconds",
		"Time of the last successful scan (the time the certificates were judged at), as a Unix time; 0 before the first.", []string{"node"}, nil)
	descStuck = prometheus.NewDesc("k3scert_scan_stuck",
		"1 while a scan has been running for longer than the scan timeout (it ignores its deadline), else 0.", []string{"node"}, nil)
	descRunning = prometheus.NewDesc("k3scert_scan_running_seconds",
		"How long the scan in progress has been running; 0 when none is.", []string{"node"}, nil)
)

// Statuses are the values of the status label.
var Statuses = []pki.Status{pki.OK, pki.Warning, pki.Expired, pki.NotYetValid}

// StatusLabel is the status label value of a K3s status: lower snake case
// ("OK" → "ok", "NOT YET VALID" → "not_yet_valid").
func StatusLabel(s pki.Status) string {
	return strings.ReplaceAll(strings.ToLower(string(s)), " ", "_")
}

// bigDescs are the per-certificate and per-finding families: served
// pre-rendered by the HTTP handler, and by Collect for other registries.
var bigDescs = []*prometheus.Desc{descNotAfter, descNotBefore, descStatus, descFinding, descFindings}

// ownFamily reports whether name is a family the exporter itself serves.
func ownFamily(name string) bool {
	switch name {
	case NameNotAfter, NameNotBefore, NameStatus, NameFindingActive, NameFindingsByCode,
		"k3scert_scan_duration_seconds", "k3scert_scan_errors_total", "k3scert_scans_total",
		"k3scert_last_scan_success", "k3scert_last_scan_timestamp_seconds", "k3scert_scan_stuck", "k3scert_scan_running_seconds":
		return true
	}
	return false
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range bigDescs {
		ch <- d
	}
	e.describeSmall(ch)
}

func (e *Exporter) describeSmall(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDuration, descErrors, descScans, descLastOK, descLastAt, descStuck, descRunning} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: every family, the large ones
// built from the cached report (the pre-rendered /metrics path does not
// use this).
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	s := e.state.Load()
	if s.report != nil {
		for _, m := range buildMetrics(*s.report, e.o.Node) {
			ch <- m
		}
	} else {
		for _, m := range findingsByCode(nil, e.o.Node) {
			ch <- m
		}
	}
	e.collectSmall(ch, s)
}

// collectSmall sends the scan's own metrics (a few dozen series) of state
// s, the state the large families of the same exposition come from: a
// scan that ends during a scrape never mixes two scans in one exposition.
func (e *Exporter) collectSmall(ch chan<- prometheus.Metric, s *state) {
	node := e.o.Node
	ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, s.duration.Seconds(), node)
	for _, r := range sortedReasons(s.errs) {
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, s.errs[r], node, string(r))
	}
	ch <- prometheus.MustNewConstMetric(descScans, prometheus.CounterValue, s.scanOK, node, "success")
	ch <- prometheus.MustNewConstMetric(descScans, prometheus.CounterValue, s.scanFail, node, "failure")
	ok := 0.0
	if s.lastOK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(descLastOK, prometheus.GaugeValue, ok, node)
	at := 0.0
	if !s.lastAt.IsZero() {
		at = float64(s.lastAt.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descLastAt, prometheus.GaugeValue, at, node)
	running, stuck := e.running()
	st := 0.0
	if stuck {
		st = 1
	}
	ch <- prometheus.MustNewConstMetric(descStuck, prometheus.GaugeValue, st, node)
	ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, running.Seconds(), node)
}

// smallCollector is the exporter without its large families, at one
// state, for the registry the HTTP handler gathers at a scrape.
type smallCollector struct {
	e *Exporter
	s *state
}

func (c smallCollector) Describe(ch chan<- *prometheus.Desc) { c.e.describeSmall(ch) }
func (c smallCollector) Collect(ch chan<- prometheus.Metric) { c.e.collectSmall(ch, c.s) }

func sortedReasons(m map[source.Reason]float64) []source.Reason {
	out := make([]source.Reason, 0, len(m))
	for r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// exportedCert is a certificate of the report that gets series: its
// index in r.Certificates and its name label.
type exportedCert struct {
	i    int
	name string
}

// exportedCerts are the certificates that get series, in report order:
//
//   - every certificate of a registry file (source registry: a CA bundle
//     the user maintains, each entry a CA that can expire on its own);
//     the same certificate twice in one file is exported once. Entries
//     of one file that share subject and issuer (a CA re-issued under
//     the same name, both in the bundle during a rollover) would be one
//     series: each of them carries the name "registry@" plus the first
//     12 hex digits of its SHA-256, as enix's exporter adds a
//     discriminator label on colliding entries only;
//   - index 0 of every other location: the certificate the file, the
//     kubeconfig or the listener is. The CA copies K3s appends after a
//     leaf are the CAs exported at their own files; a copy that differs
//     is a chain problem (K3C302).
func exportedCerts(r report.Report) []exportedCert {
	type certKey struct{ source, location string }
	type entryKey struct{ location, subject, issuer string }
	seen := make(map[certKey]bool, len(r.Certificates))
	var sameCert map[[2]string]bool // location, sha256: registry entries already exported
	var sameName map[entryKey]int   // registry entries per location, subject and issuer
	out := make([]exportedCert, 0, len(r.Certificates))
	for i := range r.Certificates {
		c := &r.Certificates[i]
		if c.Source == string(source.Registry) {
			if sameCert == nil {
				sameCert, sameName = map[[2]string]bool{}, map[entryKey]int{}
			}
			if k := [2]string{c.Location, c.SHA256}; !sameCert[k] {
				sameCert[k] = true
				sameName[entryKey{c.Location, c.Subject, c.Issuer}]++
				out = append(out, exportedCert{i, c.Name})
			}
			continue
		}
		k := certKey{c.Source, c.Location}
		if c.Index != 0 || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, exportedCert{i, c.Name})
	}
	for j, e := range out {
		c := &r.Certificates[e.i]
		if c.Source == string(source.Registry) && sameName[entryKey{c.Location, c.Subject, c.Issuer}] > 1 {
			out[j].name = c.Name + "@" + c.SHA256[:min(12, len(c.SHA256))]
		}
	}
	return out
}

// findingSeries is one series of k3scert_finding_active: the findings
// with the same labels, counted.
type findingSeries struct {
	code, severity, location, remedy string
	count                            float64
}

// findingRows groups findings by their labels, in the order of their
// first finding.
func findingRows(fs []report.Finding) []findingSeries {
	type findKey struct{ code, sev, loc, remedy string }
	at := map[findKey]int{}
	var out []findingSeries
	for _, f := range fs {
		k := findKey{f.Code, string(f.Severity), f.Location, f.Remedy}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, findingSeries{code: f.Code, severity: string(f.Severity), location: f.Location, remedy: f.Remedy})
		}
		out[i].count++
	}
	return out
}

// codeCounts is the number of findings per code of diagnose.All, in
// that order.
func codeCounts(fs []report.Finding) []float64 {
	byCode := map[string]float64{}
	for _, f := range fs {
		byCode[f.Code]++
	}
	out := make([]float64, len(diagnose.All))
	for i, c := range diagnose.All {
		out[i] = byCode[c.ID]
	}
	return out
}

// buildMetrics turns a report into its per-certificate and per-finding
// metrics. Label pairs are shared between a certificate's series.
func buildMetrics(r report.Report, node string) []prometheus.Metric {
	certs := exportedCerts(r)
	out := make([]prometheus.Metric, 0, len(certs)*(2+len(Statuses))+len(r.Findings)+len(diagnose.All))
	nodePair := pair(&lnNode, node)
	for _, e := range certs {
		c := &r.Certificates[e.i]
		// Sorted by name: issuer, location, name, node, source, subject.
		base := []*dto.LabelPair{
			pair(&lnIssuer, IssuerDN(c.Issuer)), pair(&lnLocation, c.Location), pair(&lnName, e.name),
			nodePair, pair(&lnSource, c.Source), pair(&lnSubject, c.Subject),
		}
		out = append(out,
			&gauge{descNotAfter, base, float64(c.NotAfter.Unix())},
			&gauge{descNotBefore, base, float64(c.NotBefore.Unix())})
		for i, st := range Statuses {
			v := 0.0
			if c.Status == string(st) {
				v = 1
			}
			// issuer, location, name, node, source, status, subject.
			lp := []*dto.LabelPair{base[0], base[1], base[2], base[3], base[4], statusPairs[i], base[5]}
			out = append(out, &gauge{descStatus, lp, v})
		}
	}
	for _, f := range findingRows(r.Findings) {
		// code, location, node, remedy, severity.
		lp := []*dto.LabelPair{pair(&lnCode, f.code), pair(&lnLocation, f.location), nodePair, pair(&lnRemedy, f.remedy), pair(&lnSeverity, f.severity)}
		out = append(out, &gauge{descFinding, lp, f.count})
	}
	return append(out, findingsByCode(r.Findings, node)...)
}

// findingsByCode is one series per code, zero when the code is absent.
func findingsByCode(fs []report.Finding, node string) []prometheus.Metric {
	counts := codeCounts(fs)
	out := make([]prometheus.Metric, 0, len(diagnose.All))
	for i, c := range diagnose.All {
		out = append(out, prometheus.MustNewConstMetric(descFindings, prometheus.GaugeValue, counts[i], node, c.ID))
	}
	return out
}

// IssuerDN spells an issuer like the subject label: "CN=<name>" for the
// bare common name the report carries (K3s CAs have a CN only).
func IssuerDN(cn string) string {
	if cn == "" || strings.HasPrefix(cn, "CN=") {
		return cn
	}
	return "CN=" + cn
}

// Label names, shared by every label pair.
var (
	lnIssuer, lnLocation, lnName, lnSource, lnSubject = "issuer", "location", "name", "source", "subject"
	lnStatus, lnCode, lnSeverity, lnNode, lnRemedy    = "status", "code", "severity", "node", "remedy"
	statusLabels                                      = func() []string {
		out := make([]string, len(Statuses))
		for i, st := range Statuses {
			out[i] = StatusLabel(st)
		}
		return out
	}()
	statusPairs = func() []*dto.LabelPair {
		out := make([]*dto.LabelPair, len(Statuses))
		for i, st := range Statuses {
			out[i] = pair(&lnStatus, StatusLabel(st))
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
// never modified.
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
