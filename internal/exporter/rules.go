package exporter

import (
	"fmt"
	"strings"

	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/report"
	"sigs.k8s.io/yaml"
)

// The alerting and recording rules shipped under deploy/ are generated
// from this file and the finding codes (internal/diagnose), so that each
// alert's description and runbook_url are the finding's own summary,
// remedy and docs/findings page. TestRulesGenerated keeps the committed
// files equal to Rules(); `go test ./internal/exporter -run
// TestRulesGenerated -update` rewrites them.

// Rule is one Prometheus alerting or recording rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RuleGroup is a Prometheus rule group.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// RulesOptions parameterise the generated rules.
type RulesOptions struct {
	// CriticalDays: a certificate that expires within this many days is
	// critical (default 14).
	CriticalDays int
	// Job is the scrape job of the exporter, for the target-down alert
	// (default "k3scert", the Service's name, which the ServiceMonitor and
	// the chart use as job).
	Job string
	// StaleAfter is how old the last successful scan may be before the
	// stale-scan alert (default 30m: six default intervals).
	StaleAfter string
	// DocsURL is the base of runbook URLs.
	DocsURL string
}

func (o RulesOptions) withDefaults() RulesOptions {
	if o.CriticalDays <= 0 {
		o.CriticalDays = 14
	}
	if o.Job == "" {
		o.Job = "k3scert"
	}
	if o.StaleAfter == "" {
		o.StaleAfter = "30m"
	}
	if o.DocsURL == "" {
		o.DocsURL = "https://github.com/k3scert/k3scert/blob/main/"
	}
	return o
}

// CriticalDaysExpr is the threshold of the expires-soon alert as it
// appears in the expression, so that installers (the Helm chart) can
// substitute their own number of days.
func CriticalDaysExpr(days int) string { return fmt.Sprintf("%d * 86400", days) }

// remedyOf is an alert template that prints the remedy of the first
// current finding of the alert's node and code, read from the finding's
// own k3scert_finding_active series at notification time.
func remedyOf(code string) string {
	sel := `k3scert_finding_active{node='%s',code='` + code + `'}`
	if code == "" {
		sel = `k3scert_finding_active{node='%s',code='%s'}`
		return `{{ with printf "` + sel + `" $labels.node $labels.code | query }}Remedy: {{ . | first | label "remedy" }}{{ end }}`
	}
	return `{{ with printf "` + sel + `" $labels.node | query }}Remedy: {{ . | first | label "remedy" }}{{ end }}`
}

