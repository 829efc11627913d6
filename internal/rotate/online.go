package rotate

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/pki"
)

// StepListenerOnline renews the listener certificate through the API
// while K3s still runs, before the stop (Plan.Listener == ListenerOnline).
const StepListenerOnline = "listener-online"

// ListenerOnline renews the secret through the kube-apiserver while K3s
// runs: for nodes whose datastore stops with K3s on release lines without
// the regenerate trigger, where dynamiclistener (v0.2.x) lets the secret
// win over dynamic-cert.json at start. The running listener adopts the
// renewed secret through its watch (the secret wins there too), and the
// same certificate is written to dynamic-cert.json, so both copies agree.
const ListenerOnline = "online"

// listenerOnline: connect to the API with a temporary admin certificate
// (client-ca; internal/kube), renew the secret's own certificate, write it
// back (resource version guarded) and to dynamic-cert.json. The secret as
// it was is kept beside the backups (0600) for a manual restore: a
// rollback restores the files, not this secret, which stays valid (same
// CA, names and key).
func (e *Executor) listenerOnline(ctx context.Context) (string, error) {
	prog := k3s.Program(e.Plan.Node.Program)
	ports := k3s.DefaultPorts(prog)
	if e.Plan.Ports != nil {
		ports = *e.Plan.Ports
	}
	o, err := kube.NodeOptions(e.Plan.Node.DataDir, prog, ports, e.now(), 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("the listener is renewed through the API on this node: %w", err)
	}
	c, err := kube.Connect(ctx, o)
	if err != nil {
		return "", fmt.Errorf("the listener is renewed through the API while %s runs, and %w (start %s and run again)", prog, err, prog)
	}
	defer c.Close()
	l := k3s.ListenerSpec(prog)
	cur, err := c.GetServingSecret(ctx, l.Namespace, l.SecretName)
	if err != nil {
		return "", err
	}
	if cur == nil {
		return "no serving secret yet: the listener creates one", nil
	}
	if IsStaticListener(cur) {
		return "listener certificate is user-managed (listener.cattle.io/static): left unchanged", nil
	}
	out, renewed, days, err := e.renewListener(cur, "the secret "+l.Namespace+"/"+l.SecretName)
	if err != nil {
		return "", err
	}
	before, err := json.Marshal(cur)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(e.Plan.BackupDir, 0o700); err != nil {
		return "", err
	}
	keep := filepath.Join(e.Plan.BackupDir, fmt.Sprintf("listener-secret-%s.json", e.now().UTC().Format("20060102T150405Z")))
	if err := WriteAtomic(keep, before, 0o600); err != nil {
		return "", err
	}
	written, err := c.UpdateServingSecret(ctx, out)
	if err != nil {
		return "", err
	}
	jb, err := json.Marshal(written)
	if err != nil {
		return "", err
	}
	if err := WriteAtomic(e.Plan.ListenerJSON, append(jb, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("the secret was renewed through the API but %s could not be written: %w (the running listener writes it itself)", e.Plan.ListenerJSON, err)
	}
	return fmt.Sprintf("listener certificate renewed through the API until %s (%d days, %d names) in the secret and dynamic-cert.json; the secret as it was: %s",
		renewed.NotAfter.UTC().Format("2006-01-02 15:04 MST"), days, len(pki.SANs(renewed)), keep), nil
}
