package main

// CLI-level tests of hostile inputs (issue 14 items 4 and 5): every one runs
// the real binary (the test binary re-executed as "k3scert", see TestMain)
// under a deadline context. The deadline is a safety net that turns a hang
// into a failure with a message, not a timing assertion: nothing here
// measures how fast anything is.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// hangDeadline bounds every CLI run: far above anything a healthy run
// takes on a loaded machine, far below "forever".
const hangDeadline = 3 * time.Minute

// cliResult is one run of the binary.
type cliResult struct {
	stdout, stderr string
	code           int
	maxRSSKiB      int64
}

// cliRun runs k3scert with args under a deadline, optionally as another
// user (cred != nil). A run killed by the deadline fails the test: that is
// the hang these tests exist to catch.
func cliRun(t *testing.T, bin string, cred *syscall.Credential, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "PATH=/nonexistent") // no k3s/rke2 --version lookups
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("k3scert %s hung: killed after the %s safety deadline\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), hangDeadline, out.String(), errb.String())
	}
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("k3scert %s: %v", strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSSKiB = ru.Maxrss
	}
	return r
}

// k3scertBin is the test binary as "k3scert" (testscript put it on PATH).
func k3scertBin(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("k3scert")
	if err != nil {
		t.Fatalf("k3scert not on PATH (testscript.Main sets it up): %v", err)
	}
	return p
}

// inputNode generates a server node with its admin kubeconfig and an empty
// config.yaml, judged at at.
func inputNode(t *testing.T) (dir, dataDir, kc, cfg string) {
	t.Helper()
	dir = t.TempDir()
	dataDir, kc, cfg = filepath.Join(dir, "data"), filepath.Join(dir, "k3s.yaml"), filepath.Join(dir, "config.yaml")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileCurrent, Kubeconfig: kc, Listener: true},
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, dataDir, kc, cfg
}

const inputAt = "2025-01-01T00:00:00Z"

