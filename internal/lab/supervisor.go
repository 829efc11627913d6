package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/rancher/dynamiclistener"
	"github.com/rancher/dynamiclistener/factory"
	"github.com/rancher/dynamiclistener/storage/file"
	"github.com/rancher/dynamiclistener/storage/kubernetes"
	"github.com/rancher/dynamiclistener/storage/memory"
	"github.com/rancher/wrangler/v3/pkg/generated/controllers/core"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// supervisorEnv carries the supervisor's configuration to the re-executed
// process. The supervisor runs in its own process so that a lab restart is
// a real process restart, as with K3s: nothing of dynamiclistener survives
// in memory.
const supervisorEnv = "K3SCERT_LAB_SUPERVISOR"

// SupervisorConfig is what the :6443 supervisor process needs.
type SupervisorConfig struct {
	DataDir        string
	Program        k3s.Program
	Profile        string
	Port           int
	APIServerPort  int
	SANs           []string
	ClusterDomain  string
	RegenerateFile bool // honour dynamic-cert-regenerate (profiles with `k3s certificate rotate`)
}

// MaybeRunSupervisor runs the supervisor and exits when this process was
// started as one. Call it first in main() and in TestMain of packages that
// start lab nodes.
func MaybeRunSupervisor() {
	v := os.Getenv(supervisorEnv)
	if v == "" {
		return
	}
	var c SupervisorConfig
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: bad config: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := runSupervisor(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runSupervisor wires rancher/dynamiclistener the way K3s does in
// pkg/cluster/https.go (facts §3.1): storage memory -> dynamic-cert.json ->
// secret kube-system/<program>-serving, CN/O <program>, the configured SANs,
// ExpirationDaysCheck from the profile, signed by server-ca. Requests are
// proxied to the apiserver with front-proxy (request header) authentication,
// because here the apiserver is a separate process rather than in-process.
func runSupervisor(ctx context.Context, c SupervisorConfig) error {
	prof, err := k3s.ProfileByName(c.Profile)
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(c.DataDir, "server", "tls")
	l := k3s.ListenerSpec(c.Program)
	caCerts, caKey, err := factory.LoadCertsChain(filepath.Join(tlsDir, "server-ca.crt"), filepath.Join(tlsDir, "server-ca.key"))
	if err != nil {
		return fmt.Errorf("load server CA: %w", err)
	}
	// The secret storage gets a client only once the apiserver answers, as
	// K3s's coreGetter does; until then writes go to memory and the file.
	var coreFactory *core.Factory
	go func() {
		kc := filepath.Join(c.DataDir, "server", "cred", "supervisor.kubeconfig")
		if _, err := os.Stat(kc); err != nil {
			kc = filepath.Join(c.DataDir, "server", "cred", "admin.kubeconfig")
		}
		for ctx.Err() == nil {
			cfg, err := clientcmd.BuildConfigFromFlags("", kc)
			if err == nil {
				cfg.Timeout = 5 * time.Second
				if f, err := core.NewFactoryFromConfig(cfg); err == nil {
					if _, err := f.Core().V1().Namespace().Get("kube-system", metav1Get); err == nil {
						coreFactory = f
						return
					}
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	getter := func() *core.Factory { return coreFactory }
	jsonPath := filepath.Join(c.DataDir, filepath.FromSlash(l.JSONPath))
	storage := kubernetes.New(ctx, getter, l.Namespace, l.SecretName, memory.NewBacked(file.New(jsonPath)))

	tcp, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)))
	if err != nil {
		return err
	}
	cfg := dynamiclistener.Config{
		CN:                  l.CN,
		Organization:        l.Orgs,
		SANs:                c.SANs,
		ExpirationDaysCheck: prof.ListenerExpirationDays(),
		TLSConfig: &tls.Config{
			ClientAuth: tls.RequestClientCert,
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
		},
	}
	if c.RegenerateFile {
		trigger := filepath.Join(c.DataDir, filepath.FromSlash(l.Trigger))
		cfg.RegenerateCerts = func() bool {
			if _, err := os.Stat(trigger); err == nil {
				_ = os.Remove(trigger)
				return true
			}
			return false
		}
	}
	ln, cacheHandler, err := dynamiclistener.NewListenerWithChain(tcp, storage, caCerts, caKey, cfg)
	if err != nil {
		return err
	}
	proxy, err := newAPIProxy(c)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "pong") })
	mux.HandleFunc("/cacerts", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(pki.EncodeCerts(caCerts...)) })
	mux.Handle("/", proxy)
	srv := &http.Server{Handler: cacheHandlerWrap(cacheHandler, mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "supervisor: listening on %s (profile %s, ExpirationDaysCheck %d)\n", tcp.Addr(), prof.Name, cfg.ExpirationDaysCheck)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// cacheHandlerWrap runs dynamiclistener's handler (which learns IP Host
// headers) before the mux, as K3s chains it.
func cacheHandlerWrap(cache http.Handler, next http.Handler) http.Handler {
	if cache == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cache.ServeHTTP(w, r)
		next.ServeHTTP(w, r)
	})
}

// newAPIProxy forwards to the apiserver, authenticating the client's
// certificate against client-ca itself and passing the identity in request
// headers signed by the client-auth-proxy certificate (the apiserver's
// --requestheader-* flags), the standard front-proxy mechanism.
func newAPIProxy(c SupervisorConfig) (http.Handler, error) {
	tlsDir := filepath.Join(c.DataDir, "server", "tls")
	read := func(name string) ([]*x509.Certificate, error) {
		b, err := os.ReadFile(filepath.Join(tlsDir, name))
		if err != nil {
			return nil, err
		}
		return pki.ParseCerts(b)
	}
	serverCA, err := read("server-ca.crt")
	if err != nil {
		return nil, err
	}
	clientCA, err := read("client-ca.crt")
	if err != nil {
		return nil, err
	}
	proxyCert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "client-auth-proxy.crt"), filepath.Join(tlsDir, "client-auth-proxy.key"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	for _, c := range serverCA {
		roots.AddCert(c)
	}
	clientPool := x509.NewCertPool()
	for _, c := range clientCA {
		clientPool.AddCert(c)
	}
	target := &url.URL{Scheme: "https", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.APIServerPort))}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{proxyCert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-remote-") {
				r.Header.Del(k)
			}
		}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			leaf := r.TLS.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range r.TLS.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: clientPool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`, http.StatusUnauthorized)
				return
			}
			r.Header.Set("X-Remote-User", leaf.Subject.CommonName)
			for _, g := range leaf.Subject.Organization {
				r.Header.Add("X-Remote-Group", g)
			}
		}
		rp.ServeHTTP(w, r)
	}), nil
}

var metav1Get = metav1.GetOptions{}
