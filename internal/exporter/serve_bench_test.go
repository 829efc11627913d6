package exporter_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkServeProcess measures `k3scert serve` as a process, per data dir
// size (issue 11's exporter budgets): start → first full scrape
// (first-scrape-ms: from exec until /metrics answers with the scanned
// certificates; first-cpu-ms: the CPU time the process used until then,
// steadier than wall time on a shared machine), a warm scrape per op (text format, gzip, as Prometheus
// asks), and the process's peak RSS (VmHWM, MiB). It needs the binary:
// K3SCERT_BENCH_BIN=bin/k3scert (skipped, saying so, without it).
//
//	K3SCERT_BENCH_BIN=$PWD/bin/k3scert K3SCERT_BENCH_SIZES=30,1000,10000,30000 \
//	  go test -run '^$' -bench ServeProcess -benchtime 20x ./internal/exporter/
func BenchmarkServeProcess(b *testing.B) {
	bin := os.Getenv("K3SCERT_BENCH_BIN")
	if bin == "" {
		b.Skip("set K3SCERT_BENCH_BIN to a k3scert binary to measure serve as a process")
	}
	for _, total := range benchSizes {
		b.Run(fmt.Sprintf("certs=%d", total), func(b *testing.B) {
			n, hosts, regCerts := benchNode(b, total)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "serve", "-d", n.dataDir, "--admin-kubeconfig", n.kubeconfig, "--config", n.config,
				"--no-endpoints", "--secret", "none", "--listen", "127.0.0.1:0", "--interval", "1h", "--node-name", "bench")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
			addrRE := regexp.MustCompile(`serving http://(127\.0\.0\.1:\d+)/metrics`)
			sc := bufio.NewScanner(stderr)
			var addr string
			for sc.Scan() {
				if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
					addr = m[1]
					break
				}
			}
			if addr == "" {
				b.Fatal("serve did not print its address")
			}
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			cl := &http.Client{Timeout: time.Minute}
			scrape := func() string {
				req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
				req.Header.Set("Accept", "text/plain;version=0.0.4")
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := cl.Do(req)
				if err != nil {
					return ""
				}
				defer resp.Body.Close()
				var r io.Reader = resp.Body
				if resp.Header.Get("Content-Encoding") == "gzip" { // asked for it: not decompressed by the transport
					zr, err := gzip.NewReader(resp.Body)
					if err != nil {
						return ""
					}
					r = zr
				}
				body, _ := io.ReadAll(r)
				return string(body)
			}
			var first time.Duration
			var series int
			var firstCPU time.Duration
			for {
				if body := scrape(); strings.Contains(body, `k3scert_last_scan_success{node="bench"} 1`) {
					first = time.Since(start)
					firstCPU = cpuTime(b, cmd.Process.Pid)
					series = strings.Count(body, "\nk3scert_certificate_not_after_seconds{")
					if got := strings.Count(body, `source="registry",`); got != regCerts*(2+4) {
						var errs []string
						for _, l := range strings.Split(body, "\n") {
							if strings.Contains(l, "error") && !strings.HasSuffix(l, " 0") && !strings.HasPrefix(l, "#") {
								errs = append(errs, l)
							}
						}
						b.Fatalf("%d registry series; the data dir %s holds %d registry certificates in %d bundles (6 series each); %d series in all; %q", got, n.dataDir, regCerts, hosts, series, errs)
					}
					break
				}
				if time.Since(start) > 2*time.Minute {
					b.Fatal("no full scrape within 2 minutes")
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if scrape() == "" {
					b.Fatal("scrape failed")
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(first.Microseconds())/1000, "first-scrape-ms")
			b.ReportMetric(float64(firstCPU.Microseconds())/1000, "first-cpu-ms")
			b.ReportMetric(float64(series), "series")
			b.ReportMetric(vmHWM(b, cmd.Process.Pid), "peak-RSS-MiB")
		})
	}
}

// cpuTime is the CPU time (user + system) pid has used so far: on a
// shared machine it is a steadier measure of the work than wall time.
func cpuTime(b *testing.B, pid int) time.Duration {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are fields 14 and 15 of stat(5), in clock ticks (100 Hz).
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((ut + stt) * float64(10*time.Millisecond))
}

// vmHWM is the peak resident set size of pid, in MiB.
func vmHWM(b *testing.B, pid int) float64 {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
