package exporter_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// benchSizes are the numbers of certificates under the data dir;
// K3SCERT_BENCH_SIZES=30,1000,10000,30000 overrides them (the issue 11
// budgets name N=30, 10k and 30k).
var benchSizes = func() []int {
	out := []int{30, 1000, 10000}
	if env := os.Getenv("K3SCERT_BENCH_SIZES"); env != "" {
		out = nil
		for _, f := range strings.Split(env, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
				out = append(out, n)
			}
		}
	}
	return out
}()

// benchBundle is the number of CA certificates per registry bundle file
// (K3SCERT_BENCH_BUNDLE overrides it; 1 gives one file and one registry
// directory per certificate, up to source.MaxRegistryFiles files). Every
// certificate gets its series either way.
var benchBundle = func() int {
	if n, err := strconv.Atoi(os.Getenv("K3SCERT_BENCH_BUNDLE")); err == nil && n > 0 {
		return n
	}
	return 100
}()

// benchNode is a generated K3s node (profile current) whose data dir holds
// about total certificates: K3s's own files plus registry CA bundles, the
// one place on a real node that holds many certificates. A scan reads only
// the files K3s's table names plus containerd's registry configuration
// (agent/etc/containerd/certs.d/<host>/ca.crt, see source.RegistryCerts),
// so the extra certificates are H = ceil(extra/benchBundle) registry hosts,
// each with a ca.crt bundle of benchBundle self-signed CAs (a corporate
// trust bundle: ~560 bytes per CA, 100 per file = ~56 KiB, far under the
// 1 MiB read limit). It returns the node, H and the number of registry
// certificates: the exporter exports every certificate of a registry
// bundle (6 series each: not_after, not_before, 4 statuses). With K3SCERT_BENCH_DIR set the node is
// written to $K3SCERT_BENCH_DIR/<total> and kept.
func benchNode(b *testing.B, total int) (node, int, int) {
	b.Helper()
	var n node
	if keep := os.Getenv("K3SCERT_BENCH_DIR"); keep != "" {
		root := filepath.Join(keep, strconv.Itoa(total))
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		n = genNodeAt(b, root, k3s.ProfileCurrent, t0)
	} else {
		// A directory of its own, not b.TempDir: a benchmark function runs
		// more than once, and each run must see only its own node.
		root, err := os.MkdirTemp("", "k3scert-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(root) })
		n = genNodeAt(b, root, k3s.ProfileCurrent, t0)
	}
	base, hosts := 0, 0
	for _, d := range []string{"server/tls", "agent"} {
		_ = filepath.WalkDir(filepath.Join(n.dataDir, d), func(p string, _ os.DirEntry, _ error) error {
			if strings.HasSuffix(p, ".crt") {
				if b, err := os.ReadFile(p); err == nil {
					base += bytes.Count(b, []byte("-----BEGIN CERTIFICATE-----"))
				}
			}
			return nil
		})
	}
	extra := total - base
	if extra <= 0 {
		return n, 0, 0
	}
	key, err := pki.NewECKey()
	if err != nil {
		b.Fatal(err)
	}
	for h := 0; h*benchBundle < extra; h++ {
		var bundle []*x509.Certificate
		for i := h * benchBundle; i < extra && i < (h+1)*benchBundle; i++ {
			ca, err := pki.NewCA(fmt.Sprintf("bench-registry-ca-%05d", i), key, t0.Add(-time.Hour), t0.Add(pki.Days(30+i%4000)))
			if err != nil {
				b.Fatal(err)
			}
			bundle = append(bundle, ca)
		}
		dir := filepath.Join(n.dataDir, k3s.RegistryCertsDir, fmt.Sprintf("registry-%05d.example:5000", h))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pki.EncodeCerts(bundle...), 0o644); err != nil {
			b.Fatal(err)
		}
		hosts++
	}
	return n, hosts, extra
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkExporter measures, per data dir size: one scan (scan-ms), the
// heap the exporter keeps between scans (heap-MB, after GC), and, per
// op, a scrape of /metrics over HTTP (text format, gzip as Prometheus
// asks) — which never rescans.
func BenchmarkExporter(b *testing.B) {
	for _, total := range benchSizes {
		b.Run(fmt.Sprintf("certs=%d", total), func(b *testing.B) {
			n, hosts, _ := benchNode(b, total)
			before := heapInUse()
			e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Now: fixedClock(t0.Add(time.Hour))})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := e.Scan(context.Background()); err != nil {
				b.Fatal(err)
			}
			scan := time.Since(start)
			kept := heapInUse() - before
			r, _ := e.Report()
			srv := httptest.NewServer(e.Handler(nil))
			defer srv.Close()
			var size int64
			scrape := func() {
				req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
				req.Header.Set("Accept", "text/plain;version=0.0.4")
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := srv.Client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				size, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("/metrics: %d", resp.StatusCode)
				}
			}
			scrape()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				scrape()
			}
			b.StopTimer()
			if e.Scans() != 1 {
				b.Fatalf("%d scans; scrapes must not rescan", e.Scans())
			}
			series, registry := 0, 0 // certificates with series: every registry entry, index 0 elsewhere
			for _, c := range r.Certificates {
				if c.Source == "registry" || c.Index == 0 {
					series++
				}
				if c.Source == "registry" && c.Index == 0 {
					registry++
				}
			}
			if len(r.Certificates) < total || registry != hosts {
				b.Fatalf("%d certificates scanned, %d registry bundles; the data dir holds at least %d certificates, %d bundles", len(r.Certificates), registry, total, hosts)
			}
			b.ReportMetric(float64(len(r.Certificates)), "certs")
			b.ReportMetric(float64(scan.Microseconds())/float64(len(r.Certificates)), "scan-µs/cert")
			b.ReportMetric(float64(series), "series")
			b.ReportMetric(float64(scan.Milliseconds()), "scan-ms")
			b.ReportMetric(float64(kept)/(1<<20), "heap-MB")
			b.ReportMetric(float64(size)/1024, "gzip-KiB")
		})
	}
}
