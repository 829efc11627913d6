package lab

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// A lab agent is a stand-in for `k3s agent`: the kubelet, kube-proxy and
// containerd cannot run here (no root, no container runtime, no network
// namespaces), so the agent does what a K3s agent's start does for its
// certificates — and only that — with K3s's requests
// (pkg/agent/config/config.go get(), facts §1.3/§6.2, audit §4):
//
//  1. trust: GET <server>/cacerts verified with the cluster CA
//     (clientaccess.getCACerts: the served listener certificate must verify
//     against the CA bundle); a server whose listener certificate has
//     expired fails here, as in the reference log: "server
//     https://127.0.0.1:6443/cacerts is not trusted: ... x509: certificate
//     has expired or is not yet valid". K3s downloads the bundle first
//     without verification and checks it against the token's CA hash; the
//     lab never switches verification off, so the agent reads the bundle the
//     supervisor serves at /cacerts (the server's server-ca.crt) from disk;
//  2. GET /v1-k3s/client-ca.crt and server-ca.crt with the token's basic
//     auth (user node), written to agent/ with mode 0600;
//  3. POST a CSR (DER, empty subject) for serving-kubelet, client-kubelet,
//     client-kube-proxy and client-k3s-controller, the key created once and
//     kept across restarts (getCSRBytes → LoadOrGenerateKeyFile(keyFile,
//     false)), the node name, password and IP in the k3s-Node-* headers;
//     the answer (leaf + CA bundle) is written 0600, a key in the answer
//     (old servers) replaces the agent's;
//  4. the three kubeconfigs referencing those files; their server is the
//     agent's server URL (K3s points them at the agent's local load
//     balancer 127.0.0.1:6444, which the lab does not run);
//  5. the "kubelet": a loopback TLS listener serving serving-kubelet
//     (:10250 on a real node), and one API call through the server with the
//     client-kubelet certificate to prove it is accepted.
//
// Older release lines' agents did not send a CSR: they GET each certificate
// and the server returns its shared key with it (agentSendsCSR).

// AgentOptions describe a lab agent.
type AgentOptions struct {
	Root    string // the agent's file system root (var/lib/rancher/k3s under it)
	Name    string
	Program k3s.Program
	Profile k3s.Profile
	// Server is the server the agent's `server:` URL points at.
	Server *Node
	// CAFrom stands for the /cacerts download (see above); default Server.
	CAFrom      *Node
	Token       string
	KubeletPort int // 0: a free loopback port
	Log         func(format string, args ...any)
}

// Agent is a lab agent. It is not safe for concurrent use.
type Agent struct {
	o       AgentOptions
	dataDir string
	offset  time.Duration
	srv     *http.Server
	ln      net.Listener
	// LastError is the error of the last start (the fetch), "" when it
	// worked.
	LastError string
}

// NewAgent prepares an agent; nothing runs until Start.
func NewAgent(o AgentOptions) (*Agent, error) {
	if o.Root == "" || o.Name == "" || o.Server == nil || o.Token == "" {
		return nil, errors.New("lab: AgentOptions.Root, Name, Server and Token are required")
	}
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.CAFrom == nil {
		o.CAFrom = o.Server
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.KubeletPort == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.KubeletPort = p
	}
	abs, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	o.Root = abs
	return &Agent{o: o, dataDir: filepath.Join(abs, "var", "lib", "rancher", string(o.Program))}, nil
}

// Name is the agent's node name.
func (a *Agent) Name() string { return a.o.Name }

// DataDir is the agent's data dir.
func (a *Agent) DataDir() string { return a.dataDir }

// Running reports whether the agent's kubelet stand-in serves.
func (a *Agent) Running() bool { return a.srv != nil }

// ServerURL is the agent's `server:`.
func (a *Agent) ServerURL() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(a.o.Server.Ports().Supervisor))
}

// KubeletAddr is where the kubelet stand-in serves serving-kubelet.
func (a *Agent) KubeletAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.o.KubeletPort))
}

// Virtual converts a real certificate time into the agent's virtual frame.
func (a *Agent) Virtual(t time.Time) time.Time { return t.Add(a.offset).UTC() }

