package diagnose

// This file: the :6443 listener: K3C101, K3C102.

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

func (d *diag) fileLeaves() []source.Cert {
	var out []source.Cert
	for _, c := range d.primaries() {
		if c.Source != source.File || c.SpecID == "" || d.unmanaged(c) {
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
	if d.StaticListener {
		// A user-provided certificate: its expiry is judged by status()
		// (K3C001/K3C002 with the user-managed remedy); it is not
		// expected to follow the renewed files.
		copies = nil
	}
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