// alertName is the alert of a finding code: the names shipped since v0.1
// where they exist, else K3sCert + the code's name in CamelCase.
func alertName(c diagnose.Code) string {
	switch c.ID {
	case diagnose.InRenewWindow.ID:
		return "K3sCertificateInRenewWindow"
	case diagnose.NotYetValid.ID:
		return "K3sCertificateNotYetValid"
	case diagnose.CAExpiring.ID:
		return "K3sCAExpiresWithinAYear"
	case diagnose.ListenerStale.ID:
		return "K3sListenerServesStaleCertificate"
	case diagnose.SourceUnreadable.ID:
		return "K3sCertSourceUnreadable"
	}
	var b strings.Builder
	b.WriteString("K3sCert")
	for _, w := range strings.Split(c.Name, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// Rules are the alerting rules (k3scert.findings, k3scert.expiry,
// k3scert.exporter) and the enix x509-certificate-exporter compatible
// recording rules (k3scert.x509-compat).
func Rules(o RulesOptions) []RuleGroup {
	return append(AlertGroups(o), CompatGroup())
}

// AlertGroups are the alerting rules: one alert per node and cause (a
// finding code, an expiry, the exporter), never per file.
func AlertGroups(o RulesOptions) []RuleGroup {
	o = o.withDefaults()
	doc := func(c diagnose.Code) string { return o.DocsURL + c.Doc() }
	alertsDoc := func(anchor string) string { return o.DocsURL + "docs/alerts.md#" + anchor }

	expiry := RuleGroup{Name: "k3scert.expiry", Rules: []Rule{
		{
			Alert:  "K3sCertificateExpired",
			Expr:   `count by (node) (k3scert_certificate_not_after_seconds{source!="registry"} <= time()) > 0`,
			For:    "5m",
			Labels: map[string]string{"severity": "critical", "code": diagnose.Expired.ID},
			Annotations: map[string]string{
				"summary": "{{ $value }} certificate(s) on {{ $labels.node }} have expired",
				"description": "{{ $value }} certificate(s) on {{ $labels.node }} are past their NotAfter (" + diagnose.Expired.ID + ": " +
					diagnose.Expired.Summary + "); clients using them fail with \"x509: certificate has expired\". " + remedyOf(diagnose.Expired.ID),
				"runbook_url": doc(diagnose.Expired),
			},
		},
		{
			Alert:  "K3sCertificateExpiresSoon",
			Expr:   `min by (node) ((k3scert_certificate_not_after_seconds{source!="registry"} - time()) > 0) < ` + CriticalDaysExpr(o.CriticalDays),
			For:    "15m",
			Labels: map[string]string{"severity": "critical"},
			Annotations: map[string]string{
				"summary": "A certificate on {{ $labels.node }} expires in {{ $value | humanizeDuration }}",
				"description": fmt.Sprintf("The first certificate on {{ $labels.node }} to expire does so in {{ $value | humanizeDuration }}, within %d days. "+
					"K3s renews leaf certificates only when it restarts inside the renew window, and never its CAs. "+
					"Run `k3scert check` and `k3scert forecast` on the node; restart K3s in a maintenance window or run `k3scert rotate`.", o.CriticalDays),
				"runbook_url": doc(diagnose.InRenewWindow),
			},
		},
	}}

	findings := RuleGroup{Name: "k3scert.findings"}
	for _, c := range diagnose.All {
		if c.ID == diagnose.Expired.ID {
			continue // k3scert.expiry, from the dates, so it escalates between scans
		}
		forDur, sevs := "1h", `severity=~"critical|warning"`
		if c.Severity == report.Critical {
			forDur = "5m"
		}
		if c.ID == diagnose.NotYetValid.ID {
			forDur = "15m"
		}
		r := Rule{
			Alert: alertName(c),
			Expr:  `sum by (node, code, severity) (k3scert_finding_active{code="` + c.ID + `",` + sevs + `}) > 0`,
			For:   forDur,
			// No severity label here: the alert keeps the finding's own
			// (by severity), which a check may raise or lower (K3C101 is
			// critical once the listener has expired, warning before).
			Annotations: map[string]string{
				"summary": "{{ $labels.code }} " + c.Name + " on {{ $labels.node }} ({{ $value }} location(s))",
				"description": "{{ $value }} location(s) on {{ $labels.node }}: " + c.Summary + " (" + c.ID + "). " + remedyOf("") +
					" `k3scert check` on the node lists them.",
				"runbook_url": doc(c),
			},
		}
		findings.Rules = append(findings.Rules, r)
	}

	exp := RuleGroup{Name: "k3scert.exporter", Rules: []Rule{
		{
			Alert:  "K3sCertExporterDown",
			Expr:   `up{job="` + o.Job + `"} == 0`,
			For:    "10m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "The k3scert exporter on {{ $labels.instance }} cannot be scraped",
				"description": "Prometheus cannot scrape k3scert on {{ $labels.instance }}: the certificates of that node are not watched and their alerts resolve. Check the k3scert pod (kubectl -n kube-system get pods -l app.kubernetes.io/name=k3scert -o wide).",
				"runbook_url": alertsDoc("k3scertexporterdown"),
			},
		},
		{
			Alert:  "K3sCertExporterAbsent",
			Expr:   `absent(k3scert_last_scan_timestamp_seconds)`,
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "No k3scert series at all",
				"description": "Prometheus has no k3scert series: the exporter is not deployed, not scraped (ServiceMonitor not selected, scrape config missing) or down everywhere. No certificate alert can fire.",
				"runbook_url": alertsDoc("k3scertexporterabsent"),
			},
		},
		{
			Alert:  "K3sCertExporterSeriesMissing",
			Expr:   `max by (node) (max_over_time(k3scert_last_scan_timestamp_seconds[1d])) unless max by (node) (k3scert_last_scan_timestamp_seconds)`,
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "k3scert stopped reporting {{ $labels.node }}",
				"description": "k3scert reported {{ $labels.node }} during the last day but does not now: the pod is gone (node drained, DaemonSet selector, eviction) or not scraped. The certificate alerts of that node have resolved without the certificates being fixed.",
				"runbook_url": alertsDoc("k3scertexporterseriesmissing"),
			},
		},
		{
			Alert:  "K3sCertScanStale",
			Expr:   `time() - max by (node) (k3scert_last_scan_timestamp_seconds) > ` + durationSeconds(o.StaleAfter),
			For:    "5m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "k3scert has not completed a scan of {{ $labels.node }} for {{ $value | humanizeDuration }}",
				"description": "The findings of {{ $labels.node }} are stale (last successful scan {{ $value | humanizeDuration }} ago): every scan fails or the scheduler is stuck. See the pod's log and /healthz.",
				"runbook_url": alertsDoc("k3scertscanstale"),
			},
		},
		{
			Alert:  "K3sCertScanFailing",
			Expr:   `max by (node) (k3scert_last_scan_success) == 0`,
			For:    "15m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "k3scert cannot scan {{ $labels.node }}",
				"description": "The last scans of {{ $labels.node }} failed (no data dir, or it is unreadable); the metrics show the last good scan. See the pod's log.",
				"runbook_url": alertsDoc("k3scertscanfailing"),
			},
		},
		{
			Alert:  "K3sCertScanStuck",
			Expr:   `max by (node) (k3scert_scan_stuck) == 1`,
			For:    "5m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "A k3scert scan of {{ $labels.node }} is stuck",
				"description": "A scan of {{ $labels.node }} has run past its deadline (a hung file system or endpoint); /healthz fails, so the kubelet restarts the pod.",
				"runbook_url": alertsDoc("k3scertscanstuck"),
			},
		},
		{
			Alert:  "K3sCertScanErrors",
			Expr:   `sum by (node, reason) (increase(k3scert_scan_errors_total[30m])) > 0`,
			For:    "30m",
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "k3scert cannot read some certificate sources on {{ $labels.node }}",
				"description": "Sources fail with reason {{ $labels.reason }} at every scan (" + diagnose.SourceUnreadable.ID + "); their certificates are not judged. `k3scert check` on the node names them.",
				"runbook_url": doc(diagnose.SourceUnreadable),
			},
		},
	}}
	return []RuleGroup{expiry, findings, exp}
}

