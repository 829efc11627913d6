// Package supervisorkit is the part of the lab's :6443 supervisor that does
// not depend on the dynamiclistener release: the command-line protocol that
// internal/lab speaks to every era's binary, the wait for the apiserver, the
// front-proxy to kube-apiserver and the /ping and /cacerts handlers. It uses
// the standard library only, so that each era's module keeps exactly the
// dependency set of its dynamiclistener release.
//
// Each tools/labbin/dynamiclistener-<version> module is a main package that
// calls Main with what its release offers and a function that wires that
// release the way the K3s line that shipped it did (pkg/cluster/https.go).
package supervisorkit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// Protocol is the version of the command-line protocol below. internal/lab
// refuses a binary that describes another one.
const Protocol = 1

// Config is the command line every era's binary accepts (protocol 1):
//
//	--listen ADDR               TCP address to listen on (loopback)
//	--ca-cert, --ca-key FILE    server-ca: signs the listener certificate
//	--client-ca FILE            client-ca: client certificates the proxy accepts
//	--proxy-cert, --proxy-key   client-auth-proxy: the proxy's identity to the apiserver
//	--apiserver URL             the kube-apiserver to proxy to
//	--kubeconfig FILE           credentials of the storage's Kubernetes client
//	--json FILE                 dynamic-cert.json (the file storage)
//	--namespace, --secret NAME  the serving secret (kube-system/k3s-serving)
//	--cn NAME, --org NAME       subject of the listener certificate
//	--san NAME                  a SAN (repeatable)
//	--expiration-days N         ExpirationDaysCheck (eras without it ignore it)
//	--regenerate-trigger FILE   the dynamic-cert-regenerate trigger (eras without it ignore it)
//	--client-ca-key FILE        client-ca's key: with --token-file, serve the agent endpoints (agent.go)
//	--token-file FILE           the cluster token agents authenticate with
//	--program NAME              k3s or rke2: the /v1-<program>/ prefix (default k3s)
//	--describe                  print the Description as JSON and exit
type Config struct {
	Listen            string
	CACert, CAKey     string
	ClientCA          string
	ProxyCert         string
	ProxyKey          string
	APIServer         string
	Kubeconfig        string
	JSON              string
	Namespace, Secret string
	CN                string
	Orgs              []string
	SANs              []string
	ExpirationDays    int
	RegenerateTrigger string
	// Agent endpoints (optional, added to protocol 1 without breaking it:
	// a supervisor started without them behaves as before).
	ClientCAKey string
	TokenFile   string
	Program     string
}

// Features are the options of the dynamiclistener release a binary is built
// from. A release without an option simply does not have the behaviour.
type Features struct {
	// ExpirationDaysCheck: dynamiclistener.Config.ExpirationDaysCheck and
	// the periodic renewal (WrapExpiration), v0.2.1+.
	ExpirationDaysCheck bool `json:"expirationDaysCheck"`
	// RegenerateCerts: dynamiclistener.Config.RegenerateCerts, the hook
	// K3s wires to the dynamic-cert-regenerate trigger, v0.3.1+.
	RegenerateCerts bool `json:"regenerateCerts"`
	// Chain: the CA is loaded as a chain (factory.LoadCertsChain), v0.4+.
	Chain bool `json:"chain"`
	// Wiring names the K3s code this binary copies.
	Wiring string `json:"wiring"`
}

// Description is what --describe prints.
type Description struct {
	Protocol int `json:"protocol"`
	// Module and Version are read from the binary's build information:
	// the dynamiclistener release really compiled in.
	Module   string   `json:"module"`
	Version  string   `json:"version"`
	Features Features `json:"features"`
	Go       string   `json:"go"`
	// AgentServer: the binary serves the /v1-<program>/ agent endpoints
	// when given --client-ca-key and --token-file.
	AgentServer bool `json:"agentServer"`
}

// Wire builds the era's listener on tcp: storage memory -> file ->
// Kubernetes secret, signed by the CA, as the K3s line did. The storage must
// get its Kubernetes client only once the apiserver answers (WaitAPI), as
// K3s's core getter does (a nil factory until the controllers start).
type Wire func(ctx context.Context, c Config, tcp net.Listener) (net.Listener, http.Handler, error)