// A FIFO in place of server-ca.crt used to hang check and forecast for
// ever (the secret reader's open waits for a writer). Now: a
// not_regular_file finding, no hang, and UNKNOWN (exit 3) because the
// secret could not be read either. --secret auto is the default and the
// path that reads the CA files outside internal/source.
func TestFIFOServerCADoesNotHang(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	ca := filepath.Join(dataDir, "server", "tls", "server-ca.crt")
	if err := os.Remove(ca); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(ca, 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--no-endpoints", "--secret", "auto"}

	r := cliRun(t, bin, nil, append([]string{"check", "--at", inputAt}, common...)...)
	if r.code != 3 {
		t.Errorf("check exit %d, want 3 (UNKNOWN: the secret could not be read)\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"K3C900", "server-ca.crt", "not_regular_file", "a FIFO", "status: UNKNOWN (exit 3)", "not reading the secret"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = cliRun(t, bin, nil, append([]string{"forecast", "--from", inputAt}, common...)...)
	if r.code != 3 {
		t.Errorf("forecast exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "UNKNOWN  could not read what decides the lock-out") || regexp.MustCompile(`(?m)^OK `).MatchString(r.stdout) {
		t.Errorf("forecast does not say UNKNOWN, or says OK:\n%s", r.stdout)
	}

	// The same FIFO named as a kubeconfig to compare, and as the input of
	// kubeconfig refresh.
	fifo := filepath.Join(t.TempDir(), "copy.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r = cliRun(t, bin, nil, "check", "--at", inputAt, "-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--no-endpoints", "--secret", "none", "--compare-kubeconfig", fifo)
	if r.code != 3 || !strings.Contains(r.stdout, "not_regular_file") {
		t.Errorf("--compare-kubeconfig FIFO: exit %d\n%s", r.code, r.stdout)
	}
	r = cliRun(t, bin, nil, "kubeconfig", "refresh", "-d", dataDir, fifo)
	if r.code != 3 || !strings.Contains(r.stderr, "not a regular file (a FIFO)") {
		t.Errorf("kubeconfig refresh FIFO: exit %d\nstderr: %s", r.code, r.stderr)
	}
	// config.yaml as a FIFO: not_regular_file, not bad_kubeconfig.
	cfgFIFO := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(cfgFIFO, 0o600); err != nil {
		t.Fatal(err)
	}
	r = cliRun(t, bin, nil, "check", "--at", inputAt, "-d", dataDir, "--admin-kubeconfig", kc, "--config", cfgFIFO, "--no-endpoints", "--secret", "none")
	if !strings.Contains(r.stdout, "not_regular_file") {
		t.Errorf("--config FIFO: exit %d\n%s", r.code, r.stdout)
	}
}

// A 1 GiB sparse server-ca.crt used to be read whole (1.1 GB RSS). It is
// refused from its size, before any read: a clear error, and the process
// stays small.
func TestHugeSparseCARefused(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	ca := filepath.Join(dataDir, "server", "tls", "server-ca.crt")
	if err := os.Truncate(ca, 1<<30); err != nil {
		t.Fatal(err)
	}
	r := cliRun(t, bin, nil, "check", "--at", inputAt, "-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--no-endpoints", "--secret", "auto")
	for _, want := range []string{"too_large", "1073741824 bytes, over the 1048576-byte limit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Bounded memory: far below the file's size (it was 1.1 GB before).
	// Linux reports ru_maxrss in KiB.
	if r.maxRSSKiB == 0 || r.maxRSSKiB > 256<<10 {
		t.Errorf("peak RSS %d KiB reading a 1 GiB CA file; want well under 256 MiB", r.maxRSSKiB)
	}
	t.Logf("peak RSS with a 1 GiB sparse server-ca.crt: %d KiB", r.maxRSSKiB)
}

// evilCN forges what a terminal shows: a screen clear, a window title,
// bidi overrides and isolates, a zero-width space, and a newline followed
// by a fake table row saying client-admin is fine.
const evilCN = "evil\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\u2066x\u2069\u200b\n" +
	"file  client-admin.crt  system:admin  ClientAuth  Dec 31, 2099 23:00 UTC  364d  OK"

// unsafeOut reports a byte or rune that must never reach a terminal from
// certificate data.
var unsafeOut = regexp.MustCompile("[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

// A certificate whose subject forges output, found in a file under
// server/tls and served by a local TLS server on a probed port: table,
// wide, forecast text and findings print it escaped, on one line.
func TestForgedSubjectEscaped(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	evil, err := pki.NewCA(evilCN, key, at, at.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "server", "tls", "evil.crt"), pki.EncodeCerts(evil), 0o600); err != nil {
		t.Fatal(err)
	}

	// The same certificate on a loopback port, probed as the supervisor.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{evil.Raw}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)

	args := []string{"-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--secret", "none",
		"--supervisor-port", port, "--endpoint", addr}
	outputs := map[string]string{}
	for _, o := range []string{"table", "wide"} {
		r := cliRun(t, bin, nil, append([]string{"check", "--at", inputAt, "-o", o}, args...)...)
		outputs["check -o "+o] = r.stdout
		outputs["check -o "+o+" stderr"] = r.stderr
		if !strings.Contains(r.stdout, addr) {
			t.Errorf("check -o %s: the endpoint %s is not in the output:\n%s", o, addr, r.stdout)
		}
	}
	r := cliRun(t, bin, nil, append([]string{"forecast", "--from", inputAt}, args...)...)
	outputs["forecast"], outputs["forecast stderr"] = r.stdout, r.stderr

	for name, out := range outputs {
		if m := unsafeOut.FindString(out); m != "" {
			t.Errorf("%s prints %q raw:\n%s", name, m, out)
		}
		if strings.HasSuffix(name, "stderr") {
			continue
		}
		// The forged row never starts a line; the real row does, once.
		if n := len(regexp.MustCompile(`(?m)^file +client-admin\.crt +system:admin .*2099`).FindAllString(out, -1)); n != 0 {
			t.Errorf("%s: the forged table row starts a line:\n%s", name, out)
		}
	}
	for _, o := range []string{"check -o table", "check -o wide"} {
		out := outputs[o]
		if !strings.Contains(out, `evil\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\u2066x\u2069\u200b\nfile  client-admin.crt`) {
			t.Errorf("%s: the subject is not shown escaped:\n%s", o, out)
		}
		if n := len(regexp.MustCompile(`(?m)^file +client-admin\.crt +system:admin `).FindAllString(out, -1)); n != 1 {
			t.Errorf("%s: %d client-admin rows, want 1", o, n)
		}
		// The endpoint's certificate is there too, escaped.
		if !regexp.MustCompile(`(?m)^endpoint +` + regexp.QuoteMeta(addr) + ` +evil\\x1b\[2J`).MatchString(out) {
			t.Errorf("%s: no escaped endpoint row for %s:\n%s", o, addr, out)
		}
	}

	// Errors: a file name with an escape sequence and a forged hint line.
	name := filepath.Join(t.TempDir(), "x\x1b[31mred\nk3scert: hint: all is well")
	r = cliRun(t, bin, nil, "kubeconfig", "refresh", "-d", dataDir, name)
	if r.code != 3 || unsafeOut.MatchString(r.stderr) || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, `x\x1b[31mred\nk3scert: hint: all is well`) {
		t.Errorf("error output not escaped to one line (exit %d):\n%q", r.code, r.stderr)
	}
}

// A permission-denied data dir is reported as permission denied with the
// run-as-root hint, not as "not a k3s data dir?". The test runs the binary
// as nobody (the tests run as root, whom modes do not stop).
func TestPermissionDeniedDataDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the binary as another user; as a non-root user the data dir of a root node is denied anyway")
	}
	// A world-traversable place for the binary and the node.
	top, err := os.MkdirTemp("", "k3scert-perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(top, "k3scert")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(top, "data")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileCurrent}, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dataDir, 0o711); err != nil { // enter yes, list no ...
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dataDir, "server"), 0o700); err != nil { // ... server/ no
		t.Fatal(err)
	}
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	r := cliRun(t, bin, nobody, "check", "-d", dataDir, "--no-endpoints", "--secret", "none")
	if r.code != 3 || !strings.Contains(r.stderr, "permission denied") || strings.Contains(r.stderr, "neither server/tls nor agent/") ||
		!strings.Contains(r.stderr, "k3scert: hint: run k3scert as root") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// Flag values out of range are usage errors (exit 3) before anything is
// read: nothing on stdout.
func TestFlagValuesValidated(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	base := []string{"-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--no-endpoints", "--secret", "none"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"check", "--at", "+106752d"}, `--at "+106752d": out of range`},
		{[]string{"check", "--at", "+1000000w"}, `out of range`},
		{[]string{"check", "--at", "+NaNd"}, `"NaN" is not a number of days or weeks`},
		{[]string{"check", "--at", "-Infd"}, `"Inf" is not a number of days or weeks`},
		{[]string{"forecast", "--from", "+NaNd"}, `--from "+NaNd"`},
		{[]string{"forecast", "--to", "+99999999d"}, `--to "+99999999d": out of range`},
		{[]string{"forecast", "--validity-days", "-1"}, `--validity-days -1: must not be negative`},
		{[]string{"forecast", "-o", "table2"}, `unknown output format "table2"`},
		{[]string{"check", "--secret", "bogus"}, `--secret "bogus": want one of auto, api, datastore, none`},
		{[]string{"check", "--supervisor-port", "70000"}, `--supervisor-port 70000: a TCP port is 1-65535`},
		{[]string{"check", "--apiserver-port", "-1"}, `--apiserver-port -1: a TCP port is 1-65535`},
		{[]string{"check", "--endpoint", "127.0.0.1:70000"}, `--endpoint "127.0.0.1:70000": a TCP port is 1-65535`},
		{[]string{"check", "--timeout", "-1s"}, `--timeout -1s: must not be negative`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			// The command, then the common flags, then the one under test
			// (the last value of a flag wins).
			args := append(append([]string{tt.args[0]}, base...), tt.args[1:]...)
			r := cliRun(t, bin, nil, args...)
			if r.code != 3 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) || !strings.HasPrefix(r.stderr, "k3scert: error: ") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 3 and %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
}

// The deprecated --kubeconfig still works, says it is deprecated, and
// means the same as --compare-kubeconfig.
func TestCompareKubeconfigAlias(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	base := []string{"check", "--at", inputAt, "-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--no-endpoints", "--secret", "none", "-o", "json"}
	missing := filepath.Join(t.TempDir(), "gone.yaml")
	neu := cliRun(t, bin, nil, append(base, "--compare-kubeconfig", missing)...)
	old := cliRun(t, bin, nil, append(base, "--kubeconfig", missing)...)
	if neu.stdout != old.stdout || neu.code != old.code {
		t.Errorf("--kubeconfig (exit %d) and --compare-kubeconfig (exit %d) differ", old.code, neu.code)
	}
	if !strings.Contains(old.stderr, "--kubeconfig has been deprecated, use --compare-kubeconfig") || neu.stderr != "" {
		t.Errorf("deprecation notice: old %q, new %q", old.stderr, neu.stderr)
	}
	if !strings.Contains(neu.stdout, `"not_found"`) && !strings.Contains(neu.stdout, "(not_found)") {
		t.Errorf("a missing --compare-kubeconfig is not not_found:\n%s", neu.stdout)
	}
	// check --config MISSING: not_found, not bad_kubeconfig.
	r := cliRun(t, bin, nil, "check", "--at", inputAt, "-d", dataDir, "--admin-kubeconfig", kc, "--config", missing, "--no-endpoints", "--secret", "none")
	if !strings.Contains(r.stdout, "gone.yaml") || !strings.Contains(r.stdout, "(not_found)") || strings.Contains(r.stdout, "bad_kubeconfig") {
		t.Errorf("--config MISSING:\n%s", r.stdout)
	}
	// Completion offers the enum values.
	for flag, want := range map[string]string{"--secret": "datastore", "-o": "wide", "--profile": "v1.19+", "--program": "rke2"} {
		r := cliRun(t, bin, nil, "__complete", "check", flag, "")
		if r.code != 0 || !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("completion of %s lacks %s:\n%s", flag, want, r.stdout)
		}
	}
	r = cliRun(t, bin, nil, "__complete", "forecast", "-o", "")
	if !strings.Contains(r.stdout, "text\n") {
		t.Errorf("forecast -o completion:\n%s", r.stdout)
	}
	// serve never mints: it completes its own --secret values.
	r = cliRun(t, bin, nil, "__complete", "serve", "--secret", "")
	if !strings.Contains(r.stdout, "serviceaccount\n") || strings.Contains(r.stdout, "api\n") || strings.Contains(r.stdout, "datastore\n") {
		t.Errorf("serve --secret completion:\n%s", r.stdout)
	}
	r = cliRun(t, bin, nil, "check", "--help")
	if !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--compare-kubeconfig") || strings.Contains(r.stdout, "  --kubeconfig") {
		t.Errorf("check --help:\n%s", r.stdout)
	}
}

