// Package report is k3scert's versioned output: one struct per kind
// (Report, and later Plan and Journal), rendered by internal/render. Field
// names are an API: never rename one.
package report

import "time"

// APIVersion of every document k3scert prints.
const APIVersion = "k3scert/v1alpha1"

// Severity of a finding.
type Severity string

// Severities, most severe first.
const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

// Rank orders severities: critical 3, warning 2, info 1.
func (s Severity) Rank() int {
	switch s {
	case Critical:
		return 3
	case Warning:
		return 2
	case Info:
		return 1
	}
	return 0
}

// Report is the result of `k3scert check`.
type Report struct {
	APIVersion   string        `json:"apiVersion"`
	Kind         string        `json:"kind"`
	At           time.Time     `json:"at"`
	Node         Node          `json:"node"`
	Certificates []Certificate `json:"certificates"`
	Endpoints    []Endpoint    `json:"endpoints"`
	Findings     []Finding     `json:"findings"`
	Summary      Summary       `json:"summary"`
}

// Node describes what was examined and under which assumptions.
type Node struct {
	DataDir       string `json:"dataDir"`
	Program       string `json:"program"`
	Role          string `json:"role"`
	Profile       string `json:"profile"`
	ProfileSource string `json:"profileSource"`
	RenewDays     int    `json:"renewDays"`
	// Servers are the servers an agent-only node points at (omitted on
	// servers and when none is configured).
	Servers []ServerRef `json:"servers,omitempty"`
}

// ServerRef is a server an agent points at, and where that was found:
// "config" (config.yaml, its drop-ins, the unit's --server or <P>_URL),
// "load-balancer" (agent/etc/<p>-agent-load-balancer.json) or a kubeconfig.
type ServerRef struct {
	Address string   `json:"address"` // host:port
	URL     string   `json:"url,omitempty"`
	From    []string `json:"from"`
}

// Certificate is one certificate as found in one place.
type Certificate struct {
	Source    string    `json:"source"`
	Location  string    `json:"location"`
	Index     int       `json:"index"`
	Name      string    `json:"name"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	IsCA      bool      `json:"isCA"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	Status    string    `json:"status"`
	SHA256    string    `json:"sha256"`
	SANs      []string  `json:"sans"`
	Usages    []string  `json:"usages"`
	Via       string    `json:"via,omitempty"`
	// ResidualSeconds is NotAfter minus At, negative when expired.
	ResidualSeconds int64 `json:"residualSeconds"`
}

// Endpoint is what a TLS endpoint did when probed.
type Endpoint struct {
	Address     string `json:"address"`
	Role        string `json:"role,omitempty"`
	Status      string `json:"status"`
	Error       string `json:"error,omitempty"`
	Trusted     bool   `json:"trusted"`
	VerifyError string `json:"verifyError,omitempty"`
}

// Finding is one diagnosed problem, with a stable code and a remedy.
type Finding struct {
	Code     string   `json:"code"`
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	Location string   `json:"location"`
	Message  string   `json:"message"`
	Remedy   string   `json:"remedy"`
	Doc      string   `json:"doc"`
}

// Summary counts findings and gives the exit status.
type Summary struct {
	Certificates int    `json:"certificates"`
	Critical     int    `json:"critical"`
	Warning      int    `json:"warning"`
	Info         int    `json:"info"`
	Status       string `json:"status"` // OK, WARNING, CRITICAL, UNKNOWN
	ExitCode     int    `json:"exitCode"`
}

// Exit codes (monitoring-plugin convention).
const (
	ExitOK       = 0
	ExitWarning  = 1
	ExitCritical = 2
	ExitUnknown  = 3
)

// FindingsWith returns the findings with the given code.
func (r Report) FindingsWith(code string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// Summarize fills r.Summary from its findings.
func (r *Report) Summarize() {
	s := Summary{Certificates: len(r.Certificates), Status: "OK"}
	for _, f := range r.Findings {
		switch f.Severity {
		case Critical:
			s.Critical++
		case Warning:
			s.Warning++
		default:
			s.Info++
		}
	}
	switch {
	case s.Critical > 0:
		s.Status, s.ExitCode = "CRITICAL", ExitCritical
	case s.Warning > 0:
		s.Status, s.ExitCode = "WARNING", ExitWarning
	}
	r.Summary = s
}
