package k3s

import "testing"

func TestAgentLoadBalancerFacts(t *testing.T) {
	if f := AgentLoadBalancerFiles(RKE2); f[0] != "agent/etc/rke2-agent-load-balancer.json" || f[1] != "agent/etc/rke2-api-server-agent-load-balancer.json" {
		t.Errorf("rke2 files %v", f)
	}
	// as json.MarshalIndent of k3s's LoadBalancer writes it (exported fields)
	st, err := ParseLoadBalancerState([]byte(`{
  "ServerURL": "https://10.0.0.1:6443",
  "ServerAddresses": [
    "10.0.0.1:6443",
    "10.0.0.2:6443"
  ],
  "Listener": null
}`))
	if err != nil || st.ServerURL != "https://10.0.0.1:6443" || len(st.ServerAddresses) != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	for in, want := range map[string]string{"https://10.0.0.1:6443": "10.0.0.1:6443", "https://k3s.example.com": "k3s.example.com:443",
		"https://[fd00::1]:9345": "[fd00::1]:9345", "http://x:1": "", "10.0.0.1:6443": "", "": ""} {
		got, ok := ServerAddress(in)
		if got != want || ok != (want != "") {
			t.Errorf("ServerAddress(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}
