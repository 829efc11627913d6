// Package diagnose turns observations into findings:
// (inventory, node, profile, time) -> report. It is pure: it must not
// import os, call time.Now or do any I/O or logging (net is used only for
// net.ParseIP).
package diagnose

import (
	"crypto/x509"
	"fmt"
	"net"
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
	r := report.Report{APIVersion: report.APIVersion, Kind: "Report", At: in.At.UTC(), Node: in.Node}
	r.Node.RenewDays = in.Profile.RenewDays
	for _, c := range in.Inventory.Certs {
		r.Certificates = append(r.Certificates, d.certificate(c))
	}
	for _, e := range in.Inventory.Endpoints {
		r.Endpoints = append(r.Endpoints, report.Endpoint{Address: e.Address, Role: e.Role, Status: e.Status,
			Error: e.Error, Trusted: e.Trusted, VerifyError: e.VerifyError})
	}
	d.status()
	d.missing()
	d.listener()
	d.endpoints()
	d.kubeconfigs()
	d.keys()
	d.keyModes() // keys.go
	d.chains()
	d.sans()
	d.problems()
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
	var out []source.Cert
	for _, c := range d.Inventory.Certs {
		if c.Index == 0 {
			out = append(out, c)
		}
	}
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

// status: K3C001, K3C002, K3C003, K3C010. A CA found in many files is
// reported once, at its own file (server/tls/…-ca.crt) rather than at a
// copy such as agent/server-ca.crt, which sorts first.
func (d *diag) status() {
	caAt := map[string]string{} // fingerprint -> location to report it at
	own := map[string]bool{}    // fingerprint -> caAt is the CA's own file
	for _, c := range d.primaries() {
		if !c.Cert.IsCA {
			continue
		}
		fp := pki.Fingerprint(c.Cert)
		if _, ok := caAt[fp]; !ok || (!own[fp] && d.isCAFile(c)) {
			caAt[fp], own[fp] = c.Location, d.isCAFile(c)
		}
	}
	for _, c := range d.primaries() {
		x := c.Cert
		if x.IsCA && caAt[pki.Fingerprint(x)] != c.Location {
			continue
		}
		switch st := pki.StatusAt(x, d.At, d.warnDays(x)); {
		case st == pki.Expired:
			d.add(Expired.finding("", c.Location,
				fmt.Sprintf("%s (%s) expired %s (%d days before %s)", describe(c), subject(x), date(x.NotAfter), days(d.At.Sub(x.NotAfter)), date(d.At)),
				d.remedyRenew(c)))
		case st == pki.NotYetValid:
			d.add(NotYetValid.finding("", c.Location,
				fmt.Sprintf("%s (%s) is not valid before %s; the clock of the node that signed it, or of this one, is wrong", describe(c), subject(x), date(x.NotBefore)),
				"check the system clocks (timedatectl) of this node and of the server that issued it; do not move the clock to work around expiry"))
		case st == pki.Warning && x.IsCA:
			d.add(CAExpiring.finding("", c.Location,
				fmt.Sprintf("CA %s expires %s, in %d days; K3s never renews CAs, and every certificate it signed stops working then", x.Subject.CommonName, date(x.NotAfter), days(x.NotAfter.Sub(d.At))),
				"plan a CA rotation: k3s certificate rotate-ca --path <dir with new, cross-signed CAs> (see docs/runbooks/ca-rotation.md)"))
		case st == pki.Warning:
			d.add(InRenewWindow.finding("", c.Location,
				fmt.Sprintf("%s expires %s, in %d days: inside the %d-day renew window of profile %s", describe(c), date(x.NotAfter), days(x.NotAfter.Sub(d.At)), d.Profile.RenewDays, d.Profile.Name),
				d.remedyRenew(c)))
		}
	}
}

// isCAFile reports whether c is a CA's own file, not a copy of it.
func (d *diag) isCAFile(c source.Cert) bool {
	if c.Source != source.File || c.SpecID == "" {
		return false
	}
	s, ok := k3s.ByID(d.Program, d.Profile, c.SpecID)
	return ok && s.CA && !s.Copy
}

func (d *diag) remedyRenew(c source.Cert) string {
	switch {
	case c.Source == source.Kubeconfig:
		return "copy the current admin credentials again: k3scert kubeconfig refresh " + kubeconfigPath(c.Location)
	case c.SpecID == "listener" || c.Source == source.Secret || c.Source == source.DynamicCert || c.Via == "supervisor":
		if !d.Profile.ListenerRenews {
			return "K3s of this version never renews the listener certificate: run k3scert rotate (renews it in the secret and dynamic-cert.json, then restarts)"
		}
		return fmt.Sprintf("nothing to do while %s runs: this version's listener renews itself %d days before expiry (checked every 6 h); if it still shows this after a day, run k3scert rotate", d.Service, d.Profile.RenewDays)
	case c.Source == source.File && strings.Contains(c.Location, "/agent/") && d.Node.Role == string(k3s.RoleServer):
		return "restart " + d.Service + ": the server's embedded agent fetches fresh agent certificates on every start"
	case c.Source == source.File && strings.Contains(c.Location, "/agent/"):
		return "restart the agent after its server (systemctl restart " + string(d.Program) + "-agent); agents fetch fresh certificates on start"
	case c.Cert.IsCA:
		return "rotate the CA: k3s certificate rotate-ca (K3s never renews CAs); see docs/runbooks/ca-rotation.md"
	}
	return "restart " + d.Service + " (systemctl restart " + d.Service + ") to renew it, or run k3scert rotate for a verified renewal"
}

func kubeconfigPath(loc string) string {
	if i := strings.Index(loc, " (user "); i > 0 {
		return loc[:i]
	}
	return loc
}

// missing: K3C004 for certificates every node of this role and profile has.
func (d *diag) missing() {
	have := map[string]bool{}
	for _, c := range d.Inventory.Certs {
		have[c.Location] = true
	}
	bad := map[string]bool{}
	for _, p := range d.Inventory.Problems {
		bad[p.Location] = true
	}
	for _, s := range k3s.Specs(d.Program, d.Profile) {
		if s.Cert == "" || s.Optional || string(s.Role) != d.Node.Role {
			continue
		}
		if strings.HasPrefix(s.ID, "etcd-") && !have[joinData(d.Node.DataDir, "server/tls/etcd/server-ca.crt")] {
			continue // a node without etcd certificates (older K3s on SQLite)
		}
		p := joinData(d.Node.DataDir, s.Cert)
		if have[p] || bad[p] {
			continue
		}
		d.add(Missing.finding("", p, fmt.Sprintf("%s (%s) is missing", p, s.ID),
			"if a rotation deleted it, restart "+d.Service+" to regenerate it; otherwise restore it from the last backup"))
	}
}

func joinData(dataDir, rel string) string {
	return strings.TrimSuffix(dataDir, "/") + "/" + rel
}

// fileLeaves are the primary certificates of K3s-renewed server leaf files.
func (d *diag) fileLeaves() []source.Cert {
	var out []source.Cert
	for _, c := range d.primaries() {
		if c.Source != source.File || c.SpecID == "" {
			continue
		}
		s, ok := k3s.ByID(d.Program, d.Profile, c.SpecID)
		if !ok {
			s, ok = k3s.ByPath(d.Program, strings.TrimPrefix(c.Location, strings.TrimSuffix(d.Node.DataDir, "/")+"/"))
		}
		if ok && s.Role == k3s.RoleServer && s.Renewable() {
			out = append(out, c)
		}
	}
	return out
}

// listenerCopies are the listener certificate's copies: dynamic-cert.json,
// the secret, and what the supervisor port serves.
func (d *diag) listenerCopies() []source.Cert {
	var out []source.Cert
	for _, c := range d.primaries() {
		if c.SpecID == "listener" || c.SpecID == "endpoint-supervisor" {
			out = append(out, c)
		}
	}
	return out
}

// listener: K3C101 and K3C102, the reference failure.
func (d *diag) listener() {
	files := d.fileLeaves()
	copies := d.listenerCopies()
	if len(files) == 0 || len(copies) == 0 {
		return
	}
	// The reference is the newest renewed leaf: after a restart every
	// leaf K3s renewed carries about the same NotAfter.
	ref := files[0]
	for _, f := range files {
		if f.SpecID == "client-admin" || f.SpecID == "serving-kube-apiserver" {
			if f.Cert.NotAfter.After(ref.Cert.NotAfter) || (ref.SpecID != "client-admin" && ref.SpecID != "serving-kube-apiserver") {
				ref = f
			}
		}
	}
	refValid := pki.StatusAt(ref.Cert, d.At, 0) == pki.OK
	for _, c := range copies {
		x := c.Cert
		st := pki.StatusAt(x, d.At, 0)
		switch {
		case (st == pki.Expired || st == pki.NotYetValid) && refValid:
			d.add(ListenerStale.finding(report.Critical, c.Location,
				fmt.Sprintf("%s expired %s while the renewed files are valid until %s (%s); clients of :%d fail with \"x509: certificate has expired or is not yet valid\"",
					describe(c), date(x.NotAfter), date(ref.Cert.NotAfter), path.Base(ref.Location), k3s.DefaultPorts(d.Program).Supervisor),
				"run k3scert rotate: it renews the listener certificate in both the secret and dynamic-cert.json and restarts "+d.Service+", without touching the clock (by hand: delete both, then restart)"))
		case x.NotAfter.Before(ref.Cert.NotAfter.Add(-24*time.Hour)) && st != pki.Expired:
			sev := report.Warning
			why := "K3s " + d.Profile.Versions + " never renews the listener certificate (dynamiclistener v0.2.0), so a restart will not fix it"
			if d.Profile.ListenerRenews {
				sev = report.Info
				why = fmt.Sprintf("this K3s renews it itself %d days before expiry while running", d.Profile.RenewDays)
			}
			d.add(ListenerStale.finding(sev, c.Location,
				fmt.Sprintf("%s expires %s, %d days before the renewed files (%s); %s", describe(c), date(x.NotAfter),
					days(ref.Cert.NotAfter.Sub(x.NotAfter)), date(ref.Cert.NotAfter), why),
				"run k3scert rotate before "+date(x.NotAfter)+" (or k3scert forecast to see the lock-out date)"))
		}
	}
	var jsonC, secC *source.Cert
	for i := range copies {
		switch copies[i].Source {
		case source.DynamicCert:
			jsonC = &copies[i]
		case source.Secret:
			secC = &copies[i]
		}
	}
	if jsonC != nil && secC != nil && pki.Fingerprint(jsonC.Cert) != pki.Fingerprint(secC.Cert) {
		d.add(ListenerCopies.finding("", jsonC.Location,
			fmt.Sprintf("dynamic-cert.json holds a certificate expiring %s but %s holds one expiring %s; on restart they re-seed each other through dynamiclistener's merge",
				date(jsonC.Cert.NotAfter), strings.TrimPrefix(secC.Location, "secret "), date(secC.Cert.NotAfter)),
			"run k3scert rotate to write one renewed certificate to both places"))
	}
}

// endpoints: K3C103 and the endpoint side of K3C302/K3C303.
func (d *diag) endpoints() {
	known := map[string]bool{}
	for _, c := range d.Inventory.Certs {
		if c.Source != source.Endpoint {
			known[pki.Fingerprint(c.Cert)] = true
		}
	}
	for _, c := range d.primaries() {
		if c.Source != source.Endpoint {
			continue
		}
		if !known[pki.Fingerprint(c.Cert)] {
			d.add(EndpointUnknown.finding("", c.Location,
				fmt.Sprintf("%s (%s, expires %s) is in none of the files, dynamic-cert.json or the secret", describe(c), subject(c.Cert), date(c.Cert.NotAfter)),
				"the process listening there has not been restarted since its files changed, or another process owns the port: restart "+d.Service+" and check again"))
		}
	}
	for _, e := range d.Inventory.Endpoints {
		if e.VerifyError == "" {
			continue
		}
		switch {
		case strings.Contains(e.VerifyError, "unknown authority"):
			d.add(ChainBroken.finding("", e.Address, "the chain served on "+e.Address+" does not verify against the node's CAs: "+e.VerifyError,
				"the served certificate was signed by another CA (CA rotated without restart, or a foreign process): restart "+d.Service+", or run k3scert rotate"))
		case strings.Contains(e.VerifyError, "not valid for") || strings.Contains(e.VerifyError, "doesn't contain any IP SANs"):
			d.add(SANMissing.finding("", e.Address, "the certificate served on "+e.Address+" is not valid for that address: "+e.VerifyError,
				"add the name with --tls-san (config.yaml tls-san) and restart "+d.Service))
		}
	}
}

// kubeconfigs: K3C201 and K3C202.
func (d *diag) kubeconfigs() {
	var admin *x509.Certificate
	var serverCA *x509.Certificate
	for _, c := range d.primaries() {
		switch {
		case c.Source == source.File && c.SpecID == "client-admin":
			admin = c.Cert
		case c.Source == source.File && c.SpecID == "server-ca":
			serverCA = c.Cert
		}
	}
	byLoc := map[string]*x509.Certificate{}
	for _, c := range d.primaries() {
		if c.Source == source.Kubeconfig && c.Via == "client" {
			byLoc[c.Location] = c.Cert
		}
	}
	for _, k := range d.Inventory.Kubeconfigs {
		if !k.Embedded {
			continue
		}
		if admin != nil && k.ClientFP != "" && k.ClientFP != pki.Fingerprint(admin) {
			x := byLoc[k.Location]
			sev := report.Warning
			state := "it"
			if x != nil {
				state = fmt.Sprintf("its certificate (%s) expires %s", subject(x), date(x.NotAfter))
				if st := pki.StatusAt(x, d.At, 0); st == pki.Expired || st == pki.NotYetValid {
					sev = report.Critical
					state = fmt.Sprintf("its certificate (%s) expired %s, so kubectl with this file fails with \"x509: certificate has expired\"", subject(x), date(x.NotAfter))
				}
			}
			remedy := "k3scert kubeconfig refresh " + kubeconfigPath(k.Location) + " (K3s rewrites only its own " + path.Base(k3s.DefaultKubeconfig(d.Program)) + " on start; copies are never updated)"
			if !k.Copy {
				remedy = "restart " + d.Service + ": K3s rewrites " + kubeconfigPath(k.Location) + " from client-admin.crt on every server start (the files changed since the last start)"
			}
			d.add(KubeconfigStale.finding(sev, k.Location,
				fmt.Sprintf("%s is not the current client-admin certificate (expires %s); %s", kubeconfigPath(k.Location), date(admin.NotAfter), state),
				remedy))
		}
		if serverCA != nil && len(k.ServerCAs) > 0 && !contains(k.ServerCAs, pki.Fingerprint(serverCA)) {
			d.add(KubeconfigCA.finding("", k.Location,
				fmt.Sprintf("%s trusts a CA other than the node's server-ca (%s); the server will not verify", kubeconfigPath(k.Location), serverCA.Subject.CommonName),
				"k3scert kubeconfig refresh "+kubeconfigPath(k.Location)))
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// keys: K3C301.
func (d *diag) keys() {
	for _, k := range d.Inventory.Keys {
		if k.CertLocation != "" && !k.Matches {
			d.add(KeyMismatch.finding("", k.Location,
				fmt.Sprintf("the private key %s does not match the certificate %s; the component using them fails its TLS handshakes", k.Location, k.CertLocation),
				"restore the pair from the last backup, or delete both so that "+d.Service+" regenerates them on restart (k3scert rotate --method regenerate)"))
		}
	}
}

// chains: K3C302 for file leaves and listener copies, against their signer
// CA file, by signature (time is judged separately).
func (d *diag) chains() {
	caByID := map[string]*x509.Certificate{}
	for _, c := range d.primaries() {
		if c.Source == source.File && c.Cert.IsCA && c.SpecID != "" {
			caByID[c.SpecID] = c.Cert
		}
	}
	for _, c := range d.primaries() {
		signer := ""
		switch {
		case c.Source == source.File && c.SpecID != "":
			if s, ok := k3s.ByID(d.Program, d.Profile, c.SpecID); ok {
				signer = s.Signer
			} else if s, ok := k3s.ByPath(d.Program, strings.TrimPrefix(c.Location, strings.TrimSuffix(d.Node.DataDir, "/")+"/")); ok {
				signer = s.Signer
			}
		case c.SpecID == "listener":
			signer = k3s.ListenerSpec(d.Program).Signer
		}
		ca := caByID[signer]
		if signer == "" || ca == nil {
			continue
		}
		if err := pki.SignedBy(c.Cert, ca); err != nil {
			d.add(ChainBroken.finding("", c.Location,
				fmt.Sprintf("%s (%s) is not signed by %s (%s): %v", describe(c), subject(c.Cert), signer, ca.Subject.CommonName, err),
				"the CA was replaced without reissuing this certificate: restart "+d.Service+" (K3s reissues leaves whose CA changed), or run k3scert rotate"))
		}
	}
}

// sans: K3C303 for the apiserver serving certificate and the listener.
func (d *diag) sans() {
	want := append([]string{"127.0.0.1"}, d.TLSSANs...)
	want = append(want, d.NodeIPs...)
	for _, c := range d.primaries() {
		if c.SpecID != "serving-kube-apiserver" && c.SpecID != "listener" {
			continue
		}
		have := map[string]bool{}
		for _, n := range pki.SANs(c.Cert) {
			have[normalizeName(n)] = true
		}
		var miss []string
		for _, n := range want {
			if !have[normalizeName(n)] {
				miss = append(miss, n)
			}
		}
		if len(miss) > 0 {
			d.add(SANMissing.finding("", c.Location,
				fmt.Sprintf("%s lacks %s; clients connecting by that name fail with \"x509: certificate is valid for ..., not ...\"", describe(c), strings.Join(miss, ", ")),
				"add the names with --tls-san (config.yaml tls-san) and restart "+d.Service+"; current K3s reissues leaves whose SANs are missing, the listener adds names itself; on older versions use k3scert rotate --method regenerate (k3scert rotate --method renew keeps the old names)"))
		}
	}
}

func normalizeName(n string) string {
	if ip := net.ParseIP(n); ip != nil {
		return ip.String()
	}
	return strings.ToLower(n)
}

// problems: K3C900 for every source that could not be read.
func (d *diag) problems() {
	for _, p := range d.Inventory.Problems {
		d.add(SourceUnreadable.finding("", p.Location,
			fmt.Sprintf("%s %s: %s (%s)", p.Source, p.Location, p.Detail, p.Reason), remedyFor(p)))
	}
}

func remedyFor(p source.Problem) string {
	switch p.Reason {
	case source.ReasonPermission:
		return "run k3scert as root (the data dir is root-only)"
	case source.ReasonNotFound:
		return "restore the file from the last backup or restart the service so K3s writes it"
	case source.ReasonUnreachable, source.ReasonTLS:
		return "check that the service listens on that address, or drop the --endpoint"
	case source.ReasonSecret:
		return "the secret could not be read; run k3scert check as root on a server node so the datastore can be read"
	case source.ReasonTooLarge, source.ReasonNotRegular, source.ReasonSymlinkLoop:
		return "this is not a certificate file K3s writes; move it out of the data dir"
	}
	return "the file is damaged: restore it from the last backup, or remove the pair so K3s regenerates it on restart"
}
