package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/render"
)

// at is the judgement time of every benchmark; the data is generated
// relative to it, so results never depend on the clock.
var at = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// bulkCount is the size of the large benchmark.
const bulkCount = 10000

// bulkSubdir is where the bulk fixture's leaves go, under server/tls: check
// reads the table's files and, whole, the kube-scheduler and
// kube-controller-manager serving-cert directories (source.ServingCertDirs);
// it never walks the data dir, so this is where N arbitrary certificates
// are read.
const bulkSubdir = "kube-scheduler"

// bulkCache names the cached bulk fixture of a size (v2: the kube-scheduler
// layout).
const bulkCache = "bulk2-%d"

// ---- fixtures ------------------------------------------------------------

// genNode writes a full K3s server node (current profile, agent files,
// dynamic-cert.json, k3s.yaml) under dir.
func genNode(dir string) error {
	o := k3sgen.Options{DataDir: filepath.Join(dir, "k3s"), Profile: k3s.ProfileCurrent, Listener: true,
		Kubeconfig: filepath.Join(dir, "k3s.yaml")}
	if _, err := k3sgen.Start(o, at); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.yaml"), nil, 0o600)
}

// genBulk writes a data dir holding n certificates in one directory,
// server/tls/kube-scheduler/NNNNN.crt, one leaf per file, all signed by one CA and
// sharing one ECDSA key (cheap to make; this is a throughput benchmark).
// Expiry dates are spread over two years so every status occurs.
func genBulk(dir string, n int) error {
	tls := filepath.Join(dir, "k3s", "server", "tls")
	if err := os.MkdirAll(filepath.Join(tls, bulkSubdir), 0o700); err != nil {
		return err
	}
	caKey, err := pki.NewECKey()
	if err != nil {
		return err
	}
	ca, err := pki.NewCA(fmt.Sprintf("k3s-server-ca@%d", at.Unix()), caKey, at.Add(-24*time.Hour), at.Add(3650*24*time.Hour))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tls, "server-ca.crt"), pki.EncodeCerts(ca), 0o644); err != nil {
		return err
	}
	key, err := pki.NewECKey()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		na := at.Add(time.Duration((i*37)%730-365)*24*time.Hour + time.Hour) // a year ago .. a year ahead
		c, err := pki.SignLeaf(pki.LeafRequest{CN: fmt.Sprintf("bulk-%05d", i), IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
			Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, NotBefore: na.Add(-365 * 24 * time.Hour), NotAfter: na},
			key.Public(), ca, caKey)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tls, bulkSubdir, fmt.Sprintf("%05d.crt", i)), pki.EncodeCerts(c), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "config.yaml"), nil, 0o600)
}

