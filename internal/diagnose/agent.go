package diagnose

// This file: an agent-only node's servers: K3C401, K3C402, K3C403, and
// the server side of K3C003/K3C303 for them.

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// agentServers judges what the servers an agent points at serve, seen
// with the agent's own server CA copy: what the agent meets when it
// restarts (GET /cacerts, then the certificate requests). Nothing is
// said without a probe (--no-endpoints): an offline check must not turn
// into a false alarm.
func (d *diag) agentServers() {
	if d.Node.Role != string(k3s.RoleAgent) || !d.AgentServersProbed {
		return
	}
	if len(d.Node.Servers) == 0 {
		d.add(AgentServerUnchecked.finding("", joinData(d.Node.DataDir, "agent"),
			"no server found for this agent: no server: in config.yaml or its drop-ins, no --server or "+strings.ToUpper(string(d.Program))+"_URL in the unit, no "+strings.Join(k3s.AgentLoadBalancerFiles(d.Program), " or ")+", no server in agent/kubelet.kubeconfig; whether its server serves a certificate it can restart with was not checked",
			"pass the server with --endpoint <server>:"+fmt.Sprint(k3s.DefaultPorts(d.Program).Supervisor)+", or run k3scert check on the servers"))
		return
	}
	var serverCAs []*x509.Certificate
	for _, c := range d.Inventory.Certs {
		if c.Source == source.File && c.SpecID == "agent-server-ca" {
			serverCAs = append(serverCAs, c.Cert)
		}
	}
	from := map[string]string{}
	for _, s := range d.Node.Servers {
		from[s.Address] = strings.Join(s.From, ", ")
	}
	leaf := map[string]source.Cert{}
	chain := map[string][]*x509.Certificate{}
	for _, c := range d.Inventory.Certs {
		if c.Source == source.Endpoint && c.Via == source.AgentServerRole {
			if c.Index == 0 {
				leaf[c.Location] = c
			}
			chain[c.Location] = append(chain[c.Location], c.Cert)
		}
	}
	var down []string
	answered := 0
	for _, e := range d.Inventory.Endpoints {
		if e.Role != source.AgentServerRole {
			continue
		}
		c, ok := leaf[e.Address]
		if e.Status != "ok" || !ok {
			msg := e.Status
			if e.Error != "" {
				msg += ": " + e.Error
			}
			down = append(down, e.Address+" ("+msg+")")
			continue
		}
		answered++
		x := c.Cert
		who := fmt.Sprintf("the server %s (from %s)", e.Address, from[e.Address])
		svc := string(d.Program) + "-agent"
		if d.Program == k3s.RKE2 {
			svc = "rke2-agent"
		}
		switch pki.StatusAt(x, d.At, 0) {
		case pki.Expired:
			fails := fmt.Sprintf("this agent cannot start again; its start fails with \"https://%s/cacerts is not trusted: … x509: certificate has expired\"", e.Address)
			if apiOnly(from[e.Address]) {
				// RKE2's apiserver port (6443): the kubelet and kube-proxy
				// connect there through the agent's apiserver load balancer
				fails = "the kubelet and kube-proxy of this agent cannot connect to that apiserver (x509: certificate has expired)"
			}
			d.add(AgentServerExpired.finding("", e.Address,
				fmt.Sprintf("%s serves a certificate (%s) that expired %s: %s", who, subject(x), date(x.NotAfter), fails),
				"do not restart this agent yet: renew that server's listener first (on the server: k3scert check, then k3scert rotate), then restart this agent after it (systemctl restart "+svc+")"))
		case pki.NotYetValid:
			d.add(NotYetValid.finding("", e.Address,
				fmt.Sprintf("%s serves a certificate (%s) that is not valid before %s", who, subject(x), date(x.NotBefore)),
				"check the system clocks (timedatectl) of this agent and of that server; do not move the clock to work around expiry"))
		}
		if len(serverCAs) > 0 && !chainsTo(x, chain[e.Address], serverCAs) {
			issuer := x.Issuer.CommonName
			d.add(AgentCADiffers.finding("", e.Address,
				fmt.Sprintf("%s serves a certificate issued by %s, which does not chain to this agent's copy of the server CA (agent/server-ca.crt, %s): the servers' CA was rotated and this agent was not restarted since, or that address is not one of its servers", who, issuer, serverCAs[0].Subject.CommonName),
				"restart this agent after its servers (systemctl restart "+svc+"): it fetches server-ca.crt and client-ca.crt again on start; if the CA was rotated (k3s certificate rotate-ca), restart every server first"))
		}
		if strings.Contains(e.VerifyError, "not valid for") || strings.Contains(e.VerifyError, "doesn't contain any IP SANs") {
			d.add(SANMissing.finding("", e.Address, who+" serves a certificate that is not valid for that address: "+e.VerifyError,
				"on that server add the name with --tls-san (config.yaml tls-san) and restart it, or point this agent at a name the server's certificate holds"))
		}
	}
	if len(down) > 0 {
		msg := "none of this agent's servers answered: " + strings.Join(down, "; ") + "; whether they serve a certificate this agent can restart with was not checked"
		if answered > 0 {
			msg = fmt.Sprintf("%d of this agent's servers did not answer: %s", len(down), strings.Join(down, "; "))
		}
		d.add(AgentServerUnchecked.finding("", strings.SplitN(down[0], " ", 2)[0], msg,
			"run k3scert check where the server is reachable, or on the servers themselves; a server that is down is not a certificate problem of this agent"))
	}
}

// chainsTo reports whether leaf is signed by one of cas, directly or
// through an intermediate the server sends (a cross-signed CA).
func chainsTo(leaf *x509.Certificate, served []*x509.Certificate, cas []*x509.Certificate) bool {
	for _, ca := range cas {
		if pki.SignedBy(leaf, ca) == nil {
			return true
		}
	}
	for _, in := range served {
		if in == leaf || pki.SignedBy(leaf, in) != nil {
			continue
		}
		for _, ca := range cas {
			if pki.SignedBy(in, ca) == nil {
				return true
			}
		}
	}
	return false
}

// apiOnly: the address is known only from the apiserver load balancer
// (<p>-api-server-agent-load-balancer.json), not as a supervisor.
func apiOnly(from string) bool {
	for _, f := range strings.Split(from, ", ") {
		if !strings.Contains(f, "-api-server-agent-load-balancer.json") {
			return false
		}
	}
	return from != ""
}
