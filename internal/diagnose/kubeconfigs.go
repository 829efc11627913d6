package diagnose

// This file: kubeconfigs: K3C201, K3C202.

import (
	"crypto/x509"
	"fmt"
	"path"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

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
