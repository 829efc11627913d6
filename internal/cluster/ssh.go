package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/rotate"
	"github.com/k3scert/k3scert/internal/source"
)

// SSHRunner runs each node's part over SSH with the system OpenSSH client:
// `k3scert rotate --yes -o json --cluster-listener MODE` on the node (as
// root with sudo -n when the inventory says so), parsing the node's JSON
// result; `k3scert rotate --resume`; `k3scert check -o json` for the
// node's view, plus a local TLS dial of every server's API endpoint with
// the cluster CA and kubectl through each server on the server itself.
// ssh always runs with BatchMode=yes: it never asks for a password or a
// host key; StrictHostKeyChecking is the inventory's (default yes, the
// user's known_hosts).
type SSHRunner struct {
	Inv Inventory
	// SSH is the ssh client; "" = "ssh" on PATH.
	SSH string
	// Now is the clock of the TLS verification (cmd passes time.Now).
	Now func() time.Time
	// Log receives each node's progress (the remote stderr), line by line
	// prefixed with the node's name; nil discards it.
	Log io.Writer

	mu   sync.Mutex
	pool *x509.CertPool
}

// quote is a word for a POSIX shell.
func quote(w string) string {
	if w != "" && safeWord.MatchString(w) {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

var safeWord = regexp.MustCompile(`^[A-Za-z0-9_./:=@%+,-]+$`)

func quoteAll(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = quote(w)
	}
	return strings.Join(q, " ")
}

// sshArgs is the ssh command line up to and including the destination.
func (r *SSHRunner) sshArgs(host string) []string {
	o := r.Inv.SSH
	strict := o.StrictHostKeyChecking
	if strict == "" {
		strict = "yes"
	}
	a := []string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=" + strict}
	if o.KnownHostsFile != "" {
		a = append(a, "-o", "UserKnownHostsFile="+o.KnownHostsFile)
	}
	if o.Port != 0 {
		a = append(a, "-p", strconv.Itoa(o.Port))
	}
	if o.IdentityFile != "" {
		a = append(a, "-i", o.IdentityFile, "-o", "IdentitiesOnly=yes")
	}
	if o.User != "" {
		a = append(a, "-l", o.User)
	}
	set := map[string]bool{}
	for _, x := range o.Options {
		a = append(a, "-o", x)
		k, _, _ := strings.Cut(x, "=")
		set[strings.ToLower(k)] = true
	}
	// Defaults the inventory's options override: an unreachable host
	// fails in seconds, a dead connection in about a minute.
	if !set["connecttimeout"] {
		a = append(a, "-o", "ConnectTimeout=15")
	}
	if !set["serveraliveinterval"] {
		a = append(a, "-o", "ServerAliveInterval=15")
	}
	return append(a, "--", host)
}

// remote is the remote shell command: [sudo -n] words...
func (r *SSHRunner) remote(words ...string) string {
	if r.Inv.SSH.Sudo {
		words = append([]string{"sudo", "-n"}, words...)
	}
	return quoteAll(words)
}

func (r *SSHRunner) k3scert() string {
	if r.Inv.SSH.K3scert != "" {
		return r.Inv.SSH.K3scert
	}
	return "k3scert"
}

func (r *SSHRunner) nodeArgs(n Node) []string {
	return append(append([]string(nil), r.Inv.SSH.Args...), n.Args...)
}

// rotateWords is the node's k3scert rotate (or --resume) command.
func (r *SSHRunner) rotateWords(s NodeStep, resume bool) []string {
	w := []string{r.k3scert(), "rotate", "-o", "json"}
	if resume {
		w = append(w, "--resume")
	} else {
		w = append(w, "--yes")
		if s.Listener != "" {
			w = append(w, "--cluster-listener", s.Listener)
		}
	}
	w = append(w, r.nodeArgs(s.Node)...)
	w = append(w, r.Inv.SSH.RotateArgs...)
	return append(w, s.Node.RotateArgs...)
}

// Command is the exact local command line that rotates the node (for the
// dry run).
func (r *SSHRunner) Command(s NodeStep) string {
	return quoteAll(append([]string{r.sshBin()}, r.sshArgs(s.Node.Host)...)) + " " + quote(r.remote(r.rotateWords(s, false)...))
}

func (r *SSHRunner) sshBin() string {
	if r.SSH != "" {
		return r.SSH
	}
	return "ssh"
}

// prefixWriter writes each line prefixed, keeping the last lines.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
	tail   []string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.line(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) line(l string) {
	if p.w != nil {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, l)
	}
	p.tail = append(p.tail, l)
	if len(p.tail) > 8 {
		p.tail = p.tail[1:]
	}
}

