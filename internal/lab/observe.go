package lab

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Step is what one scenario step observed, in the node's virtual time.
type Step struct {
	Name                string               `json:"name"`
	Action              string               `json:"action"`
	Day                 int                  `json:"day"`
	VirtualDate         time.Time            `json:"virtualDate"`
	FilesNotAfter       map[string]time.Time `json:"filesNotAfter"`
	DynamicCertNotAfter *time.Time           `json:"dynamicCertNotAfter"`
	SecretNotAfter      *time.Time           `json:"secretNotAfter"`
	ServedNotAfter      *time.Time           `json:"servedNotAfter"`
	KubectlOK           bool                 `json:"kubectlOK"`
	KubectlError        string               `json:"kubectlError"`
	ClientGoOK          bool                 `json:"clientGoOK"`
	ClientGoError       string               `json:"clientGoError"`
	DynamicCertSHA256   string               `json:"dynamicCertSHA256,omitempty"`
	SecretSHA256        string               `json:"secretSHA256,omitempty"`
	ServedSHA256        string               `json:"servedSHA256,omitempty"`
	Created             []string             `json:"created,omitempty"` // files K3s created at this start (first start)
	Renewed             []string             `json:"renewed,omitempty"` // files K3s reissued at this start
	Note                string               `json:"note,omitempty"`
	// ListenerEvent says what the listener's own expiry check did before
	// this observation, on eras that have one (see Node.waitFirstCheck).
	ListenerEvent string `json:"listenerEvent,omitempty"`
}

// X509Expired is the text both kubectl v1.20 and v1.32 print for an
// expired (or not yet valid) server certificate.
const X509Expired = "x509: certificate has expired or is not yet valid"

// ObservedFiles are the renewed files each step reports.
var ObservedFiles = []string{"client-admin", "serving-kube-apiserver"}

