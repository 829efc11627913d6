package check

// This file: what an agent-only node points at (its --server, the servers
// its load balancer remembers, the kubelet's kubeconfig) and what those
// servers serve, judged against the agent's own copy of the server CA.

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"sort"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// AgentServerRole is the endpoint role of a server an agent points at.
const AgentServerRole = source.AgentServerRole

// AgentServers lists the servers an agent-only node points at, in a
// stable order, each with where it was found. On a server node it
// returns nil (its embedded agent talks to itself). The kubelet's
// kubeconfig server is added only when probing (kubeconfig true): on a
// real agent it is the agent's local load balancer (127.0.0.1:6444),
// which forwards to one of the servers, so it is a probe target ("does
// what the kubelet reaches serve a certificate the agent trusts?") more
// than a fact about the configuration; an offline report stays as it was.
func AgentServers(n Node, inv *source.Inventory, kubeconfig bool) []report.ServerRef {
	if n.Role != k3s.RoleAgent {
		return nil
	}
	byAddr := map[string]*report.ServerRef{}
	var order []string
	add := func(addr, url, from string) {
		r, ok := byAddr[addr]
		if !ok {
			r = &report.ServerRef{Address: addr, URL: url}
			byAddr[addr] = r
			order = append(order, addr)
		}
		if r.URL == "" {
			r.URL = url
		}
		for _, f := range r.From {
			if f == from {
				return
			}
		}
		r.From = append(r.From, from)
	}
	fromURL := func(u, from string) {
		if a, ok := k3s.ServerAddress(u); ok {
			add(a, u, from)
		}
	}
	if n.Config.Server != "" {
		fromURL(n.Config.Server, "config")
	}
	for _, rel := range k3s.AgentLoadBalancerFiles(n.Program) {
		b, err := source.ReadFile(filepath.Join(n.DataDir, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		st, err := k3s.ParseLoadBalancerState(b)
		if err != nil {
			if inv != nil {
				inv.AddProblem(source.Problem{Source: source.File, Location: filepath.Join(n.DataDir, filepath.FromSlash(rel)), Reason: source.ReasonBadJSON, Detail: err.Error()})
			}
			continue
		}
		from := "load-balancer " + rel
		if st.ServerURL != "" {
			fromURL(st.ServerURL, from)
		}
		for _, a := range st.ServerAddresses {
			if _, _, err := net.SplitHostPort(a); err == nil {
				add(a, "", from)
			}
		}
	}
	if inv != nil && kubeconfig {
		for _, k := range inv.Kubeconfigs {
			if strings.HasPrefix(filepath.Base(k.Location), "kubelet.kubeconfig") && k.Server != "" {
				fromURL(k.Server, "agent/kubelet.kubeconfig")
			}
		}
	}
	out := make([]report.ServerRef, 0, len(order))
	for _, a := range order {
		out = append(out, *byAddr[a])
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// rank: the configured server first, then what the load balancer
// learned, then the kubelet's (local load balancer) address.
func rank(r report.ServerRef) int {
	switch {
	case contains(r.From, "config"):
		return 0
	case strings.HasPrefix(r.From[0], "load-balancer"):
		return 1
	}
	return 2
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// agentServerSource probes the servers an agent points at with the
// agent's own server CA copy (agent/server-ca.crt) as the only roots:
// exactly what the agent trusts when it restarts.
func agentServerSource(n Node, o Options, inv *source.Inventory, servers []report.ServerRef) source.Source {
	if o.NoEndpoint || n.Role != k3s.RoleAgent || len(servers) == 0 {
		return nil
	}
	var roots []*x509.Certificate
	ca := filepath.Join(n.DataDir, "agent", "server-ca.crt")
	for _, c := range inv.Certs {
		if c.Source == source.File && c.Location == ca {
			roots = append(roots, c.Cert)
		}
	}
	var targets []source.EndpointTarget
	for _, s := range servers {
		targets = append(targets, source.EndpointTarget{Address: s.Address, Role: AgentServerRole})
	}
	return source.Endpoints{Targets: targets, Roots: roots, At: o.At, Timeout: o.Timeout}
}