func durationSeconds(d string) string {
	n, unit := 0, d[len(d)-1]
	fmt.Sscanf(d[:len(d)-1], "%d", &n)
	switch unit {
	case 'm':
		n *= 60
	case 'h':
		n *= 3600
	}
	return fmt.Sprint(n)
}

// CompatGroup records k3scert's certificate series under the names and
// labels of enix x509-certificate-exporter v3 (x509_cert_not_after,
// x509_cert_not_before, x509_cert_expired, x509_read_errors with
// subject_CN, subject_O, issuer_CN, filename, filepath, secret_namespace,
// secret_name; enix/x509-certificate-exporter@26f924dd44fb76eecd12ab69bef2676606da42b0,
// tag v3.21.0: internal/exporter.go getBaseLabels and fillLabelsFromName,
// internal/collector.go), so dashboards and alerts written for it work
// unchanged. k3scert's own labels (node, source, location, name) stay.
func CompatGroup() RuleGroup {
	enix := func(sel string) string {
		e := sel
		for _, r := range []struct{ dst, src, re string }{
			{"subject_CN", "subject", `CN=([^,]*).*`},
			{"subject_O", "subject", `CN=[^,]*,O=([^,]*).*`},
			{"issuer_CN", "issuer", `CN=([^,]*).*`},
			{"filepath", "location", `(/.*)`},
			{"filename", "location", `/(?:.*/)?([^/]+)`},
			{"secret_namespace", "location", `secret ([^/]+)/.*`},
			{"secret_name", "location", `secret [^/]+/(.+)`},
		} {
			e = fmt.Sprintf(`label_replace(%s, "%s", "$1", "%s", "%s")`, e, r.dst, r.src, r.re)
		}
		return e
	}
	return RuleGroup{Name: "k3scert.x509-compat", Rules: []Rule{
		{Record: "x509_cert_not_after", Expr: enix(NameNotAfter)},
		{Record: "x509_cert_not_before", Expr: enix(NameNotBefore)},
		{Record: "x509_cert_expired", Expr: enix(`max without (status) (` + NameStatus + `{status="expired"})`)},
		{Record: "x509_read_errors", Expr: `sum without (reason) (k3scert_scan_errors_total)`},
	}}
}

// RuleFile is a Prometheus rule file (`rule_files:`) of groups.
func RuleFile(header string, groups []RuleGroup) ([]byte, error) {
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		return nil, err
	}
	return append([]byte(header), b...), nil
}

// PrometheusRule is the prometheus-operator object of groups.
func PrometheusRule(header, name, namespace string, labels map[string]string, groups []RuleGroup) ([]byte, error) {
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata":   map[string]any{"name": name, "namespace": namespace, "labels": labels},
		"spec":       map[string]any{"groups": groups},
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(header), b...), nil
}
