package cluster

import (
	"fmt"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
)

// Plan is a cluster rotation: every node once, servers one at a time in
// inventory order, then the agents. It is pure data; Run executes it.
type Plan struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Program    k3s.Program `json:"program"`
	Inventory  string      `json:"inventory,omitempty"`
	// AgentConcurrency is how many agents rotate at once (default 1;
	// servers always one at a time). A batch runs to its end; a failure in
	// it stops the run before the next batch.
	AgentConcurrency int        `json:"agentConcurrency"`
	Steps            []NodeStep `json:"steps"`
}

// NewPlan orders the inventory's nodes: servers first, one at a time, in
// inventory order; the first server renews the shared
// kube-system/<program>-serving secret (ListenerRenew), every later server
// adopts the renewed one (ListenerAdopt); then every agent, after all
// servers, because an agent fetches its certificates from a server on
// start (docs/runbooks/agents.md, k3s-io/k3s#4221). It is pure.
func NewPlan(inv Inventory) (Plan, error) {
	if err := inv.Validate(); err != nil {
		return Plan{}, err
	}
	p := Plan{APIVersion: report.APIVersion, Kind: "ClusterPlan", Program: inv.Program, Inventory: inv.Path, AgentConcurrency: 1}
	first := true
	for _, role := range []Role{RoleServer, RoleAgent} {
		for _, n := range inv.Nodes {
			if n.Role != role {
				continue
			}
			s := NodeStep{Order: len(p.Steps) + 1, Node: n}
			if role == RoleServer {
				s.Listener = ListenerAdopt
				if first {
					s.Listener, first = ListenerRenew, false
				}
			}
			p.Steps = append(p.Steps, s)
		}
	}
	return p, nil
}

// WithCommands returns the plan with each step's Command filled in by cmd
// (a runner's rendering of what it runs for the node).
func (p Plan) WithCommands(cmd func(NodeStep) string) Plan {
	out := p
	out.Steps = append([]NodeStep(nil), p.Steps...)
	for i := range out.Steps {
		out.Steps[i].Command = cmd(out.Steps[i])
	}
	return out
}

// Summary is the plan for people.
func (p Plan) Summary() string {
	var b strings.Builder
	servers := 0
	for _, s := range p.Steps {
		if s.Node.Role == RoleServer {
			servers++
		}
	}
	fmt.Fprintf(&b, "cluster rotation plan (%s, %d servers, %d agents", p.Program, servers, len(p.Steps)-servers)
	if p.Inventory != "" {
		fmt.Fprintf(&b, ", inventory %s", p.Inventory)
	}
	if p.AgentConcurrency > 1 {
		fmt.Fprintf(&b, "): servers one at a time, agents %d at a time; a node that fails rolls itself back and stops the run\n", p.AgentConcurrency)
	} else {
		b.WriteString("): one node at a time; a node that fails rolls itself back and stops the run\n")
	}
	for _, s := range p.Steps {
		what := "restart, fetch fresh certificates from a server, verify"
		switch s.Listener {
		case ListenerRenew:
			what = fmt.Sprintf("its leaves, and renews the shared %s secret once", k3s.ListenerSpec(p.Program).SecretName)
		case ListenerAdopt:
			what = "its leaves; adopts the already renewed secret into its dynamic-cert.json"
		}
		fmt.Fprintf(&b, "  %d. %-20s %-6s %s\n", s.Order, s.Node.Name, s.Node.Role, what)
		if s.Node.API != "" {
			fmt.Fprintf(&b, "       api     %s\n", s.Node.API)
		}
		if s.Command != "" {
			fmt.Fprintf(&b, "       runs    %s\n", s.Command)
		}
	}
	b.WriteString("afterwards: every server's API endpoint valid now (TLS dial with the cluster CA), kubectl through each server, every agent's kubelet certificates\n")
	return b.String()
}

// same reports whether two plans rotate the same nodes the same way (a
// resumed run must not continue a different plan).
func (p Plan) same(q Plan) bool {
	if p.Program != q.Program || len(p.Steps) != len(q.Steps) {
		return false
	}
	for i := range p.Steps {
		a, b := p.Steps[i], q.Steps[i]
		if a.Node.Name != b.Node.Name || a.Node.Role != b.Node.Role || a.Node.Host != b.Node.Host || a.Listener != b.Listener {
			return false
		}
	}
	return true
}
