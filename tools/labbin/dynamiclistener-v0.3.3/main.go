// Command dynamiclistener-v0.3.3 is the lab's :6443 supervisor for the K3s
// releases from the end of 2021 to mid-2022 (v1.21.8 / v1.22.5 brought
// dynamiclistener v0.3.1 and `k3s certificate rotate`; v0.3.3, tagged
// 2022-05-20, is the last release before k3s PR #5896 moved to v0.3.4).
// Wired as K3s's pkg/cluster/https.go of that time: storage memory ->
// dynamic-cert.json -> secret kube-system/k3s-serving, CN/O k3s,
// factory.LoadCerts(server-ca), ExpirationDaysCheck = CertificateRenewDays,
// RegenerateCerts = the dynamic-cert-regenerate trigger. Its Merge keeps the
// Kubernetes secret over a renewed local certificate when the CNs are the
// same (no expiry test, factory/gen.go@v0.3.3), the k3s #5163 regression.
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
	supervisorkit.Main(supervisorkit.Features{ExpirationDaysCheck: true, RegenerateCerts: true, Wiring: "k3s v1.21.8–v1.24.2 pkg/cluster/https.go"}, wire)
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