// Observe records the node's state now: the renewed files, both copies of
// the listener certificate, what :6443 serves, and what the real kubectl and
// client-go say. It first lets the listener settle: one TLS connection makes
// dynamiclistener load (and, on renewing profiles, check) its certificate,
// then it waits up to 8 s for dynamic-cert.json and the secret to agree.
func (n *Node) Observe(ctx context.Context, name, action string, day int) Step {
	st := Step{Name: name, Action: action, Day: day, VirtualDate: n.Now(), FilesNotAfter: map[string]time.Time{}}
	for _, id := range ObservedFiles {
		if s, ok := k3s.ByID(n.o.Program, n.o.Profile, id); ok {
			if c := readFirstCert(filepath.Join(n.dataDir, filepath.FromSlash(s.Cert))); c != nil {
				st.FilesNotAfter[id] = n.Virtual(c.NotAfter)
			}
		}
	}
	if !n.started {
		st.Note = "node stopped"
		return st
	}
	n.served() // wake the listener
	st.ListenerEvent = n.listenerEvent(ctx)
	var jsonC, secC *x509.Certificate
	for i := 0; i < 80; i++ {
		jsonC = n.jsonCert()
		secC = n.secretCert(ctx)
		if jsonC != nil && secC != nil && bytes.Equal(jsonC.Raw, secC.Raw) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if jsonC != nil {
		t := n.Virtual(jsonC.NotAfter)
		st.DynamicCertNotAfter, st.DynamicCertSHA256 = &t, pki.Fingerprint(jsonC)
	}
	if secC != nil {
		t := n.Virtual(secC.NotAfter)
		st.SecretNotAfter, st.SecretSHA256 = &t, pki.Fingerprint(secC)
	}
	if c := n.served(); c != nil {
		t := n.Virtual(c.NotAfter)
		st.ServedNotAfter, st.ServedSHA256 = &t, pki.Fingerprint(c)
		if st.ListenerEvent == "" {
			st.ListenerEvent = n.replacedEvent(c)
		}
	}
	st.KubectlOK, st.KubectlError = n.kubectl(ctx)
	st.ClientGoOK, st.ClientGoError = n.clientGo(ctx)
	return st
}

// listenerEvent lets a listener era that renews its own certificate
// (ExpirationDaysCheck) run its first expiry check before the node is
// observed, as it would on a K3s node that has been up for a minute, and
// says what it did. The check runs once the first certificate is loaded
// (v0.3.1+) or 30 s after the listener started (v0.2.1), then every 6 hours
// (every 5 minutes after an error). When the certificate the listener
// started with is inside the renewal window, it waits until what :6443
// serves differs from it, or until FirstCheck + 20 s after the start.
func (n *Node) listenerEvent(ctx context.Context) string {
	start := n.supStartCert
	if !n.listener.ExpirationDaysCheck || n.supervisor == nil || start == nil {
		return ""
	}
	window := time.Duration(n.o.Profile.RenewDays) * 24 * time.Hour
	if time.Until(start.NotAfter) > window {
		return "" // nothing to renew (see replacedEvent)
	}
	deadline := n.supStarted.Add(n.listener.FirstCheck + 20*time.Second)
	var now *x509.Certificate
	for {
		now = n.served()
		if now != nil && !bytes.Equal(now.Raw, start.Raw) {
			return fmt.Sprintf("dynamiclistener %s renewed the certificate it started with (inside its %d-day window): new one served %.0fs after the listener started",
				n.listener.Release, n.o.Profile.RenewDays, time.Since(n.supStarted).Seconds())
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// dynamiclistener v0.2.1+ logs every certificate it signs, and a
	// failed expiry check, as K3s's journal shows them.
	logged := n.supervisorLogSince()
	signed := strings.Count(logged, " signed by ")
	seenOther := false
	for fp := range n.seen {
		seenOther = seenOther || fp != pki.Fingerprint(start)
	}
	if signed > 0 || seenOther {
		return fmt.Sprintf("dynamiclistener %s signed a new certificate (%d, per its log) but serves the one it started with again %.0fs after the listener started: the renewal did not stick in its storage (see log/supervisor.log)",
			n.listener.Release, signed, time.Since(n.supStarted).Seconds())
	}
	why := ""
	if i := strings.LastIndex(logged, "failed to check and renew dynamic cert: "); i >= 0 {
		why = logged[i+len("failed to check and renew dynamic cert: "):]
		if j := strings.IndexAny(why, "\"\n"); j >= 0 {
			why = why[:j]
		}
		why = "; its expiry check failed: " + why
	}
	return fmt.Sprintf("dynamiclistener %s still serves the certificate it started with, inside its %d-day window, %.0fs after the listener started%s",
		n.listener.Release, n.o.Profile.RenewDays, time.Since(n.supStarted).Seconds(), why)
}

// replacedEvent: the listener started with a certificate outside its
// renewal window and now serves another one with an earlier NotAfter —
// the secret's copy won the merge when the storage started.
func (n *Node) replacedEvent(now *x509.Certificate) string {
	start := n.supStartCert
	if start == nil || n.supervisor == nil || bytes.Equal(now.Raw, start.Raw) || !now.NotAfter.Before(start.NotAfter) {
		return ""
	}
	return fmt.Sprintf("dynamiclistener %s started with a certificate valid until %s (dynamic-cert.json) and now serves an older one, valid until %s: the Kubernetes secret's copy replaced it when the storage started",
		n.listener.Release, n.Virtual(start.NotAfter).Format("2006-01-02"), n.Virtual(now.NotAfter).Format("2006-01-02"))
}

// supervisorLogSince returns what the running supervisor has logged.
func (n *Node) supervisorLogSince() string {
	f, err := os.Open(n.supervisor.log)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(n.supLogOffset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	return string(b)
}

// saw records a listener certificate seen since the supervisor started.
func (n *Node) saw(c *x509.Certificate) *x509.Certificate {
	if c != nil && n.seen != nil {
		n.seen[pki.Fingerprint(c)] = true
	}
	return c
}

func readFirstCert(path string) *x509.Certificate {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	certs, err := pki.ParseCerts(b)
	if err != nil || len(certs) == 0 {
		return nil
	}
	return certs[0]
}

func (n *Node) jsonCert() *x509.Certificate {
	b, err := os.ReadFile(filepath.Join(n.dataDir, filepath.FromSlash(k3s.ListenerSpec(n.o.Program).JSONPath)))
	if err != nil || len(b) == 0 {
		return nil
	}
	var s corev1.Secret
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	certs, err := pki.ParseCerts(s.Data[corev1.TLSCertKey])
	if err != nil {
		return nil
	}
	return n.saw(certs[0])
}

func (n *Node) secretCert(ctx context.Context) *x509.Certificate {
	s, _, err := n.ReadSecret(ctx)
	if err != nil || s == nil {
		return nil
	}
	certs, err := pki.ParseCerts(s.Data[corev1.TLSCertKey])
	if err != nil {
		return nil
	}
	return certs[0]
}

// served returns the leaf the supervisor port serves, verified or not
// (see source.Endpoints: the chain is recorded, nothing is sent).
func (n *Node) served() *x509.Certificate {
	ca := readFirstCert(n.tls("server-ca.crt"))
	var roots []*x509.Certificate
	if ca != nil {
		roots = append(roots, ca)
	}
	inv := &source.Inventory{}
	source.Endpoints{Targets: []source.EndpointTarget{{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.SupervisorPort)), Role: "supervisor"}},
		Roots: roots, At: time.Now(), Timeout: 3 * time.Second}.Read(context.Background(), inv)
	for _, c := range inv.Certs {
		if c.Index == 0 {
			return n.saw(c.Cert)
		}
	}
	return nil
}

// kubectl runs the real kubectl against the node's k3s.yaml.
func (n *Node) kubectl(ctx context.Context) (bool, string) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, n.bins.Kubectl, "--kubeconfig", n.kubecfg, "get", "--raw", "/readyz", "--request-timeout=10s")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return false, lastLine(msg)
	}
	if strings.TrimSpace(out.String()) != "ok" {
		return false, "unexpected /readyz answer: " + strings.TrimSpace(out.String())
	}
	return true, ""
}

// Kubectl runs kubectl with the node's kubeconfig and returns its output.
func (n *Node) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.bins.Kubectl, append([]string{"--kubeconfig", n.kubecfg}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// clientGo asks /readyz through client-go with the same kubeconfig.
func (n *Node) clientGo(ctx context.Context) (bool, string) {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubecfg)
	if err != nil {
		return false, err.Error()
	}
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false, err.Error()
	}
	b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return false, err.Error()
	}
	if strings.TrimSpace(string(b)) != "ok" {
		return false, fmt.Sprintf("unexpected /readyz answer: %q", b)
	}
	return true, ""
}
