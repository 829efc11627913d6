package lab

import (
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/k3scert/k3scert/internal/k3s"
)

// The :6443 supervisor runs as its own process, one binary per listener era
// (era.go), built from that era's rancher/dynamiclistener release under
// tools/labbin. A lab restart is therefore a real process restart, as with
// K3s: nothing of dynamiclistener survives in memory, and what the next
// start serves comes only from dynamic-cert.json and the secret. The lab
// itself does not link dynamiclistener.

// supervisorArgs is the command line of the supervisor protocol
// (tools/labbin/supervisorkit): K3s's wiring in pkg/cluster/https.go with
// the node's files.
func (n *Node) supervisorArgs() []string {
	l := k3s.ListenerSpec(n.o.Program)
	kc := filepath.Join(n.dataDir, "server", "cred", "supervisor.kubeconfig")
	if _, err := os.Stat(kc); err != nil {
		kc = filepath.Join(n.dataDir, "server", "cred", "admin.kubeconfig")
	}
	args := []string{
		"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.SupervisorPort)),
		"--ca-cert", n.tls("server-ca.crt"), "--ca-key", n.tls("server-ca.key"),
		"--client-ca", n.tls("client-ca.crt"),
		"--proxy-cert", n.tls("client-auth-proxy.crt"), "--proxy-key", n.tls("client-auth-proxy.key"),
		"--apiserver", "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.APIServerPort)),
		"--kubeconfig", kc,
		"--json", filepath.Join(n.dataDir, filepath.FromSlash(l.JSONPath)),
		"--namespace", l.Namespace, "--secret", l.SecretName,
		"--cn", l.CN,
		// K3s passes config.CertificateRenewDays (v1.19.1+); a release
		// without the check ignores it.
		"--expiration-days", strconv.Itoa(n.o.Profile.RenewDays),
	}
	for _, o := range l.Orgs {
		args = append(args, "--org", o)
	}
	dns, _ := n.genOptions().ListenerSANs()
	for _, s := range append(dns, "127.0.0.1", k3s.ServiceIP) {
		args = append(args, "--san", s)
	}
	if n.o.Token != "" {
		args = append(args, "--client-ca-key", n.tls("client-ca.key"), "--token-file", filepath.Join(n.dataDir, "server", "token"),
			"--program", string(n.o.Program))
	}
	if n.o.Profile.RegenTrigger && n.listener.RegenerateCerts {
		args = append(args, "--regenerate-trigger", filepath.Join(n.dataDir, filepath.FromSlash(l.Trigger)))
	}
	return args
}
