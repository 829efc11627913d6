package diagnose

import "github.com/k3scert/k3scert/internal/report"

// Code is a stable finding code. Codes are API: they appear in JSON, metric
// labels and docs/findings/<ID>.md, and are never renamed or reused.
type Code struct {
	ID       string
	Name     string
	Severity report.Severity // the usual severity; a check may raise or lower it
	Summary  string
}

// The finding codes.
var (
	Expired          = Code{"K3C001", "certificate-expired", report.Critical, "a certificate has expired"}
	InRenewWindow    = Code{"K3C002", "inside-renew-window", report.Warning, "a certificate is inside the renew window; K3s renews it at the next restart"}
	NotYetValid      = Code{"K3C003", "not-yet-valid", report.Critical, "a certificate is not valid yet"}
	Missing          = Code{"K3C004", "certificate-missing", report.Warning, "a certificate K3s expects on this node is missing"}
	CAExpiring       = Code{"K3C010", "ca-expires-within-a-year", report.Warning, "a CA expires within 365 days; K3s never renews CAs"}
	ListenerStale    = Code{"K3C101", "listener-serves-stale-cert", report.Critical, "the :6443 listener certificate expires earlier than the renewed files, or has expired while they have not"}
	ListenerCopies   = Code{"K3C102", "listener-copies-differ", report.Warning, "dynamic-cert.json and the serving secret hold different certificates"}
	EndpointUnknown  = Code{"K3C103", "endpoint-serves-unknown-cert", report.Warning, "an endpoint serves a certificate found in no source on disk or in the store"}
	KubeconfigStale  = Code{"K3C201", "kubeconfig-stale-client-cert", report.Warning, "a kubeconfig holds a client certificate other than the current client-admin"}
	KubeconfigCA     = Code{"K3C202", "kubeconfig-trusts-other-ca", report.Warning, "a kubeconfig trusts a CA other than the node's server CA"}
	KeyMismatch      = Code{"K3C301", "key-does-not-match", report.Critical, "a private key does not match its certificate"}
	ChainBroken      = Code{"K3C302", "chain-does-not-verify", report.Critical, "a leaf does not verify against its CA"}
	SANMissing       = Code{"K3C303", "san-missing", report.Warning, "a serving certificate lacks a node IP or --tls-san name"}
	KeyModeTooOpen   = Code{"K3C304", "key-mode-too-open", report.Warning, "a private key file is readable or writable by others than its owner (mode wider than 0600)"}
	SourceUnreadable = Code{"K3C900", "source-unreadable", report.Warning, "a source cannot be read or parsed; the scan went on"}
)

// All lists every code, sorted by ID, for docs, completion and metrics.
var All = []Code{Expired, InRenewWindow, NotYetValid, Missing, CAExpiring, ListenerStale, ListenerCopies,
	EndpointUnknown, KubeconfigStale, KubeconfigCA, KeyMismatch, ChainBroken, SANMissing, KeyModeTooOpen, SourceUnreadable}

// Doc is the path of the code's documentation page.
func (c Code) Doc() string { return "docs/findings/" + c.ID + ".md" }

func (c Code) finding(sev report.Severity, loc, msg, remedy string) report.Finding {
	if sev == "" {
		sev = c.Severity
	}
	return report.Finding{Code: c.ID, Name: c.Name, Severity: sev, Location: loc, Message: msg, Remedy: remedy, Doc: c.Doc()}
}