func (p *prefixWriter) flush() string {
	if len(p.buf) > 0 {
		p.line(string(p.buf))
		p.buf = nil
	}
	return strings.Join(p.tail, " | ")
}

// run runs a remote command on the node; stdout is returned, stderr
// streamed to Log. An exit status of the remote command is not an error
// by itself (k3scert check exits non-zero on findings); ssh's own
// failure (255) is.
func (r *SSHRunner) run(ctx context.Context, n Node, remote string) ([]byte, string, int, error) {
	cmd := exec.CommandContext(ctx, r.sshBin(), append(r.sshArgs(n.Host), remote)...)
	var out bytes.Buffer
	pw := &prefixWriter{w: r.Log, prefix: "[" + n.Name + "] "}
	cmd.Stdout, cmd.Stderr = &out, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	tail := pw.flush()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if code == 255 {
			return out.Bytes(), tail, code, fmt.Errorf("ssh %s failed (exit 255): %s (a rotation already running there goes on to its end: it ignores the hangup; --resume finishes the node from its journal)", n.Host, tail)
		}
	case err != nil:
		return out.Bytes(), tail, -1, fmt.Errorf("ssh %s: %w", n.Host, err)
	}
	return out.Bytes(), tail, code, nil
}

// ParseRotateResult finds the node's RotateResult among the JSON
// documents `k3scert rotate -o json` prints (the plan, then the result).
func ParseRotateResult(b []byte) (rotate.Result, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if err == io.EOF {
				return rotate.Result{}, errors.New("the node printed no rotation result")
			}
			return rotate.Result{}, fmt.Errorf("the node's output is not JSON: %w", err)
		}
		var head struct{ Kind string }
		if json.Unmarshal(raw, &head) == nil && head.Kind == "RotateResult" {
			var res rotate.Result
			if err := json.Unmarshal(raw, &res); err != nil {
				return res, err
			}
			return res, nil
		}
	}
}

func (r *SSHRunner) rotateOnce(ctx context.Context, s NodeStep, resume bool) (NodeResult, rotate.Result, error) {
	nr := NodeResult{Node: s.Node.Name, Role: s.Node.Role}
	out, tail, code, err := r.run(ctx, s.Node, r.remote(r.rotateWords(s, resume)...))
	if err != nil {
		return nr, rotate.Result{}, err
	}
	res, perr := ParseRotateResult(out)
	if perr != nil {
		return nr, res, fmt.Errorf("k3scert rotate on %s exited %d without a result (%v): %s", s.Node.Host, code, perr, tail)
	}
	nr.Started, nr.Finished, nr.Downtime, nr.Outcome = res.Started, res.Finished, res.Downtime, res.Outcome
	if !res.OK {
		return nr, res, errors.New(res.Error)
	}
	if code != 0 {
		return nr, res, fmt.Errorf("k3scert rotate on %s reported success but exited %d: %s", s.Node.Host, code, tail)
	}
	return nr, res, nil
}

// Rotate implements Runner.
func (r *SSHRunner) Rotate(ctx context.Context, s NodeStep) (NodeResult, error) {
	nr, _, err := r.rotateOnce(ctx, s, false)
	return nr, err
}

