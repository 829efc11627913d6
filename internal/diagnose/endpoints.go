package diagnose

// This file: live endpoints: K3C103 and the endpoint side of K3C302/K3C303.

import (
	"fmt"
	"strings"

	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// endpoints: K3C103 and the endpoint side of K3C302/K3C303.
func (d *diag) endpoints() {
	known := map[string]bool{}
	for _, c := range d.Inventory.Certs {
		if c.Source != source.Endpoint {
			known[pki.Fingerprint(c.Cert)] = true
		}
	}
	for _, c := range d.primaries() {
		if c.Source != source.Endpoint || c.Via == source.AgentServerRole {
			continue
		}
		if _, self := d.self[c.Location]; self && !known[pki.Fingerprint(c.Cert)] {
			continue // made in memory by kube-controller-manager/kube-scheduler at start
		}
		if !known[pki.Fingerprint(c.Cert)] {
			d.add(EndpointUnknown.finding("", c.Location,
				fmt.Sprintf("%s (%s, expires %s) is in none of the files, dynamic-cert.json or the secret", describe(c), subject(c.Cert), date(c.Cert.NotAfter)),
				"the process listening there has not been restarted since its files changed, or another process owns the port: restart "+d.Service+" and check again"))
		}
	}
	for _, e := range d.Inventory.Endpoints {
		if e.VerifyError == "" || e.Role == source.AgentServerRole {
			continue
		}
		if _, self := d.self[e.Address]; (self || (d.StaticListener && e.Role == "supervisor")) && strings.Contains(e.VerifyError, "unknown authority") {
			continue // a self-signed in-memory certificate has no CA on disk to verify against
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
