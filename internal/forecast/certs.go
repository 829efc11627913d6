package forecast

import (
	"path"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// Cert is one certificate as the forecast sees it: where it is, what renews
// it, and its validity at From. Build it with FromInventory or FromReport,
// or by hand in tests.
type Cert struct {
	ID       string // stable key: the location
	Name     string // short name for people (path relative to the data dir, address, ...)
	Source   string // file, kubeconfig, dynamic-cert, secret, endpoint
	Location string
	Subject  string
	Class    string // report.Class*
	// Follows is what a follower (or k3s.yaml) copies at a restart: the
	// data-dir-relative path of a file certificate, e.g.
	// "server/tls/client-admin.crt". Run resolves it to that file's ID.
	Follows   string
	IsCA      bool
	NotBefore time.Time
	NotAfter  time.Time
}

// raw is a certificate before classification; both inventories and reports
// reduce to it.
type raw struct {
	source, location, specID, via string
	subject                       string
	isCA                          bool
	notBefore, notAfter           time.Time
	copyKnown, copy               bool
}

// FromInventory returns the certificates of an inventory the forecast
// follows: the first certificate of every location (CA copies later in a
// bundle are followed at their own files).
func FromInventory(inv *source.Inventory, node report.Node) []Cert {
	copies := map[string]bool{}
	for _, k := range inv.Kubeconfigs {
		copies[k.Location] = k.Copy
	}
	var out []Cert
	for _, c := range inv.Certs {
		if c.Index != 0 {
			continue
		}
		loc := strings.TrimSuffix(c.Location, " certificate-authority-data")
		isCopy, known := copies[loc]
		out = append(out, classify(raw{
			source: string(c.Source), location: c.Location, specID: c.SpecID, via: c.Via,
			subject: subject(c.Cert.Subject.CommonName, c.Cert.Subject.Organization), isCA: c.Cert.IsCA,
			notBefore: c.Cert.NotBefore.UTC(), notAfter: c.Cert.NotAfter.UTC(),
			copyKnown: known, copy: isCopy,
		}, node))
	}
	return out
}

// FromReport returns the certificates of a check report the forecast
// follows. A report does not say which kubeconfigs are copies: one named
// <program>.yaml is taken as K3s's own k3s.yaml, any other as a copy.
func FromReport(r report.Report) []Cert {
	var out []Cert
	for _, c := range r.Certificates {
		if c.Index != 0 {
			continue
		}
		out = append(out, classify(raw{
			source: c.Source, location: c.Location, specID: c.Name, via: c.Via,
			subject: c.Subject, isCA: c.IsCA, notBefore: c.NotBefore.UTC(), notAfter: c.NotAfter.UTC(),
		}, r.Node))
	}
	return out
}

func subject(cn string, orgs []string) string {
	s := "CN=" + cn
	for _, o := range orgs {
		s += ",O=" + o
	}
	return s
}

func program(n report.Node) k3s.Program {
	if n.Program == "" {
		return k3s.K3s
	}
	return k3s.Program(n.Program)
}

// rel returns loc relative to the data dir (slash-separated), or "" when it
// is not inside it.
func rel(dataDir, loc string) string {
	loc = strings.ReplaceAll(loc, "\\", "/")
	d := strings.TrimSuffix(strings.ReplaceAll(dataDir, "\\", "/"), "/")
	if d == "" || !strings.HasPrefix(loc, d+"/") {
		return ""
	}
	return strings.TrimPrefix(loc, d+"/")
}

func classify(r raw, n report.Node) Cert {
	c := Cert{ID: r.location, Name: r.location, Source: r.source, Location: r.location, Subject: r.subject,
		IsCA: r.isCA, NotBefore: r.notBefore, NotAfter: r.notAfter, Class: report.ClassOther}
	p := program(n)
	switch source.Kind(r.source) {
	case source.File:
		rp := rel(n.DataDir, r.location)
		if rp != "" {
			c.Name = rp
		}
		var s k3s.Spec
		ok := false
		if rp != "" {
			s, ok = k3s.ByPath(p, rp)
		}
		prof, perr := k3s.ProfileByName(n.Profile)
		if ok && perr == nil {
			if unmanaged(p, prof, rp) {
				// a leftover of an older generation, or a self-signed
				// kube-* serving certificate: nothing renews it
				ok, s = false, k3s.Spec{}
			} else if rs, in := k3s.ByID(p, prof, s.ID); in {
				s = rs
			}
		}
		switch {
		case ok && s.CA, !ok && r.isCA:
			c.Class = report.ClassCA
		case ok && s.Role == k3s.RoleAgent && s.Renewable():
			c.Class = report.ClassAgentLeaf
		case ok && s.Role == k3s.RoleServer && s.Renewable():
			c.Class = report.ClassServerLeaf
		}
	case source.Kubeconfig:
		file, user := splitKubeconfigLocation(r.location)
		c.Name = path.Base(strings.ReplaceAll(file, "\\", "/")) + " (user " + user + ")"
		admin := r.copyKnown && !r.copy || !r.copyKnown && path.Base(strings.ReplaceAll(file, "\\", "/")) == string(p)+".yaml"
		switch {
		case r.via == "ca" || r.isCA:
			c.Class = report.ClassCA
			c.Name += " CA"
			if admin {
				c.Follows = "server/tls/server-ca.crt"
			}
		case admin:
			c.Class = report.ClassAdminKubecfg
			c.Follows = "server/tls/client-admin.crt"
		default:
			c.Class = report.ClassKubeconfigCopy
		}
	case source.DynamicCert:
		c.Class = report.ClassListener
		if rp := rel(n.DataDir, r.location); rp != "" {
			c.Name = rp
		}
	case source.Secret:
		c.Class = report.ClassListener
	case source.Endpoint:
		role := r.via
		if role == "" {
			role = strings.TrimPrefix(r.specID, "endpoint-")
		}
		c.Name = r.location + " (" + role + ")"
		switch role {
		case source.AgentServerRole:
			// another node's supervisor listener, as this agent sees it:
			// renewed (or not) by that server, never by this agent
			c.Class, c.Name = report.ClassListener, r.location+" (its server's listener)"
		case "supervisor":
			c.Class = report.ClassListener
		case "apiserver":
			c.Class, c.Follows = report.ClassFollower, "server/tls/serving-kube-apiserver.crt"
		case "kubelet":
			c.Class, c.Follows = report.ClassFollower, "agent/serving-kubelet.crt"
		case "etcd":
			c.Class, c.Follows = report.ClassFollower, "server/tls/etcd/server-client.crt"
		case "controller-manager", "scheduler":
			// CA-signed files on the 2025 rows; before, a self-signed
			// certificate made by the component (ClassOther).
			if prof, err := k3s.ProfileByName(n.Profile); err == nil && prof.KCMSchedulerServing {
				c.Class, c.Follows = report.ClassFollower, "server/tls/kube-"+role+"/kube-"+role+".crt"
			}
		}
	}
	return c
}

// unmanaged reports files of the table that nothing renews on this row:
// leftovers and self-signed kube-* serving certificates.
func unmanaged(p k3s.Program, prof k3s.Profile, rp string) bool {
	for _, l := range k3s.Leftovers(p, prof) {
		if l.Spec.Cert == rp {
			return true
		}
	}
	for _, s := range k3s.Specs(p, prof) {
		if s.SelfSigned && s.Cert == rp {
			return true
		}
	}
	return false
}

// splitKubeconfigLocation splits "PATH (user NAME)[ certificate-authority-data]".
func splitKubeconfigLocation(loc string) (file, user string) {
	loc = strings.TrimSuffix(loc, " certificate-authority-data")
	i := strings.LastIndex(loc, " (user ")
	if i < 0 || !strings.HasSuffix(loc, ")") {
		return loc, "?"
	}
	return loc[:i], loc[i+len(" (user ") : len(loc)-1]
}

// clientFacing reports whether a certificate decides the lock-out: what the
// supervisor serves, and what kubectl users hold.
func clientFacing(c Cert) bool {
	switch c.Class {
	case report.ClassListener, report.ClassAdminKubecfg, report.ClassKubeconfigCopy:
		return true
	case report.ClassCA:
		return c.Source == string(source.Kubeconfig)
	}
	return false
}

// DefaultTo is the default end of a forecast: the latest CA expiry, or two
// years after from when there is no CA (or every CA has already expired).
func DefaultTo(certs []Cert, from time.Time) time.Time {
	var to time.Time
	for _, c := range certs {
		if c.IsCA && c.NotAfter.After(to) {
			to = c.NotAfter
		}
	}
	if !to.After(from) {
		return from.AddDate(2, 0, 0)
	}
	return to
}