// cached returns a directory under os.TempDir holding the fixture named
// name, generating it once: a "complete" marker is written last, so an
// interrupted generation is redone.
func cached(tb testing.TB, name string, gen func(string) error) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), "k3scert-bench", name)
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return dir
	}
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := gen(dir); err != nil {
		tb.Fatalf("generate %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "complete"), nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("generated %s in %s", dir, time.Since(start).Round(time.Millisecond))
	return dir
}

// certFiles lists every .crt file of a data dir, sorted, as an operator's
// `find … -name '*.crt'` would.
func certFiles(tb testing.TB, dataDir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dataDir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.HasSuffix(p, ".crt") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// ---- the two contenders ----------------------------------------------------

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// k3scertBin builds cmd/k3scert once per test binary.
func k3scertBin(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "k3scert-bench-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "k3scert")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/k3scert/k3scert/cmd/k3scert").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

func checkArgs(dir string) []string {
	return []string{"check", "-d", filepath.Join(dir, "k3s"), "--admin-kubeconfig", filepath.Join(dir, "k3s.yaml"),
		"--config", filepath.Join(dir, "config.yaml"), "--no-endpoints", "--secret", "none", "--at", at.Format(time.RFC3339), "-o", "json"}
}

// runK3scert execs `k3scert check -o json` once. Exit codes 0–2 are
// verdicts; 3 or a failure to run is an error.
func runK3scert(tb testing.TB, bin, dir string) {
	cmd := exec.Command(bin, checkArgs(dir)...)
	cmd.Stdout = io.Discard
	var ee *exec.ExitError
	if err := cmd.Run(); err != nil && !(errors.As(err, &ee) && ee.ExitCode() <= 2) {
		tb.Fatalf("k3scert: %v", err)
	}
}

// runInProcess is the same check without process start-up.
func runInProcess(tb testing.TB, dir string) {
	r, _, err := check.Run(context.Background(), check.Options{DataDir: filepath.Join(dir, "k3s"),
		AdminKubeconfig: filepath.Join(dir, "k3s.yaml"), ConfigFile: filepath.Join(dir, "config.yaml"), NoEndpoint: true, At: at})
	if err != nil {
		tb.Fatal(err)
	}
	if err := render.Report(io.Discard, r, "json", render.Options{}); err != nil {
		tb.Fatal(err)
	}
}

// opensslLoop is the baseline: what an operator's shell loop does,
//
//	for f in $(find "$DATA_DIR" -name '*.crt'); do openssl x509 -enddate -noout -in "$f"; done
//
// one exec per file, reading the first certificate of each.
func opensslLoop(tb testing.TB, openssl string, files []string) {
	for _, f := range files {
		out, err := exec.Command(openssl, "x509", "-enddate", "-noout", "-in", f).Output()
		if err != nil || !strings.HasPrefix(string(out), "notAfter=") {
			tb.Fatalf("openssl %s: %v %q", f, err, out)
		}
	}
}

func opensslPath(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		tb.Fatalf("openssl not on PATH: the baseline cannot run: %v", err)
	}
	return p
}

// ---- benchmarks --------------------------------------------------------------

func nodeDir(b *testing.B) string {
	return cached(b, "node", genNode)
}

func bulkDir(b *testing.B) string {
	return cached(b, fmt.Sprintf(bulkCache, bulkCount), func(d string) error { return genBulk(d, bulkCount) })
}

// BenchmarkNodeK3scert: `k3scert check -o json` of a full generated node,
// as a command (process start included).
func BenchmarkNodeK3scert(b *testing.B) {
	dir, bin := nodeDir(b), k3scertBin(b)
	b.ResetTimer()
	for range b.N {
		runK3scert(b, bin, dir)
	}
}

// BenchmarkNodeK3scertInProcess: the same check without process start-up.
func BenchmarkNodeK3scertInProcess(b *testing.B) {
	dir := nodeDir(b)
	b.ResetTimer()
	for range b.N {
		runInProcess(b, dir)
	}
}

// BenchmarkNodeOpenssl: the openssl loop over the node's .crt files.
func BenchmarkNodeOpenssl(b *testing.B) {
	dir, openssl := nodeDir(b), opensslPath(b)
	files := certFiles(b, dir)
	b.ReportMetric(float64(len(files)), "files")
	b.ResetTimer()
	for range b.N {
		opensslLoop(b, openssl, files)
	}
}

// BenchmarkBulkK3scert: `k3scert check -o json` of 10,000 certificates.
func BenchmarkBulkK3scert(b *testing.B) {
	dir, bin := bulkDir(b), k3scertBin(b)
	b.ResetTimer()
	for range b.N {
		runK3scert(b, bin, dir)
	}
}

// BenchmarkBulkK3scertInProcess: the same without process start-up.
func BenchmarkBulkK3scertInProcess(b *testing.B) {
	dir := bulkDir(b)
	b.ResetTimer()
	for range b.N {
		runInProcess(b, dir)
	}
}

// BenchmarkBulkOpenssl: the openssl loop over the 10,000 files.
func BenchmarkBulkOpenssl(b *testing.B) {
	dir, openssl := bulkDir(b), opensslPath(b)
	files := certFiles(b, dir)
	b.ReportMetric(float64(len(files)), "files")
	b.ResetTimer()
	for range b.N {
		opensslLoop(b, openssl, files)
	}
}

// ---- a cheap test, so `go test ./bench/` checks the fixtures -------------------

// TestFixtures: the bulk generator and both contenders work on a small
// directory and see the same certificates.
func TestFixtures(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("openssl loop is a POSIX shell idiom")
	}
	dir := t.TempDir()
	if err := genBulk(dir, 20); err != nil {
		t.Fatal(err)
	}
	files := certFiles(t, dir)
	if len(files) != 21 { // 20 leaves + the CA
		t.Fatalf("%d files", len(files))
	}
	opensslLoop(t, opensslPath(t), files)
	r, _, err := check.Run(context.Background(), check.Options{DataDir: filepath.Join(dir, "k3s"),
		AdminKubeconfig: filepath.Join(dir, "k3s.yaml"), ConfigFile: filepath.Join(dir, "config.yaml"), NoEndpoint: true, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Certificates) != 21 {
		t.Errorf("k3scert saw %d certificates, want 21", len(r.Certificates))
	}
	statuses := map[string]int{}
	for _, c := range r.Certificates {
		statuses[c.Status]++
	}
	if statuses["EXPIRED"] == 0 || statuses["OK"] == 0 {
		t.Errorf("statuses %v: the fixture does not spread", statuses)
	}
	if err := genNode(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