func (a *Agent) path(name string) string {
	return filepath.Join(a.dataDir, "agent", strings.ReplaceAll(name, "{p}", string(a.o.Program)))
}

// Start is `systemctl start k3s-agent` as far as certificates go: fetch
// everything from the server, then serve the kubelet certificate.
func (a *Agent) Start(ctx context.Context) error {
	if a.srv != nil {
		return errors.New("lab: agent already running")
	}
	if err := a.fetch(ctx); err != nil {
		a.LastError = err.Error()
		a.o.Log("%s: start failed: %v", a.o.Name, err)
		return err
	}
	a.LastError = ""
	a.o.Log("%s: fetched its certificates from %s", a.o.Name, a.ServerURL())
	return a.serve()
}

// Stop stops the kubelet stand-in.
func (a *Agent) Stop() {
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.srv.Shutdown(ctx)
		cancel()
		_ = a.srv.Close()
		a.srv, a.ln = nil, nil
	}
}

// Restart is `systemctl restart k3s-agent`.
func (a *Agent) Restart(ctx context.Context) error {
	a.Stop()
	return a.Start(ctx)
}

// resume serves the kubelet certificate again without fetching: what a
// running agent keeps doing when the clock moves.
func (a *Agent) resume() error { return a.serve() }

func (a *Agent) serve() error {
	cert, err := tls.LoadX509KeyPair(a.path("serving-kubelet.crt"), a.path("serving-kubelet.key"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.KubeletAddr())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(a.o.Root, "log"), 0o700); err != nil {
		ln.Close()
		return err
	}
	lf, err := os.OpenFile(filepath.Join(a.o.Root, "log", "kubelet.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(lf, "kubelet stand-in: ", log.LstdFlags)}
	srv.RegisterOnShutdown(func() { lf.Close() })
	tl := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	go func() { _ = srv.Serve(tl) }()
	a.srv, a.ln = srv, ln
	return nil
}

func (a *Agent) nodePassword() (string, error) {
	p := filepath.Join(a.o.Root, "etc", "rancher", "node", "password")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(buf)
	return pw, writeAtomic(p, []byte(pw+"\n"), 0o600)
}

func (a *Agent) fetch(ctx context.Context) error {
	server := a.ServerURL()
	// /cacerts: the bundle the server serves there (its server-ca.crt).
	caPEM, err := os.ReadFile(a.o.CAFrom.tls("server-ca.crt"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no CA certificate in the server's bundle")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	if _, err := a.do(ctx, client, http.MethodGet, server+"/cacerts", nil, nil); err != nil {
		return fmt.Errorf("server %s/cacerts is not trusted: %w", server, err)
	}
	pw, err := a.nodePassword()
	if err != nil {
		return err
	}
	p := string(a.o.Program)
	hdr := http.Header{}
	hdr.Set(p+"-Node-Name", a.o.Name)
	hdr.Set(p+"-Node-Password", pw)
	hdr.Set(p+"-Node-IP", "127.0.0.1")
	prefix := server + "/v1-" + p + "/"
	for _, f := range []string{"client-ca.crt", "server-ca.crt"} {
		b, err := a.do(ctx, client, http.MethodGet, prefix+f, nil, hdr)
		if err != nil {
			return err
		}
		if err := writeAtomic(a.path(f), b, 0o600); err != nil {
			return err
		}
	}
	csr := agentSendsCSR(a.o.Profile)
	for _, name := range []string{"serving-kubelet", "client-kubelet", "client-kube-proxy", "client-{p}-controller"} {
		keyFile := a.path(name + ".key")
		method, body := http.MethodGet, []byte(nil)
		if csr {
			key, err := loadOrCreateKey(keyFile)
			if err != nil {
				return err
			}
			if body, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key); err != nil {
				return err
			}
			method = http.MethodPost
		}
		b, err := a.do(ctx, client, method, prefix+strings.ReplaceAll(name, "{p}", p)+".crt", body, hdr)
		if err != nil {
			return fmt.Errorf("%s: %w", a.path(name+".crt"), err)
		}
		certPEM, keyPEM := splitCertKeyPEM(b)
		if err := writeAtomic(a.path(name+".crt"), certPEM, 0o600); err != nil {
			return err
		}
		if len(keyPEM) > 0 {
			if err := writeAtomic(keyFile, keyPEM, 0o600); err != nil {
				return err
			}
		}
	}
	for name, kc := range map[string]string{"client-kubelet": "kubelet.kubeconfig", "client-kube-proxy": "kubeproxy.kubeconfig",
		"client-{p}-controller": "{p}controller.kubeconfig"} {
		body := fmt.Sprintf("apiVersion: v1\nclusters:\n- cluster:\n    server: %s\n    certificate-authority: %s\n  name: local\ncontexts:\n- context:\n    cluster: local\n    namespace: default\n    user: user\n  name: Default\ncurrent-context: Default\nkind: Config\npreferences: {}\nusers:\n- name: user\n  user:\n    client-certificate: %s\n    client-key: %s\n",
			server, a.path("server-ca.crt"), a.path(name+".crt"), a.path(name+".key"))
		if err := writeAtomic(a.path(kc), []byte(body), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) do(ctx context.Context, c *http.Client, method, url string, body []byte, hdr http.Header) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if hdr != nil {
		req.SetBasicAuth("node", a.o.Token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

func loadOrCreateKey(path string) (crypto.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		if k, _, err := pki.ParseKey(b); err == nil {
			return k, nil
		}
	}
	k, err := pki.NewECKey()
	if err != nil {
		return nil, err
	}
	b, err := pki.EncodeKey(k)
	if err != nil {
		return nil, err
	}
	return k, writeAtomic(path, b, 0o600)
}

// splitCertKeyPEM is the agent's splitCertKeyPEM: certificates and a
// private key in one answer.
func splitCertKeyPEM(b []byte) (certs, key []byte) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return certs, key
		}
		if strings.Contains(blk.Type, "PRIVATE KEY") {
			key = append(key, pem.EncodeToMemory(blk)...)
		} else {
			certs = append(certs, pem.EncodeToMemory(blk)...)
		}
	}
}

// agentSendsCSR: the release line's agents POST a CSR and keep their keys
// (k3s caeebc52b, first released in v1.31.5 and v1.32.x, audit §4). The
// matrix rows whose whole span is later are the 2025 lines (dynamiclistener
// "current": v1.31.9+, v1.32.5+, v1.33.1+); older rows — including v1.24.3,
// whose span v1.24.3 – v1.31.8 straddles v1.31.5 — GET the certificate and
// receive the server's shared key with it.
func agentSendsCSR(p k3s.Profile) bool { return p.DynamicListener == "current" }

// ServedKubelet returns the certificate the kubelet stand-in serves, nil
// when nothing serves. Verification against the agent's server CA is done
// at a time inside the certificate's validity, so an expired one is still
// read (and reported by its NotAfter).
func (a *Agent) ServedKubelet() *x509.Certificate {
	if a.srv == nil {
		return nil
	}
	ca := readFirstCert(a.path("server-ca.crt"))
	var roots []*x509.Certificate
	if ca != nil {
		roots = append(roots, ca)
	}
	inv := &source.Inventory{}
	source.Endpoints{Targets: []source.EndpointTarget{{Address: a.KubeletAddr(), Role: "kubelet"}},
		Roots: roots, At: time.Now(), Timeout: 3 * time.Second}.Read(context.Background(), inv)
	for _, c := range inv.Certs {
		if c.Index == 0 {
			return c.Cert
		}
	}
	return nil
}

// APICall calls the API through the agent's server with the
// client-kubelet certificate (GET /version: readable by every
// authenticated user through system:public-info-viewer; a rejected
// certificate is a 401).
func (a *Agent) APICall(ctx context.Context) error {
	cert, err := tls.LoadX509KeyPair(a.path("client-kubelet.crt"), a.path("client-kubelet.key"))
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(a.path("server-ca.crt"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}}
	_, err = a.do(ctx, c, http.MethodGet, a.ServerURL()+"/version", nil, nil)
	return err
}