type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// Parse reads the protocol's flags.
func Parse(args []string) (Config, bool, error) {
	var c Config
	var orgs, sans stringsFlag
	var describe bool
	fs := flag.NewFlagSet("supervisor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Listen, "listen", "", "")
	fs.StringVar(&c.CACert, "ca-cert", "", "")
	fs.StringVar(&c.CAKey, "ca-key", "", "")
	fs.StringVar(&c.ClientCA, "client-ca", "", "")
	fs.StringVar(&c.ProxyCert, "proxy-cert", "", "")
	fs.StringVar(&c.ProxyKey, "proxy-key", "", "")
	fs.StringVar(&c.APIServer, "apiserver", "", "")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "")
	fs.StringVar(&c.JSON, "json", "", "")
	fs.StringVar(&c.Namespace, "namespace", "kube-system", "")
	fs.StringVar(&c.Secret, "secret", "k3s-serving", "")
	fs.StringVar(&c.CN, "cn", "k3s", "")
	fs.Var(&orgs, "org", "")
	fs.Var(&sans, "san", "")
	fs.IntVar(&c.ExpirationDays, "expiration-days", 0, "")
	fs.StringVar(&c.RegenerateTrigger, "regenerate-trigger", "", "")
	fs.StringVar(&c.ClientCAKey, "client-ca-key", "", "")
	fs.StringVar(&c.TokenFile, "token-file", "", "")
	fs.StringVar(&c.Program, "program", "k3s", "")
	fs.BoolVar(&describe, "describe", false, "")
	if err := fs.Parse(args); err != nil {
		return c, false, err
	}
	if fs.NArg() > 0 {
		return c, false, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.Orgs, c.SANs = orgs, sans
	if len(c.Orgs) == 0 {
		c.Orgs = []string{c.CN}
	}
	if describe {
		return c, true, nil
	}
	var missing []string
	for name, v := range map[string]string{"listen": c.Listen, "ca-cert": c.CACert, "ca-key": c.CAKey, "client-ca": c.ClientCA,
		"proxy-cert": c.ProxyCert, "proxy-key": c.ProxyKey, "apiserver": c.APIServer, "kubeconfig": c.Kubeconfig, "json": c.JSON} {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return c, false, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return c, false, nil
}

// Describe reports the dynamiclistener module compiled into this binary.
func Describe(f Features) Description {
	d := Description{Protocol: Protocol, Module: "github.com/rancher/dynamiclistener", Version: "unknown", Features: f, Go: runtime.Version(), AgentServer: true}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == d.Module {
				d.Version = m.Version
				if m.Replace != nil {
					d.Version = m.Replace.Version
				}
			}
		}
	}
	return d
}

// Main runs the supervisor: parse, listen, wire, serve until SIGTERM.
func Main(f Features, wire Wire) {
	c, describe, err := Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: %v\n", err)
		os.Exit(2)
	}
	d := Describe(f)
	if describe {
		_ = json.NewEncoder(os.Stdout).Encode(d)
		return
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := run(ctx, c, d, wire); err != nil {
		fmt.Fprintf(os.Stderr, "supervisor: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c Config, d Description, wire Wire) error {
	tcp, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	ln, cacheHandler, err := wire(ctx, c, tcp)
	if err != nil {
		tcp.Close()
		return err
	}
	proxy, err := NewAPIProxy(c)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(c.CACert)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "pong") })
	mux.HandleFunc("/cacerts", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(caPEM) })
	if err := agentRoutes(mux, c); err != nil {
		return err
	}
	mux.Handle("/", proxy)
	srv := &http.Server{Handler: chain(cacheHandler, mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	exp, regen := "unsupported by this release", "unsupported by this release"
	if d.Features.ExpirationDaysCheck {
		exp = fmt.Sprint(c.ExpirationDays)
	}
	if d.Features.RegenerateCerts {
		regen = c.RegenerateTrigger
		if regen == "" {
			regen = "not wired (this K3s line has no trigger)"
		}
	}
	fmt.Fprintf(os.Stderr, "supervisor: %s %s listening on %s (ExpirationDaysCheck %s, RegenerateCerts %s)\n",
		d.Module, d.Version, tcp.Addr(), exp, regen)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// chain runs dynamiclistener's handler (which learns IP Host headers)
// before the mux, as K3s chains it.
func chain(cache http.Handler, next http.Handler) http.Handler {
	if cache == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cache.ServeHTTP(w, r)
		next.ServeHTTP(w, r)
	})
}

// WaitAPI calls probe every 500 ms until it succeeds or ctx ends; it
// returns whether the apiserver answered.
func WaitAPI(ctx context.Context, probe func() error) bool {
	for {
		if err := probe(); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// RegenerateFunc is K3s's RegenerateCerts hook (pkg/cluster/https.go): the
// trigger file's presence asks for a new certificate; it is removed.
func RegenerateFunc(trigger string) func() bool {
	return func() bool {
		if _, err := os.Stat(trigger); err == nil {
			_ = os.Remove(trigger)
			return true
		}
		return false
	}
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return out, nil
}

// NewAPIProxy forwards to the apiserver, authenticating the client's
// certificate against client-ca itself and passing the identity in request
// headers signed by the client-auth-proxy certificate (the apiserver's
// --requestheader-* flags), the standard front-proxy mechanism. K3s runs
// the apiserver in-process; the lab's is a separate process.
func NewAPIProxy(c Config) (http.Handler, error) {
	serverCA, err := readCerts(c.CACert)
	if err != nil {
		return nil, err
	}
	clientCA, err := readCerts(c.ClientCA)
	if err != nil {
		return nil, err
	}
	proxyCert, err := tls.LoadX509KeyPair(c.ProxyCert, c.ProxyKey)
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
	target, err := url.Parse(c.APIServer)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{proxyCert}, ServerName: target.Hostname(), MinVersion: tls.VersionTLS12},
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
