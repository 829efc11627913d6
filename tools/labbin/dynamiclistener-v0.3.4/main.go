// Command dynamiclistener-v0.3.4 is the lab's :6443 supervisor for the K3s
// releases from mid-2022 (k3s PR #5896 "Bump dynamiclistener to fix issue
// with cert expiration", v1.24.3 / v1.23.9 / v1.22.12) until the Kubernetes
// 1.25+ lines moved on. Wired as K3s's pkg/cluster/https.go of that time:
// storage memory -> dynamic-cert.json -> secret kube-system/k3s-serving,
// CN/O k3s, factory.LoadCerts(server-ca), ExpirationDaysCheck =
// CertificateRenewDays, RegenerateCerts = the dynamic-cert-regenerate
// trigger. Its Merge no longer lets an expired secret replace a renewed
// local certificate (dynamiclistener fdf983a).
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
	"github.com/rancher/wrangler/pkg/generated/controllers/core"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	supervisorkit.Main(supervisorkit.Features{ExpirationDaysCheck: true, RegenerateCerts: true, Wiring: "k3s v1.24.3+/v1.23.9+/v1.22.12+ pkg/cluster/https.go"}, wire)
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
	cfg := dynamiclistener.Config{
		ExpirationDaysCheck: c.ExpirationDays,
		Organization:        c.Orgs,
		SANs:                c.SANs,
		CN:                  c.CN,
		TLSConfig: &tls.Config{
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
		},
	}
	if c.RegenerateTrigger != "" {
		cfg.RegenerateCerts = supervisorkit.RegenerateFunc(c.RegenerateTrigger)
	}
	return dynamiclistener.NewListener(tcp, storage, caCert, caKey, cfg)
}
