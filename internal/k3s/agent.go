package k3s

import (
	"encoding/json"
	"net"
	"net/url"
)

// Agent facts: where an agent remembers the servers it talks to.
//
// The agent's client load balancers (one for the supervisor, one for the
// apiserver where the two ports differ, as on RKE2) keep their server list
// in <data-dir>/agent/etc/<service>.json, with <service>
// "<program>-agent-load-balancer" and "<program>-api-server-agent-load-balancer"
// (k3s-io/k3s pkg/agent/loadbalancer/loadbalancer.go@a4c992ce: configFile =
// filepath.Join(dataDir, "etc", serviceName+".json"), SupervisorServiceName
// and APIServerServiceName; dataDir is <data-dir>/agent, as
// ResetLoadBalancer(filepath.Join(dataDir, "agent"), …) in
// pkg/cli/server/server.go shows). The file is json.MarshalIndent of the
// load balancer (config.go@a17e3369 writeConfig): its exported fields
// ServerURL (the --server URL it was started with) and ServerAddresses
// (host:port of every server the supervisor announced). The index holds
// no copy of these files at 2a1e2e8cf41b; the names and the two fields
// have been stable across the stored versions.

// AgentLoadBalancerFiles are the load balancer state files of an agent,
// relative to the data dir: the supervisor's, then the apiserver's.
func AgentLoadBalancerFiles(p Program) []string {
	return []string{
		"agent/etc/" + string(p) + "-agent-load-balancer.json",
		"agent/etc/" + string(p) + "-api-server-agent-load-balancer.json",
	}
}

// LoadBalancerState is what an agent's load balancer file holds.
type LoadBalancerState struct {
	ServerURL       string   `json:"ServerURL"`
	ServerAddresses []string `json:"ServerAddresses"`
}

// ParseLoadBalancerState reads a load balancer file's content.
func ParseLoadBalancerState(b []byte) (LoadBalancerState, error) {
	var s LoadBalancerState
	err := json.Unmarshal(b, &s)
	return s, err
}

// ServerAddress turns a --server URL ("https://10.0.0.1:6443",
// "https://k3s.example.com") into host:port; a URL without a port means
// 443, as for any https client (the agent dials it with net/http). ok is
// false for a value that is not an https URL with a host.
func ServerAddress(serverURL string) (string, bool) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return "", false
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), true
}
