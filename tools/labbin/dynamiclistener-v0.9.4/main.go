// Command dynamiclistener-v0.9.4 is the lab's :6443 supervisor for current
// K3s, built from rancher/dynamiclistener v0.9.4 (k3s 2a1e2e8 pins
// v0.9.1-0.20260710234258-e4a1908; the difference is NeedsUpdate becoming a
// method and a mutex, same semantics). Wired as K3s's pkg/cluster/https.go
// at 2a1e2e8: storage memory -> dynamic-cert.json -> secret
// kube-system/k3s-serving, CN/O k3s, factory.LoadCertsChain(server-ca),
// ExpirationDaysCheck = CertificateRenewDays, RegenerateCerts = the
// dynamic-cert-regenerate trigger, NextProtos h2 and http/1.1.
package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/k3scert/k3scert/tools/labbin/supervisorkit"
	"github.com/rancher/dynamiclistener"
	"github.com/rancher/dynamiclistener/factory"
	"github.com/rancher/dynamiclistener/storage/file"
	"github.com/rancher/dynamiclistener/storage/kubernetes"
	"github.com/rancher/dynamiclistener/storage/memory"
	"github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	supervisorkit.Main(supervisorkit.Features{ExpirationDaysCheck: true, RegenerateCerts: true, Chain: true, Wiring: "k3s 2a1e2e8 pkg/cluster/https.go"}, wire)
}

func wire(ctx context.Context, c supervisorkit.Config, tcp net.Listener) (net.Listener, http.Handler, error) {
	caCerts, caKey, err := factory.LoadCertsChain(c.CACert, c.CAKey)
	if err != nil {
		return nil, nil, err
	}
	var cf atomic.Pointer[core.Factory]
	go func() {
		var f *core.Factory
		ok := supervisorkit.WaitAPI(ctx, func() error {
			cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
			if err != nil {
				return err
			}
			cfg.Timeout = 5 * time.Second
			if f, err = core.NewFactoryFromConfig(cfg); err != nil {
				return err
			}
			_, err = f.Core().V1().Namespace().Get(c.Namespace, metav1.GetOptions{})
			return err
		})
		if ok {
			cf.Store(f)
		}
	}()
	storage := kubernetes.New(ctx, func() *core.Factory { return cf.Load() }, c.Namespace, c.Secret,
		memory.NewBacked(file.New(c.JSON)))
	cfg := dynamiclistener.Config{
		ExpirationDaysCheck: c.ExpirationDays,
		Organization:        c.Orgs,
		SANs:                c.SANs,
		CN:                  c.CN,
		TLSConfig: &tls.Config{
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
		},
	}
	if c.RegenerateTrigger != "" {
		cfg.RegenerateCerts = supervisorkit.RegenerateFunc(c.RegenerateTrigger)
	}
	return dynamiclistener.NewListenerWithChain(tcp, storage, caCerts, caKey, cfg)
}
