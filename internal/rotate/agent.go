package rotate

// This file: what an agent rotation proves after the restart (the agent
// parts of the verification): every certificate the agent fetched is new,
// chains to the agent's CA copies, and the kubelet serves the new
// serving certificate.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// AgentCert is an agent certificate as it was when the plan was made:
// verify requires a different certificate after the restart.
type AgentCert struct {
	Path      string    `json:"path"`
	Signer    string    `json:"signer"` // the agent's CA copy it must chain to (agent/server-ca.crt, agent/client-ca.crt)
	SHA256    string    `json:"sha256,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	NotBefore time.Time `json:"notBefore,omitempty"`
	NotAfter  time.Time `json:"notAfter,omitempty"`
	Serving   bool      `json:"serving,omitempty"` // serving-kubelet: what :10250 must serve afterwards
}

// ReadAgentCerts records the agent's table leaves (agent/*.crt the agent
// fetches on every start) of an agent-only node. A missing or unreadable
// file is recorded without a fingerprint: verify then only requires it to
// exist afterwards.
func ReadAgentCerts(dataDir string, p k3s.Program, prof k3s.Profile) []AgentCert {
	var out []AgentCert
	for _, s := range k3s.Specs(p, prof) {
		if s.Role != k3s.RoleAgent || s.CA || s.Cert == "" || !s.Renewable() {
			continue
		}
		signer := "agent/" + s.Signer + ".crt"
		a := AgentCert{Path: filepath.Join(dataDir, filepath.FromSlash(s.Cert)), Signer: filepath.Join(dataDir, filepath.FromSlash(signer)), Serving: s.Serving}
		if c := firstCertOf(a.Path); c != nil {
			a.SHA256, a.Serial, a.NotBefore, a.NotAfter = pki.Fingerprint(c), c.SerialNumber.Text(16), c.NotBefore.UTC(), c.NotAfter.UTC()
		}
		out = append(out, a)
	}
	return out
}

func firstCertOf(path string) *x509.Certificate {
	b, err := source.ReadFile(path)
	if err != nil {
		return nil
	}
	cs, err := pki.ParseCerts(b)
	if err != nil || len(cs) == 0 {
		return nil
	}
	return cs[0]
}

func certsOf(path string) ([]*x509.Certificate, error) {
	b, err := source.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return pki.ParseCerts(b)
}

// verifyAgent: the certificates the agent fetched at its start are new
// (another certificate than before, with a new serial or a NotBefore after
// the rotation started), chain to the agent's CA copies, and the kubelet
// serves the new serving certificate.
func (v Verifier) verifyAgent(ctx context.Context, p Plan, now time.Time) error {
	var serving *x509.Certificate
	for _, b := range p.AgentBefore {
		cur := firstCertOf(b.Path)
		if cur == nil {
			return fmt.Errorf("%s is missing or unreadable after the restart: the agent did not fetch it", b.Path)
		}
		if b.SHA256 != "" && (pki.Fingerprint(cur) == b.SHA256 || cur.SerialNumber.Text(16) == b.Serial && !cur.NotBefore.After(p.CreatedAt)) {
			return fmt.Errorf("%s is still the certificate from before the rotation (serial %s, notAfter %s): the agent did not fetch a new one; is its server reachable and renewed?",
				b.Path, b.Serial, b.NotAfter.Format(time.RFC3339))
		}
		cas, err := certsOf(b.Signer)
		if err != nil {
			return fmt.Errorf("the agent's CA copy %s: %w", b.Signer, err)
		}
		signed := false
		for _, ca := range cas {
			if pki.SignedBy(cur, ca) == nil {
				signed = true
			}
		}
		if !signed {
			return fmt.Errorf("%s (issuer %s) does not chain to the agent's CA copy %s", b.Path, cur.Issuer.CommonName, b.Signer)
		}
		if b.Serving {
			serving = cur
		}
	}
	if serving == nil || v.NoKubelet {
		return nil
	}
	return v.servedKubelet(ctx, p, serving, now)
}

// servedKubelet dials the kubelet with the agent's server CA copy as the
// only root and requires the new serving-kubelet certificate.
func (v Verifier) servedKubelet(ctx context.Context, p Plan, want *x509.Certificate, now time.Time) error {
	addr := v.KubeletAddress
	if addr == "" {
		port := k3s.DefaultPorts(k3s.Program(p.Node.Program)).Kubelet
		if v.Check.Ports != nil && v.Check.Ports.Kubelet != 0 {
			port = v.Check.Ports.Kubelet
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("kubelet address %q: %w", addr, err)
	}
	roots := x509.NewCertPool()
	cas, err := certsOf(filepath.Join(p.Node.DataDir, "agent", "server-ca.crt"))
	if err != nil {
		return fmt.Errorf("the agent's server CA copy: %w", err)
	}
	for _, c := range cas {
		roots.AddCert(c)
	}
	timeout := 3 * time.Second
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{RootCAs: roots, ServerName: host,
		Time: func() time.Time { return now }, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(cctx, "tcp", addr)
	var got *x509.Certificate
	verr := ""
	if err != nil {
		var cve *tls.CertificateVerificationError
		if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
			return fmt.Errorf("the kubelet on %s does not answer: %w", addr, err)
		}
		got, verr = cve.UnverifiedCertificates[0], cve.Err.Error()
	} else {
		defer conn.Close()
		got = conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	}
	if pki.Fingerprint(got) != pki.Fingerprint(want) {
		msg := fmt.Sprintf("the kubelet on %s still serves another certificate (serial %s, notAfter %s) than the renewed agent/serving-kubelet.crt (serial %s): it has not restarted with the new one",
			addr, got.SerialNumber.Text(16), got.NotAfter.Format(time.RFC3339), want.SerialNumber.Text(16))
		if verr != "" {
			msg += "; and what it serves does not verify against agent/server-ca.crt: " + verr
		}
		return errors.New(msg)
	}
	if verr != "" {
		return fmt.Errorf("the kubelet on %s serves the renewed certificate, but it does not verify against agent/server-ca.crt: %s", addr, verr)
	}
	return nil
}
