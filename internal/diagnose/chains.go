package diagnose

// This file: keys, chains and SANs: K3C301, K3C302, K3C303.

import (
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// keys: K3C301.
func (d *diag) keys() {
	for _, k := range d.Inventory.Keys {
		if _, left := d.left[k.CertLocation]; left {
			continue // a leftover pair: nothing uses it (K3C005)
		}
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
		if d.unmanaged(c) {
			continue
		}
		signer := ""
		switch {
		case c.Source == source.File && c.SpecID != "":
			if s, ok := k3s.ByID(d.Program, d.Profile, c.SpecID); ok {
				signer = s.Signer
			} else if s, ok := k3s.ByPath(d.Program, strings.TrimPrefix(c.Location, strings.TrimSuffix(d.Node.DataDir, "/")+"/")); ok {
				signer = s.Signer
			}
		case c.SpecID == "listener" && !d.StaticListener:
			signer = k3s.ListenerSpec(d.Program).Signer
		}
		ca := caByID[signer]
		if ca == nil && signer != "" && d.Node.Role == string(k3s.RoleAgent) {
			// an agent-only node judges its leaves against its copies
			// of the server's CAs (agent/server-ca.crt, agent/client-ca.crt)
			ca = caByID["agent-"+signer]
		}
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
		if c.SpecID != "serving-kube-apiserver" && (c.SpecID != "listener" || d.StaticListener) {
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
