package exporter_test

import (
	"context"
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

// benchNode is a generated K3s node with extra leaves, all signed by one
// CA with one key, under server/tls/bench/, so that the data dir holds
// about total certificates (index 0 of each file). With
// K3SCERT_BENCH_DIR set the node is written to $K3SCERT_BENCH_DIR/<total>
// and kept (to run `k3scert serve` on it and read its RSS).
func benchNode(b *testing.B, total int) node {
	b.Helper()
	var n node
	if keep := os.Getenv("K3SCERT_BENCH_DIR"); keep != "" {
		root := filepath.Join(keep, strconv.Itoa(total))
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		n = genNodeAt(b, root, k3s.ProfileCurrent, t0)
	} else {
		n = genNode(b, k3s.ProfileCurrent, t0)
	}
	base := 0
	_ = filepath.WalkDir(filepath.Join(n.dataDir, "server/tls"), func(p string, _ os.DirEntry, _ error) error {
		if strings.HasSuffix(p, ".crt") {
			base++
		}
		return nil
	})
	_ = filepath.WalkDir(filepath.Join(n.dataDir, "agent"), func(p string, _ os.DirEntry, _ error) error {
		if strings.HasSuffix(p, ".crt") {
			base++
		}
		return nil
	})
	extra := total - base
	if extra <= 0 {
		return n
	}
	key, err := pki.NewECKey()
	if err != nil {
		b.Fatal(err)
	}
	ca, err := pki.NewCA("bench-ca", key, t0.Add(-time.Hour), t0.Add(pki.Days(3650)))
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(n.dataDir, "server/tls/bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < extra; i++ {
		leaf, err := pki.SignLeaf(pki.LeafRequest{CN: fmt.Sprintf("bench-%05d", i), NotBefore: t0.Add(-time.Hour),
			NotAfter: t0.Add(pki.Days(30 + i%400))}, key.Public(), ca, key)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("leaf-%05d.crt", i)), pki.EncodeCerts(leaf, ca), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return n
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
			n := benchNode(b, total)
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
			primaries := 0
			for _, c := range r.Certificates {
				if c.Index == 0 {
					primaries++
				}
			}
			b.ReportMetric(float64(primaries), "certs")
			b.ReportMetric(float64(scan.Milliseconds()), "scan-ms")
			b.ReportMetric(float64(kept)/(1<<20), "heap-MB")
			b.ReportMetric(float64(size)/1024, "gzip-KiB")
		})
	}
}