// Resume implements Runner: it finishes the node whatever its own journal
// says — an unfinished rotation is resumed; one that already completed
// counts as done; one that rolled back or was aborted (or never began) is
// rotated again.
func (r *SSHRunner) Resume(ctx context.Context, s NodeStep) (NodeResult, error) {
	nr, res, err := r.rotateOnce(ctx, s, true)
	if err == nil {
		return nr, nil
	}
	if res.Kind == "" { // no result at all: ssh or the remote k3scert failed
		return nr, err
	}
	switch {
	case res.JournalEnd == "complete":
		nr.Outcome = "complete (its rotation had completed before the interruption)"
		return nr, nil
	case res.JournalEnd == "rolledback" || res.JournalEnd == "aborted" || strings.Contains(res.Error, "no rotation journal"):
		return r.Rotate(ctx, s)
	}
	return nr, err
}

// Preflight implements Preflighter: every node answers over ssh (with
// sudo -n when the inventory says so) and runs the remote k3scert
// (`k3scert version -o json`). All nodes are tried; every failure is
// named.
func (r *SSHRunner) Preflight(ctx context.Context, steps []NodeStep) error {
	var bad []string
	for _, s := range steps {
		out, tail, code, err := r.run(ctx, s.Node, r.remote(r.k3scert(), "version", "-o", "json"))
		var v struct {
			Version string `json:"version"`
		}
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", s.Node.Name, err))
		case code != 0:
			bad = append(bad, fmt.Sprintf("%s: %s version exited %d: %s", s.Node.Name, r.k3scert(), code, tail))
		case json.Unmarshal(out, &v) != nil:
			bad = append(bad, fmt.Sprintf("%s: %s version printed no JSON (not k3scert?)", s.Node.Name, r.k3scert()))
		case r.Log != nil:
			fmt.Fprintf(r.Log, "[%s] reachable, k3scert %s\n", s.Node.Name, v.Version)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d nodes cannot be reached or run k3scert: %s", len(bad), len(steps), strings.Join(bad, "; "))
	}
	return nil
}

// Verify implements Runner.
func (r *SSHRunner) Verify(ctx context.Context, n Node) (NodeCheck, error) {
	c := NodeCheck{Node: n.Name, Role: n.Role}
	out, tail, _, err := r.run(ctx, n, r.remote(append([]string{r.k3scert(), "check", "-o", "json"}, r.nodeArgs(n)...)...))
	if err != nil {
		return c, err
	}
	var rep report.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		c.Problems = append(c.Problems, fmt.Sprintf("k3scert check on the node printed no report (%v): %s", err, tail))
	} else {
		c.Problems = append(c.Problems, r.judge(n, rep, &c)...)
	}
	if n.Role != RoleServer {
		return c, nil
	}
	leaf, err := r.dial(ctx, n)
	if err != nil {
		c.Problems = append(c.Problems, err.Error())
	} else {
		c.ServedNotAfter = leaf.NotAfter
	}
	c.KubectlOK, c.KubectlError = r.kubectl(ctx, n)
	if !c.KubectlOK {
		c.Problems = append(c.Problems, "kubectl through "+n.Name+": "+c.KubectlError)
	}
	return c, nil
}

