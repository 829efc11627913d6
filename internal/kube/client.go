package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// Options say how to reach the API.
type Options struct {
	ServerCAs   []*x509.Certificate // roots for the served chain (server/tls/server-ca.crt)
	ClientCA    *x509.Certificate   // signs the ephemeral admin certificate
	ClientCAKey any                 // its key (crypto.Signer)
	Addresses   []string            // host:port, in order of preference
	Now         time.Time           // the real current time
	Timeout     time.Duration       // per dial and per request; default 5s
}

// NodeOptions loads a server node's CAs and lists its apiserver then
// supervisor port on 127.0.0.1.
func NodeOptions(dataDir string, p k3s.Program, ports k3s.Ports, now time.Time, timeout time.Duration) (Options, error) {
	o := Options{Now: now, Timeout: timeout}
	load := func(id string) (k3s.Spec, []*x509.Certificate, error) {
		s, ok := k3s.ByID(p, k3s.ProfileCurrent, id)
		if !ok {
			return s, nil, fmt.Errorf("k3s table has no %s", id)
		}
		b, err := source.ReadFile(filepath.Join(dataDir, filepath.FromSlash(s.Cert)))
		if err != nil {
			return s, nil, err
		}
		certs, err := pki.ParseCerts(b)
		if err != nil {
			return s, nil, fmt.Errorf("%s: %w", s.Cert, err)
		}
		if len(certs) == 0 {
			return s, nil, fmt.Errorf("%s: no certificate", s.Cert)
		}
		return s, certs, nil
	}
	_, sca, err := load("server-ca")
	if err != nil {
		return o, err
	}
	o.ServerCAs = sca
	cs, cca, err := load("client-ca")
	if err != nil {
		return o, err
	}
	o.ClientCA = cca[0]
	kb, err := source.ReadFile(filepath.Join(dataDir, filepath.FromSlash(cs.Key)))
	if err != nil {
		return o, fmt.Errorf("client CA key (needed to mint a temporary admin certificate): %w", err)
	}
	key, _, err := pki.ParseKey(kb)
	if err != nil {
		return o, fmt.Errorf("%s: %w", cs.Key, err)
	}
	o.ClientCAKey = key
	for _, port := range []int{ports.APIServer, ports.Supervisor} {
		if port > 0 {
			o.Addresses = append(o.Addresses, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		}
	}
	return o, nil
}

// Client is a verified connection to the API of one address.
type Client struct {
	// REST speaks core/v1 (APIPath /api): Secrets, and raw paths such as
	// /readyz through AbsPath. It replaces client-go's typed clientset,
	// which registers every API group at start-up to read one Secret.
	REST    rest.Interface
	Address string
	// VerifiedAt is the time the served chain was verified at: Now, or a
	// time inside the served certificate's validity when it had expired
	// (or was not yet valid).
	VerifiedAt time.Time
	// Shifted is true when VerifiedAt is not Now; Reason says why
	// ("served certificate expired", "served certificate not yet valid").
	Shifted bool
	Reason  string
	// Served is the leaf the server presented.
	Served *x509.Certificate

	tr *http.Transport
}

// Close drops the client's idle connections.
func (c *Client) Close() {
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
}

// Via describes how the API was reached, for reports: "api", or
// "api (verified at <time>: served certificate expired)".
func (c *Client) Via() string {
	if !c.Shifted {
		return "api"
	}
	return fmt.Sprintf("api (verified at %s: %s)", c.VerifiedAt.UTC().Format(time.RFC3339), c.Reason)
}

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 5 * time.Second
	}
	return o.Timeout
}

// Connect mints the admin certificate and finds the first address that
// serves a chain verifiable against the server CA. The TLS verification is
// the standard one; only its time moves, and only into the served
// certificate's own validity, and only when the chain is otherwise intact.
func Connect(ctx context.Context, o Options) (*Client, error) {
	if len(o.ServerCAs) == 0 {
		return nil, errors.New("no server CA to verify the API server with")
	}
	if len(o.Addresses) == 0 {
		return nil, errors.New("no API address")
	}
	admin, err := MintAdmin(o.ClientCA, o.ClientCAKey, o.Now, 0)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range o.ServerCAs {
		pool.AddCert(c)
	}
	var errs []string
	for _, addr := range o.Addresses {
		c, err := connect(ctx, o, addr, pool, admin)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("API not reachable: %s", strings.Join(errs, "; "))
}

func connect(ctx context.Context, o Options, addr string, pool *x509.CertPool, admin tls.Certificate) (*Client, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := func(at time.Time) *tls.Config {
		return &tls.Config{
			RootCAs:      pool,
			ServerName:   host, // an IP: no SNI is sent, so dynamiclistener learns no new name
			Certificates: []tls.Certificate{admin},
			Time:         func() time.Time { return at },
			MinVersion:   tls.VersionTLS12,
		}
	}
	c := &Client{Address: addr, VerifiedAt: o.Now}
	leaf, err := probe(ctx, addr, cfg(o.Now), o.timeout())
	if err != nil {
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		at, reason, verr := timeInside(cve, pool, host)
		if verr != nil {
			return nil, fmt.Errorf("%s: %w", addr, verr)
		}
		c.VerifiedAt, c.Shifted, c.Reason = at, true, reason
		// The honest second look: a standard handshake, verified at a time
		// inside the served certificate's validity.
		if leaf, err = probe(ctx, addr, cfg(at), o.timeout()); err != nil {
			return nil, fmt.Errorf("%s (verifying at %s): %w", addr, at.Format(time.RFC3339), err)
		}
	}
	c.Served = leaf
	tr := &http.Transport{
		TLSClientConfig:     cfg(c.VerifiedAt),
		TLSHandshakeTimeout: o.timeout(),
		DialContext:         (&net.Dialer{Timeout: o.timeout()}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2,
	}
	rc, err := coreREST(&rest.Config{Host: "https://" + addr, Transport: tr, Timeout: o.timeout(), UserAgent: "k3scert"})
	if err != nil {
		return nil, err
	}
	c.REST, c.tr = rc, tr
	return c, nil
}

// coreCodecs knows core/v1 and meta/v1 only (Secret, Status, options), built
// on first use: nothing is registered at program start.
var coreCodecs = sync.OnceValue(func() serializer.CodecFactory {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail
	}
	return serializer.NewCodecFactory(s)
})

// coreREST is a REST client for core/v1 on cfg (a copy is changed).
func coreREST(cfg *rest.Config) (*rest.RESTClient, error) {
	c := rest.CopyConfig(cfg)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = coreCodecs().WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = "k3scert"
	}
	return rest.RESTClientFor(c)
}

