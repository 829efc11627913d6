package diagnose

// This file: status, missing files and renew remedies: K3C001-K3C004, K3C010.

import (
	"fmt"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// status: K3C001, K3C002, K3C003, K3C010. A CA found in many files is
// reported once, at its own file (server/tls/…-ca.crt) rather than at a
// copy such as agent/server-ca.crt, which sorts first.
func (d *diag) status() {
	caAt := map[string]string{} // fingerprint -> location to report it at
	own := map[string]bool{}    // fingerprint -> caAt is the CA's own file
	for _, c := range d.primaries() {
		if !c.Cert.IsCA || c.Source == source.Registry {
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
		if d.unmanaged(c) {
			continue // judged by leftovers() and selfSigned(); registry certs are the user's
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
	case d.StaticListener && (c.SpecID == "listener" || c.Source == source.Secret || c.Source == source.DynamicCert || c.Via == "supervisor"):
		return "the listener certificate is user-provided (listener.cattle.io/static): neither K3s nor k3scert renews it; put a renewed certificate into the " + k3s.ListenerSpec(d.Program).SecretName + " secret and dynamic-cert.json, then restart " + d.Service
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
		if s.ID == "etcd-server-client" && d.DisableETCD {
			continue // --disable-etcd: K3s never writes it (deps.go@2a1e2e8:506-515)
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
