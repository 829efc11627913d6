package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// AgentServerRole is the role of an endpoint that is a server an agent
// points at (its --server, its load balancer's servers): not this node's
// own process, judged against the agent's server CA copy only.
const AgentServerRole = "agent-server"

// EndpointTarget is one TLS endpoint to look at.
type EndpointTarget struct {
	Address  string // host:port
	Role     string // "supervisor", "apiserver", "kubelet", "etcd", or ""
	Explicit bool   // requested by the user: not answering is a problem
}

// Endpoints records the certificate chain each endpoint serves.
//
// It never weakens TLS: the handshake verifies the chain against the node's
// own CAs at the judgement time At. When verification fails (an expired
// certificate, for example), Go reports the chain it refused in
// tls.CertificateVerificationError; that chain is recorded together with the
// reason, and the connection is closed without sending anything.
type Endpoints struct {
	Targets []EndpointTarget
	Roots   []*x509.Certificate // the node's CA certificates
	At      time.Time           // verification time
	Timeout time.Duration       // per endpoint; default 1.5s
}

// Name implements Source.
func (e Endpoints) Name() string { return "endpoints" }

// Read implements Source.
func (e Endpoints) Read(ctx context.Context, inv *Inventory) {
	timeout := e.Timeout
	if timeout == 0 {
		timeout = 1500 * time.Millisecond
	}
	pool := x509.NewCertPool()
	for _, r := range e.Roots {
		pool.AddCert(r)
	}
	done := make(chan struct{}, len(e.Targets))
	for _, t := range e.Targets {
		go func(t EndpointTarget) {
			defer func() { done <- struct{}{} }()
			e.probe(ctx, inv, t, pool, timeout)
		}(t)
	}
	for range e.Targets {
		<-done
	}
}

func (e Endpoints) probe(ctx context.Context, inv *Inventory, t EndpointTarget, pool *x509.CertPool, timeout time.Duration) {
	res := EndpointResult{Address: t.Address, Role: t.Role, Explicit: t.Explicit}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		res.Status, res.Error = "error", err.Error()
		inv.AddEndpoint(res)
		inv.AddProblem(Problem{Source: Endpoint, Location: t.Address, Reason: ReasonUnreachable, Detail: err.Error()})
		return
	}
	at := e.At
	cfg := &tls.Config{
		RootCAs:    pool,
		ServerName: host, // an IP: Go sends no SNI, so dynamiclistener learns no new name
		Time:       func() time.Time { return at },
		NextProtos: []string{"http/1.1"},
		MinVersion: tls.VersionTLS12,
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	conn, err := d.DialContext(cctx, "tcp", t.Address)
	var chain []*x509.Certificate
	switch {
	case err == nil:
		chain = conn.(*tls.Conn).ConnectionState().PeerCertificates
		conn.Close()
		res.Status, res.Trusted = "ok", true
	default:
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			chain = cve.UnverifiedCertificates
			res.Status, res.VerifyError = "ok", cve.Err.Error()
			break
		}
		res.Status, res.Error = classifyDialError(err), err.Error()
	}
	inv.AddEndpoint(res)
	if res.Status != "ok" {
		if t.Explicit {
			inv.AddProblem(Problem{Source: Endpoint, Location: t.Address, Reason: endpointReason(res.Status), Detail: res.Error})
		}
		return
	}
	for i, c := range chain {
		id := ""
		if i == 0 {
			id = "endpoint-" + t.Role
		}
		inv.AddCert(Cert{Source: Endpoint, Location: t.Address, Index: i, SpecID: id, Via: t.Role, Cert: c})
	}
}

func endpointReason(status string) Reason {
	if status == "not-tls" {
		return ReasonTLS
	}
	return ReasonUnreachable
}

func classifyDialError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "first record does not look like a TLS handshake"):
		return "not-tls"
	}
	return "error"
}
