package rotate

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// Verifier proves a rotation on the wire: the node's endpoints serve
// certificates valid now and VerifyDays ahead, the renewed admin
// credentials reach the API, and check finds nothing critical.
type Verifier struct {
	Check   check.Options // DataDir, Program, Profile, Endpoints, Ports...
	Now     func() time.Time
	Timeout time.Duration // how long to wait for the API; default 90s
	// Secret reads the shared serving secret while K3s runs (nil: not
	// readable). In a cluster rotation (Plan.ClusterListener) the
	// listener must then serve exactly the secret's certificate.
	Secret func(ctx context.Context) (*corev1.Secret, error)
}

// Verify implements Executor.Verify.
func (v Verifier) Verify(ctx context.Context, p Plan) error {
	timeout := v.Timeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	var last error
	deadline := v.Now().Add(timeout)
	for {
		last = v.once(ctx, p)
		if last == nil || v.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		time.Sleep(time.Second)
	}
}

func (v Verifier) once(ctx context.Context, p Plan) error {
	now := v.Now().UTC().Truncate(time.Second)
	if p.Kubeconfig != "" {
		if err := apiReady(ctx, p.Kubeconfig); err != nil {
			return fmt.Errorf("the renewed admin credentials (%s) do not reach the API: %w", p.Kubeconfig, err)
		}
	}
	program := k3s.Program(p.Node.Program)
	ports := k3s.DefaultPorts(program)
	if v.Check.Ports != nil {
		ports = *v.Check.Ports
	}
	supervisor := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.Supervisor))
	// Only the table's files are judged: the agent's own certificates (a
	// server's embedded agent too), never containerd's image snapshots,
	// registry certificates or backups under agent/.
	agentFiles := map[string]bool{}
	for _, s := range k3s.Specs(program, k3s.ProfileCurrent) {
		if s.Role == k3s.RoleAgent && s.Cert != "" && !s.CA {
			agentFiles[filepath.Join(p.Node.DataDir, filepath.FromSlash(s.Cert))] = true
		}
	}
	for _, at := range []time.Time{now, now.Add(time.Duration(p.VerifyDays) * 24 * time.Hour)} {
		for _, l := range p.Leaves {
			if err := validFile(l.Cert, at); err != nil {
				return err
			}
		}
		o := v.Check
		o.At = at
		r, _, err := check.Run(ctx, o)
		if err != nil {
			return err
		}
		served := 0
		for _, c := range r.Certificates {
			if c.Source == "file" && c.Index == 0 && !c.IsCA && agentFiles[c.Location] &&
				(c.Status == "EXPIRED" || c.Status == "NOT YET VALID") {
				return fmt.Errorf("%s is %s at %s (notAfter %s): the agent did not fetch a fresh certificate", c.Location, c.Status, at.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
			}
			if c.Source == "endpoint" && c.Index == 0 {
				served++
				if p.Listener == ListenerStatic && sameEndpoint(c.Location, supervisor) {
					continue // user-managed: the rotation does not change it
				}
				if c.Status == "EXPIRED" || c.Status == "NOT YET VALID" {
					return fmt.Errorf("%s serves a certificate that is %s at %s (notAfter %s)", c.Location, c.Status, at.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
				}
			}
		}
		if served == 0 && p.Node.Role != "agent" {
			return fmt.Errorf("no endpoint answered at %s", strings.Join(o.Endpoints, ", "))
		}
		if at.Equal(now) && p.ClusterListener != "" && p.Listener != ListenerStatic && v.Secret != nil && p.Node.Role != "agent" {
			if err := v.servesSecret(ctx, p, supervisor); err != nil {
				return err
			}
		}
		if at.Equal(now) {
			var crit []string
			for _, f := range r.Findings {
				if f.Severity == report.Critical && v.covers(p, f, program, supervisor) {
					crit = append(crit, f.Code+" "+f.Location)
				}
			}
			if len(crit) > 0 {
				return fmt.Errorf("check still finds %d critical problems: %s", len(crit), strings.Join(crit, "; "))
			}
		}
	}
	return nil
}

// covers: a critical finding counts against the rotation when it is about
// what the plan renews (Plan.Covers); an agent plan renews every table
// file of the agent.
func (v Verifier) covers(p Plan, f report.Finding, program k3s.Program, supervisor string) bool {
	if p.Node.Role == string(k3s.RoleAgent) {
		return !filepath.IsAbs(f.Location) || p.Covers(f, program, supervisor)
	}
	return p.Covers(f, program, supervisor)
}

// validFile: a renewed (or regenerated) leaf exists and is valid at at.
func validFile(path string, at time.Time) error {
	b, err := source.ReadFile(path)
	if err != nil {
		return fmt.Errorf("renewed leaf: %w", err)
	}
	certs, err := pki.ParseCerts(b)
	if err != nil {
		return fmt.Errorf("renewed leaf %s: %w", path, err)
	}
	if at.Before(certs[0].NotBefore) || at.After(certs[0].NotAfter) {
		return fmt.Errorf("%s is not valid at %s (notAfter %s)", path, at.Format(time.RFC3339), certs[0].NotAfter.Format(time.RFC3339))
	}
	return nil
}

// servesSecret: the listener serves the shared secret's certificate, valid
// for server-ca (no InsecureSkipVerify: the chain is verified). When the
// secret cannot be read, there is nothing to compare with.
func (v Verifier) servesSecret(ctx context.Context, p Plan, addr string) error {
	sec, err := v.Secret(ctx)
	if err != nil {
		// Not readable from here (a datastore k3scert cannot open while K3s
		// runs): the comparison needs the secret; the served certificate
		// was judged above like on any node.
		return nil
	}
	if sec == nil {
		return errors.New("the shared serving secret does not exist after the start")
	}
	want, err := pki.ParseCerts(sec.Data[corev1.TLSCertKey])
	if err != nil {
		return fmt.Errorf("the shared serving secret: %w", err)
	}
	got, err := ServedLeaf(ctx, addr, filepath.Join(p.Node.DataDir, "server", "tls", "server-ca.crt"), v.Now())
	if err != nil {
		return err
	}
	if !bytes.Equal(got.Raw, want[0].Raw) {
		return fmt.Errorf("%s serves a certificate (serial %s, until %s) other than the shared secret's (serial %s, until %s)", addr,
			got.SerialNumber, got.NotAfter.UTC().Format(time.RFC3339), want[0].SerialNumber, want[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// ServedLeaf dials addr with TLS, verifying the chain against the CA file
// (the address's host must be a name of the certificate), and returns the
// leaf it serves. The chain is verified at now (the node's clock, or the
// lab's virtual one).
func ServedLeaf(ctx context.Context, addr, caFile string, now time.Time) (*x509.Certificate, error) {
	cb, err := source.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA for %s: %w", addr, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cb) {
		return nil, fmt.Errorf("CA %s: no PEM certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12,
		Time: func() time.Time { return now }}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("TLS dial %s with %s: %w", addr, caFile, err)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%s sent no certificate", addr)
	}
	return st.PeerCertificates[0], nil
}

func sameEndpoint(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return pa == pb && (ha == hb || ha == "localhost" || net.ParseIP(ha).IsLoopback())
}

func apiReady(ctx context.Context, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.Timeout = 10 * time.Second
	c, err := kube.ForConfig(cfg)
	if err != nil {
		return err
	}
	return c.Readyz(ctx)
}