// ForConfig is a Client over an already configured connection (a
// kubeconfig's, or the in-cluster ServiceAccount's rest.Config), for the
// same Secret and /readyz calls. Its Address is cfg.Host; it verifies
// nothing beyond what cfg says.
func ForConfig(cfg *rest.Config) (*Client, error) {
	rc, err := coreREST(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{REST: rc, Address: cfg.Host}, nil
}

// Readyz asks /readyz and returns nil when the API says "ok".
func (c *Client) Readyz(ctx context.Context) error {
	b, err := c.REST.Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) != "ok" {
		return fmt.Errorf("/readyz: %q", b)
	}
	return nil
}

// probe does one TLS handshake and returns the served leaf.
func probe(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (*x509.Certificate, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	conn, err := d.DialContext(cctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil, errors.New("no certificate served")
	}
	return st.PeerCertificates[0], nil
}

// timeInside decides whether a refused chain failed only on time and, if
// so, returns a time inside the validity of every certificate in it at
// which the standard verification (roots, signatures, name, usage)
// succeeds.
func timeInside(cve *tls.CertificateVerificationError, pool *x509.CertPool, host string) (time.Time, string, error) {
	var inv x509.CertificateInvalidError
	if !errors.As(cve.Err, &inv) || (inv.Reason != x509.Expired) {
		return time.Time{}, "", fmt.Errorf("server certificate not trusted: %w", cve.Err)
	}
	chain := cve.UnverifiedCertificates
	if len(chain) == 0 {
		return time.Time{}, "", cve.Err
	}
	lo, hi := chain[0].NotBefore, chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotBefore.After(lo) {
			lo = c.NotBefore
		}
		if c.NotAfter.Before(hi) {
			hi = c.NotAfter
		}
	}
	if !lo.Before(hi) {
		return time.Time{}, "", fmt.Errorf("server chain has no common validity window: %w", cve.Err)
	}
	reason := "served certificate expired"
	at := hi.Add(-time.Second)
	if strings.Contains(inv.Detail, "before") { // "current time ... is before ..."
		reason = "served certificate not yet valid"
		at = lo.Add(time.Second)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: at, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return time.Time{}, "", fmt.Errorf("server certificate not trusted even inside its validity (%s): %w", at.Format(time.RFC3339), err)
	}
	return at, reason, nil
}

// GetServingSecret reads the listener secret. A missing secret is nil, nil.
func (c *Client) GetServingSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := c.REST.Get().Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(s)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s via %s: %w", namespace, name, c.Address, err)
	}
	return s, nil
}

// DeleteServingSecret deletes the listener secret; a missing one is not an
// error.
func (c *Client) DeleteServingSecret(ctx context.Context, namespace, name string) error {
	err := c.REST.Delete().Namespace(namespace).Resource("secrets").Name(name).Body(&metav1.DeleteOptions{}).Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete secret %s/%s via %s: %w", namespace, name, c.Address, err)
	}
	return nil
}

// UpdateServingSecret replaces the listener secret (its ResourceVersion
// guards against concurrent writers), or creates it when it has none.
func (c *Client) UpdateServingSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	var err error
	if s.ResourceVersion == "" {
		err = c.REST.Post().Namespace(s.Namespace).Resource("secrets").Body(s).Do(ctx).Into(out)
	} else {
		err = c.REST.Put().Namespace(s.Namespace).Resource("secrets").Name(s.Name).Body(s).Do(ctx).Into(out)
	}
	if err != nil {
		return nil, fmt.Errorf("write secret %s/%s via %s: %w", s.Namespace, s.Name, c.Address, err)
	}
	return out, nil
}
