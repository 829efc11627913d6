package diagnose

// This file: leftovers of older K3s generations (K3C005), the self-signed
// kube-controller-manager / kube-scheduler serving certificates (K3C006)
// and registry certificates, which are inventoried but never judged as K3s's.

import (
	"fmt"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// classify sorts the observations that are not ordinary K3s-managed
// certificates: leftovers and self-signed serving certificates.
func (d *diag) classify() {
	d.left = map[string]k3s.Leftover{}
	for _, l := range k3s.Leftovers(d.Program, d.Profile) {
		d.left[joinData(d.Node.DataDir, l.Spec.Cert)] = l
	}
	d.self = map[string]k3s.Spec{}
	for _, s := range k3s.Specs(d.Program, d.Profile) {
		if !s.SelfSigned {
			continue
		}
		d.self[joinData(d.Node.DataDir, s.Cert)] = s
	}
	if d.Profile.KCMSchedulerServing {
		return
	}
	// Without --cert-dir the components serve a self-signed certificate
	// made in memory at every start: the endpoint is self-signed too.
	for _, c := range d.Inventory.Certs {
		if c.Source != source.Endpoint || c.Index != 0 {
			continue
		}
		for _, s := range k3s.Specs(d.Program, d.Profile) {
			if s.SelfSigned && s.Service == c.Via {
				d.self[c.Location] = s
			}
		}
	}
}

// unmanaged reports observations that K3s does not renew and that the
// generic checks must skip: leftovers, self-signed kube-* serving
// certificates and registry certificates.
func (d *diag) unmanaged(c source.Cert) bool {
	if c.Source == source.Registry {
		return true
	}
	if c.Source == source.Endpoint && c.Via == source.AgentServerRole {
		return true // another node's listener: judged by agentServers()
	}
	if _, ok := d.left[c.Location]; ok && c.Source == source.File {
		return true
	}
	_, ok := d.self[c.Location]
	return ok
}

// leftovers: K3C005, info only.
func (d *diag) leftovers() {
	for _, c := range d.primaries() {
		l, ok := d.left[c.Location]
		if !ok || c.Source != source.File {
			continue
		}
		x := c.Cert
		when := "expires " + date(x.NotAfter)
		if !x.NotAfter.After(d.At) {
			when = "expired " + date(x.NotAfter)
		}
		key := strings.TrimSuffix(c.Location, ".crt") + ".key"
		remedy := "safe to remove: nothing reads it, K3s neither renews nor deletes it, and k3scert never rotates it (rm " + c.Location + " " + key + ")"
		if l.RemovedAtStart {
			remedy = "nothing to do: " + d.Service + " deletes it at its next start (removing it now is also safe; keep " + key + ")"
		}
		d.add(Leftover.finding("", c.Location,
			fmt.Sprintf("%s (%s, %s) is a leftover: %s", c.Location, subject(x), when, l.Why), remedy))
	}
}

// selfSigned: K3C006 for the self-signed kube-controller-manager and
// kube-scheduler serving certificates (rancher/rancher#41125): warned
// inside the row's renew window, never critical (K3s itself does not use
// them; Rancher's health probes and monitoring do).
func (d *diag) selfSigned() {
	for _, c := range d.primaries() {
		s, ok := d.self[c.Location]
		if !ok {
			continue
		}
		x := c.Cert
		st := pki.StatusAt(x, d.At, d.Profile.RenewDays)
		if st != pki.Expired && st != pki.Warning {
			continue
		}
		comp := "kube-" + s.Service
		state := fmt.Sprintf("expires %s, in %d days", date(x.NotAfter), days(x.NotAfter.Sub(d.At)))
		if st == pki.Expired {
			state = fmt.Sprintf("expired %s; HTTPS clients of :%d (Rancher's \"Waiting for probes\", Prometheus) fail", date(x.NotAfter), s.Port)
		}
		what, remedy := "", ""
		if c.Source == source.File {
			what = fmt.Sprintf("%s (%s) is the self-signed serving certificate %s writes to its --cert-dir (set by Rancher); nothing renews it", c.Location, subject(x), comp)
			remedy = fmt.Sprintf("delete %s and its .key, then restart %s: %s makes a new one at start (k3scert rotate does this); upgrading to v1.33.1/v1.32.5/v1.31.9 or later makes K3s sign it with server-ca and renew it", c.Location, d.Service, comp)
		} else {
			what = fmt.Sprintf("%s (%s) is the self-signed certificate %s made in memory at its last start", describe(c), subject(x), comp)
			remedy = fmt.Sprintf("restart %s: %s makes a new one at every start", d.Service, comp)
		}
		d.add(SelfSignedServing.finding("", c.Location, what+"; it "+state, remedy))
	}
}
