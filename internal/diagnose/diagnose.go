// Package diagnose turns observations into findings:
// (inventory, node, profile, time) -> report. It is pure: it must not
// import os, call time.Now or do any I/O or logging (net is used only for
// net.ParseIP).
package diagnose

import (
	"crypto/x509"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// Input is everything a diagnosis depends on.
type Input struct {
	Inventory *source.Inventory
	Node      report.Node
	Program   k3s.Program
	Profile   k3s.Profile
	At        time.Time
	// Expected SANs of the serving certificates (--tls-san, node IPs).
	TLSSANs []string
	NodeIPs []string
	// Service is the unit name used in remedies ("k3s", "k3s-agent", "rke2-server").
	Service string
	// DisableETCD: the server runs with --disable-etcd (no
	// etcd/server-client.crt, deps.go@2a1e2e8:506-515).
	DisableETCD bool
	// StaticListener: the listener secret is annotated
	// listener.cattle.io/static (a user-provided certificate): judged
	// against its own chain, never re-signed, never renewed by K3s.
	StaticListener bool
	// AgentServersProbed: the servers in Node.Servers were probed (check
	// without --no-endpoints); an agent-only node's findings about its
	// servers (agent.go) are only made from a probe.
	AgentServersProbed bool
}

// Run diagnoses the inventory and returns the report.
func Run(in Input) report.Report {
	if in.Service == "" {
		in.Service = string(in.Program)
		if in.Node.Role == string(k3s.RoleAgent) {
			in.Service += "-agent"
		}
	}
	d := &diag{Input: in}
	d.classify()
	r := report.Report{APIVersion: report.APIVersion, Kind: "Report", At: in.At.UTC(), Node: in.Node}
	r.Node.RenewDays = in.Profile.RenewDays
	r.Certificates = make([]report.Certificate, 0, len(in.Inventory.Certs))
	for _, c := range in.Inventory.Certs {
		r.Certificates = append(r.Certificates, d.certificate(c))
	}
	for _, e := range in.Inventory.Endpoints {
		r.Endpoints = append(r.Endpoints, report.Endpoint{Address: e.Address, Role: e.Role, Status: e.Status,
			Error: e.Error, Trusted: e.Trusted, VerifyError: e.VerifyError})
	}
	d.status()
	d.leftovers()
	d.selfSigned()
	d.missing()
	d.listener()
	d.endpoints()
	d.kubeconfigs()
	d.keys()
	d.keyModes() // keys.go
	d.chains()
	d.sans()
	d.problems()
	d.agentServers() // agent.go
	sort.SliceStable(d.out, func(i, j int) bool {
		a, b := d.out[i], d.out[j]
		if a.Severity.Rank() != b.Severity.Rank() {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Location < b.Location
	})
	r.Findings = d.out
	if r.Findings == nil {
		r.Findings = []report.Finding{}
	}
	if r.Certificates == nil {
		r.Certificates = []report.Certificate{}
	}
	if r.Endpoints == nil {
		r.Endpoints = []report.Endpoint{}
	}
	r.Summarize()
	return r
}

type diag struct {
	Input
	out []report.Finding
	// left maps the location of a present leftover file to what it is.
	left map[string]k3s.Leftover
	// selfSigned maps a location to the self-signed kube-* serving spec it
	// holds (files on pre-2025 rows, and the :10257/:10259 endpoints there).
	self map[string]k3s.Spec
	// prim caches primaries(): a dozen passes ask for it, and the
	// inventory does not change during a diagnosis.
	prim []source.Cert
}

func (d *diag) add(f report.Finding) { d.out = append(d.out, f) }

// warnDays is the WARNING threshold `k3s certificate check` uses.
func (d *diag) warnDays(c *x509.Certificate) int {
	if c.IsCA {
		return k3s.CARenewWarnDays
	}
	return d.Profile.RenewDays
}

func (d *diag) certificate(c source.Cert) report.Certificate {
	x := c.Cert
	name := c.SpecID
	if name == "" && c.Index == 0 && c.Source == source.File {
		name = strings.TrimSuffix(path.Base(strings.ReplaceAll(c.Location, "\\", "/")), path.Ext(c.Location))
	}
	return report.Certificate{
		Source: string(c.Source), Location: c.Location, Index: c.Index, Name: name,
		Subject: subject(x), Issuer: x.Issuer.CommonName, IsCA: x.IsCA,
		NotBefore: x.NotBefore.UTC(), NotAfter: x.NotAfter.UTC(),
		Status: string(pki.StatusAt(x, d.At, d.warnDays(x))),
		SHA256: pki.Fingerprint(x), SANs: nonNil(pki.SANs(x)), Usages: pki.Usages(x), Via: c.Via,
		ResidualSeconds: int64(x.NotAfter.Sub(d.At) / time.Second),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func subject(c *x509.Certificate) string {
	s := "CN=" + c.Subject.CommonName
	for _, o := range c.Subject.Organization {
		s += ",O=" + o
	}
	return s
}

// primaries are the first certificates of each location: what the location
// is. CA copies later in bundles are judged at their own files.
func (d *diag) primaries() []source.Cert {
	if d.prim != nil {
		return d.prim
	}
	out := make([]source.Cert, 0, len(d.Inventory.Certs))
	for _, c := range d.Inventory.Certs {
		if c.Index == 0 {
			out = append(out, c)
		}
	}
	d.prim = out
	return out
}

func date(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") }

func days(d time.Duration) int { return int(d.Hours() / 24) }

// describe names an observation for messages.
func describe(c source.Cert) string {
	switch c.Source {
	case source.Endpoint:
		return "the certificate served on " + c.Location
	case source.Secret:
		return "the listener certificate in " + strings.TrimPrefix(c.Location, "secret ") + " (via " + c.Via + ")"
	case source.DynamicCert:
		return "the listener certificate in " + c.Location
	case source.Kubeconfig:
		return "the client certificate in " + c.Location
	}
	return c.Location
}
