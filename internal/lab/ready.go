package lab

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/k3scert/k3scert/internal/kube"
)

// waitReady polls the apiserver's /readyz until it answers "ok". It must
// work in every state a lab node can be in, including served and client
// certificates that have expired (after Advance), so it uses what k3scert
// uses on real nodes: internal/kube mints a short-lived admin certificate
// from client-ca and, when the served certificate has expired, verifies
// the chain at a time inside its validity. TLS verification is never
// switched off.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.APIServerPort))
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if ok, _ := n.apiserver.exited(); ok {
			return fmt.Errorf("kube-apiserver exited; log %s:\n%s", n.apiserver.log, n.apiserver.tail(2000))
		}
		// A new client each time: the served certificate (and so the
		// verification time) is learned per attempt.
		ok, msg := n.readyOnce(ctx, addr)
		if ok {
			return nil
		}
		last = msg
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("apiserver not ready within %s: %s", timeout, last)
}

func (n *Node) readyOnce(ctx context.Context, addr string) (bool, string) {
	o, err := kube.NodeOptions(n.dataDir, n.o.Program, n.Ports(), time.Now(), 5*time.Second)
	if err != nil {
		return false, err.Error()
	}
	o.Addresses = []string{addr}
	c, err := kube.Connect(ctx, o)
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	if err := c.Readyz(ctx); err != nil {
		return false, err.Error()
	}
	return true, ""
}