// judge reads the node's own check report: every served certificate and
// (agents) every agent certificate of the table valid now; the agent's
// kubelet serving certificate is its ServedNotAfter.
func (r *SSHRunner) judge(n Node, rep report.Report, c *NodeCheck) []string {
	agentFiles := map[string]bool{}
	for _, s := range k3s.Specs(r.Inv.Program, k3s.ProfileCurrent) {
		if s.Role == k3s.RoleAgent && s.Cert != "" && !s.CA {
			agentFiles[s.Cert] = true
		}
	}
	var out []string
	for _, cert := range rep.Certificates {
		if cert.Index != 0 || cert.IsCA {
			continue
		}
		rel := relAgent(cert.Location)
		if cert.Source == "file" && rel == "agent/serving-kubelet.crt" && n.Role == RoleAgent {
			c.ServedNotAfter = cert.NotAfter
		}
		bad := cert.Status == "EXPIRED" || cert.Status == "NOT YET VALID"
		if bad && (cert.Source == "endpoint" || (cert.Source == "file" && agentFiles[rel])) {
			out = append(out, fmt.Sprintf("%s is %s (notAfter %s)", cert.Location, cert.Status, cert.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	if n.Role == RoleAgent && c.ServedNotAfter.IsZero() {
		out = append(out, "the node's check shows no agent/serving-kubelet.crt")
	}
	return out
}

// relAgent is "agent/<file>" for a file under a data dir's agent/.
func relAgent(loc string) string {
	if i := strings.LastIndex(loc, "/agent/"); i >= 0 {
		return loc[i+1:]
	}
	return ""
}

// flagValue finds --name X / --name=X (or -short X) in args.
func flagValue(args []string, long, short string) string {
	v := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--"+long || (short != "" && a == "-"+short):
			if i+1 < len(args) {
				v = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--"+long+"="):
			v = strings.TrimPrefix(a, "--"+long+"=")
		}
	}
	return v
}

func (r *SSHRunner) dataDir(n Node) string {
	if d := flagValue(r.nodeArgs(n), "data-dir", "d"); d != "" {
		return d
	}
	return k3s.DefaultDataDir(r.Inv.Program)
}

// caPool is the cluster CA: the inventory's caFile, else the first
// server's server/tls/server-ca.crt over ssh (read once).
func (r *SSHRunner) caPool(ctx context.Context) (*x509.CertPool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pool != nil {
		return r.pool, nil
	}
	var pemBytes []byte
	from := r.Inv.CAFile
	if from != "" {
		b, err := source.ReadFile(from)
		if err != nil {
			return nil, fmt.Errorf("cluster CA: %w", err)
		}
		pemBytes = b
	} else {
		first := r.Inv.Servers()[0]
		p := path.Join(r.dataDir(first), "server", "tls", "server-ca.crt")
		from = first.Name + ":" + p
		out, tail, code, err := r.run(ctx, first, r.remote("cat", p))
		if err != nil {
			return nil, fmt.Errorf("fetch the cluster CA: %w", err)
		}
		if code != 0 {
			return nil, fmt.Errorf("fetch the cluster CA %s: exit %d: %s", from, code, tail)
		}
		pemBytes = out
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("cluster CA %s: no PEM certificate", from)
	}
	r.pool = pool
	return pool, nil
}

// dial: a TLS handshake with the server's API endpoint, verified against
// the cluster CA at Now (never InsecureSkipVerify).
func (r *SSHRunner) dial(ctx context.Context, n Node) (*x509.Certificate, error) {
	pool, err := r.caPool(ctx)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(n.API)
	if err != nil {
		return nil, err
	}
	now := r.Now()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12, Time: func() time.Time { return now }}}
	conn, err := d.DialContext(ctx, "tcp", n.API)
	if err != nil {
		return nil, fmt.Errorf("TLS to %s with the cluster CA: %w", n.API, err)
	}
	defer conn.Close()
	st := conn.(*tls.Conn).ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%s sent no certificate", n.API)
	}
	return st.PeerCertificates[0], nil
}

// kubectl runs kubectl on the server with its own admin kubeconfig
// (rewritten by K3s at start), pointed at this server's API port.
func (r *SSHRunner) kubectl(ctx context.Context, n Node) (bool, string) {
	kc := flagValue(r.nodeArgs(n), "admin-kubeconfig", "")
	if kc == "" {
		kc = k3s.DefaultKubeconfig(r.Inv.Program)
	}
	_, port, _ := net.SplitHostPort(n.API)
	words := strings.Fields(r.Inv.SSH.Kubectl)
	if len(words) == 0 {
		words = k3s.DefaultKubectl(r.Inv.Program)
	}
	words = append(words, "--kubeconfig", kc, "--server", "https://127.0.0.1:"+port, "--request-timeout", "20s", "get", "--raw", "/readyz")
	out, tail, code, err := r.run(ctx, n, r.remote(words...))
	switch {
	case err != nil:
		return false, err.Error()
	case code != 0:
		return false, fmt.Sprintf("exit %d: %s", code, tail)
	case strings.TrimSpace(string(out)) != "ok":
		return false, fmt.Sprintf("/readyz answered %q", strings.TrimSpace(string(out)))
	}
	return true, ""
}