// A damaged PEM block in front of a good one: encoding/pem used to skip it
// silently, so client-admin.crt = [damaged leaf][server CA] was judged as
// if the CA were the admin certificate. Now the file is a bad_pem finding
// and nothing from it stands in for the leaf.
func TestBadBase64LeafIsAFinding(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	tlsDir := filepath.Join(dataDir, "server", "tls")
	leaf, err := os.ReadFile(filepath.Join(tlsDir, "client-admin.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(tlsDir, "client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(leaf), "\n")
	lines[3] = "!!" + lines[3][2:] // bad base64 inside the first block
	if err := os.WriteFile(filepath.Join(tlsDir, "client-admin.crt"), []byte(strings.Join(lines, "\n")+string(ca)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := cliRun(t, bin, nil, "check", "--at", inputAt, "-d", dataDir, "--admin-kubeconfig", kc, "--config", cfg, "--no-endpoints", "--secret", "none", "-o", "json")
	var rep struct {
		Certificates []struct{ Location, Subject string }
		Findings     []struct{ Code, Location, Message string }
		Summary      struct{ ExitCode int }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	admin := filepath.Join(tlsDir, "client-admin.crt")
	for _, c := range rep.Certificates {
		if c.Location == admin {
			t.Errorf("a certificate from the damaged file is still reported: %s", c.Subject)
		}
	}
	found := false
	for _, f := range rep.Findings {
		if f.Code == "K3C900" && f.Location == admin && strings.Contains(f.Message, "bad PEM encoding") && strings.HasSuffix(f.Message, "(bad_pem)") {
			found = true
		}
	}
	if !found || rep.Summary.ExitCode == 0 || r.code != rep.Summary.ExitCode {
		t.Errorf("no bad_pem finding on %s (exit %d):\n%s", admin, r.code, r.stdout)
	}
}

// forecast on a healthy node says OK and exits 0; with the admin
// kubeconfig unreadable (a directory), or no copy of the listener
// certificate at all, it says UNKNOWN and exits 3, never OK.
func TestForecastUnknownWhenBlind(t *testing.T) {
	bin := k3scertBin(t)
	_, dataDir, kc, cfg := inputNode(t)
	base := []string{"forecast", "--from", inputAt, "-d", dataDir, "--config", cfg, "--no-endpoints", "--secret", "none", "--to", "2025-03-01"}
	okLine := regexp.MustCompile(`(?m)^OK  no lock-out`)

	r := cliRun(t, bin, nil, append(base, "--admin-kubeconfig", kc)...)
	if r.code != 0 || !okLine.MatchString(r.stdout) {
		t.Fatalf("healthy node: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	dir := t.TempDir()
	r = cliRun(t, bin, nil, append(base, "--admin-kubeconfig", dir)...)
	if r.code != 3 || okLine.MatchString(r.stdout) || !strings.Contains(r.stdout, "UNKNOWN  could not read what decides the lock-out") ||
		!strings.Contains(r.stdout, "the kubeconfig "+dir) {
		t.Errorf("admin kubeconfig a directory: exit %d\n%s", r.code, r.stdout)
	}
	r = cliRun(t, bin, nil, append(base, "--admin-kubeconfig", dir, "-o", "json")...)
	if r.code != 3 || !strings.Contains(r.stdout, `"unknown": [`) {
		t.Errorf("json: exit %d\n%s", r.code, r.stdout)
	}
	// check says UNKNOWN too (nothing critical on this node).
	r = cliRun(t, bin, nil, "check", "--at", inputAt, "-d", dataDir, "--config", cfg, "--no-endpoints", "--secret", "none", "--admin-kubeconfig", dir)
	if r.code != 3 || !strings.Contains(r.stdout, "status: UNKNOWN (exit 3)") {
		t.Errorf("check: exit %d\n%s", r.code, r.stdout)
	}

	if err := os.Remove(filepath.Join(dataDir, "server", "tls", "dynamic-cert.json")); err != nil {
		t.Fatal(err)
	}
	r = cliRun(t, bin, nil, append(base, "--admin-kubeconfig", kc)...)
	if r.code != 3 || okLine.MatchString(r.stdout) || !strings.Contains(r.stdout, "the listener certificate: no copy found") {
		t.Errorf("no listener copy: exit %d\n%s", r.code, r.stdout)
	}
}

// blindSpots: read failures of the listener copies, the secret and a
// kubeconfig are blind spots; a damaged file under server/tls or a
// kubeconfig naming a missing file is a finding, not blindness.
func TestBlindSpots(t *testing.T) {
	inv := &source.Inventory{Problems: []source.Problem{
		{Source: source.DynamicCert, Location: "/d/dynamic-cert.json", Reason: source.ReasonNotRegular, Detail: "a FIFO"},
		{Source: source.Secret, Location: "secret kube-system/k3s-serving", Reason: source.ReasonSecret, Detail: "API: refused"},
		{Source: source.Kubeconfig, Location: "/etc/k3s.yaml", Reason: source.ReasonPermission, Detail: "denied"},
		{Source: source.Kubeconfig, Location: "/etc/k3s.yaml (user default)", Reason: source.ReasonNotFound, Detail: "references /x.crt: missing"},
		{Source: source.File, Location: "/d/server/tls/client-admin.crt", Reason: source.ReasonBadPEM, Detail: "bad PEM"},
	}}
	got := blindSpots(inv)
	want := []string{
		"the listener certificate /d/dynamic-cert.json: a FIFO (not_regular_file)",
		"the listener secret kube-system/k3s-serving: API: refused (secret_unavailable)",
		"the kubeconfig /etc/k3s.yaml: denied (permission_denied)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if blindSpots(&source.Inventory{}) != nil || blindSpots(nil) != nil {
		t.Error("blind spots without problems")
	}
}
