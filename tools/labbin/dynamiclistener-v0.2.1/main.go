// Command dynamiclistener-v0.2.1 is the lab's :6443 supervisor for K3s
// v1.19.1 to the early 2021 releases, built from rancher/dynamiclistener
// v0.2.1 (k3s go.mod of the v1.19.0-k3s1 Kubernetes bump: dynamiclistener
// v0.2.1, wrangler v0.6.1, wrangler-api v0.6.0; v0.2.2/v0.2.3, tagged
// 2021-03, only changed the empty-ResourceVersion case of etcd-only nodes).
// Wired as K3s's pkg/cluster/https.go of that time: storage memory ->
// dynamic-cert.json -> secret kube-system/k3s-serving, CN/O k3s,
// factory.LoadCerts(server-ca), ExpirationDaysCheck = CertificateRenewDays.
// This release renews the certificate near expiry (WrapExpiration) but has
// no RegenerateCerts hook.
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
	"github.com/rancher/wrangler-api/pkg/generated/controllers/core"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	supervisorkit.Main(supervisorkit.Features{ExpirationDaysCheck: true, Wiring: "k3s v1.19/v1.20 pkg/cluster/https.go"}, wire)
}

func wire(ctx context.Context, c supervisorkit.Config, tcp net.Listener) (net.Listener, http.Handler, error) {
	caCert, caKey, err := factory.LoadCerts(c.CACert, c.CAKey)
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
	return dynamiclistener.NewListener(tcp, storage, caCert, caKey, dynamiclistener.Config{
		ExpirationDaysCheck: c.ExpirationDays,
		Organization:        c.Orgs,
		SANs:                c.SANs,
		CN:                  c.CN,
		TLSConfig: &tls.Config{
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
		},
	})
}
