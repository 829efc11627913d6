package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peerEnv names the x509-certificate-exporter binary (enix) that
// BenchmarkPeer runs beside `k3scert serve`; see README.md.
const peerEnv = "K3SCERT_BENCH_PEER"

// peerMaxEnv is the largest size the peer runs at (default: every size):
// above it only k3scert (and K3SCERT_BENCH_BEFORE) run, e.g. to check
// k3scert's linearity to 30k without enix's minutes per start.
const peerMaxEnv = "K3SCERT_BENCH_PEER_MAX"

// peerSizesEnv lists the certificate counts, comma-separated
// (default 30,10000).
const peerSizesEnv = "K3SCERT_BENCH_PEER_SIZES"

// exporter is one exporter process under measurement.
type exporter struct {
	name   string
	metric string // the per-certificate series: one sample per certificate
	argv   func(dir, addr string) []string
	env    []string
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrape GETs /metrics and counts the lines of the per-certificate series.
func scrape(ctx context.Context, c *http.Client, addr, metric string) (int, time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	prefix := []byte(metric + "{")
	for sc.Scan() {
		if bytes.HasPrefix(sc.Bytes(), prefix) {
			n++
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return n, time.Since(start), sc.Err()
}

// peakRSS reads VmHWM (peak resident set) of a running process, in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// procCPU is the CPU time (user + system, 10 ms ticks) a running process
// has used so far: on a shared machine a steadier measure of the work
// than wall time.
func procCPU(pid int) time.Duration {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are fields 14 and 15 of proc(5), in clock ticks (100 Hz).
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	stt, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((ut + stt) * float64(10*time.Millisecond))
}

// loadavg is the 1, 5 and 15 minute load averages, for the log.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// peerRun is one exporter start on one fixture.
type peerRun struct {
	firstFull time.Duration // process start -> first /metrics with every certificate
	firstCPU  time.Duration // user+system CPU time of the process until then (steadier under load)
	warm      time.Duration // median of 5 scrapes after that
	rssMiB    float64       // peak RSS at the end
}

func runExporter(b *testing.B, e exporter, dir string, want int) peerRun {
	addr := freeAddr(b)
	logf, err := os.CreateTemp(b.TempDir(), e.name+"-*.log")
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	argv := e.argv(dir, addr)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), e.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", e.name, err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	limit := max(3*time.Minute, time.Duration(want)*10*time.Millisecond) // enix needs minutes at 30k under load
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := &http.Client{Timeout: 30 * time.Second}
	var r peerRun
	for {
		n, _, err := scrape(ctx, c, addr, e.metric)
		if err == nil && n >= want {
			r.firstFull = time.Since(start)
			r.firstCPU = procCPU(cmd.Process.Pid)
			break
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("%s: no full scrape (%d of %d certificates, %v) within %s; log:\n%s", e.name, n, want, err, limit, log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var warm []float64
	for range 5 {
		_, d, err := scrape(ctx, c, addr, e.metric)
		if err != nil {
			b.Fatalf("%s warm scrape: %v", e.name, err)
		}
		warm = append(warm, float64(d))
	}
	r.warm = time.Duration(median(warm))
	r.rssMiB = peakRSS(cmd.Process.Pid)
	return r
}

func peerSizes(b *testing.B) []int {
	s := os.Getenv(peerSizesEnv)
	if s == "" {
		s = "30,10000"
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want comma-separated counts", peerSizesEnv, s)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkPeer runs `k3scert serve` and enix's x509-certificate-exporter
// ($K3SCERT_BENCH_PEER) on the same generated certificates (one CA and N
// leaves, one file each), interleaved (the order alternates every round),
// and reports for each size the medians over b.N rounds and the paired
// ratios k3scert/peer (< 1: k3scert is faster or smaller):
//
//	first-ms      process start -> first /metrics holding every certificate
//	first-cpu-ms  CPU time (user+system) the process used until then
//	warm-ms       one /metrics once the cache is full
//	rss-MiB       peak resident set (VmHWM) after those scrapes
//
// With $K3SCERT_BENCH_BEFORE (an older k3scert) that binary runs in the
// same rotation, and the ratios k3scert/before are reported too.
// Without $K3SCERT_BENCH_PEER it skips and says why (`make bench-peer PEER=…`).
func BenchmarkPeer(b *testing.B) {
	peer := os.Getenv(peerEnv)
	if peer == "" {
		b.Skip(peerEnv + " is not set: no x509-certificate-exporter binary to compare with (make bench-peer PEER=path/to/x509-certificate-exporter; bench/README.md says how to get one)")
	}
	if _, err := os.Stat(peer); err != nil {
		b.Fatalf("%s: %v", peerEnv, err)
	}
	bin := k3scertBin(b)
	cfgHome := b.TempDir() // no user config for the peer
	serve := func(bin string) func(dir, addr string) []string {
		return func(dir, addr string) []string {
			return []string{bin, "serve", "-d", filepath.Join(dir, "k3s"), "--admin-kubeconfig", filepath.Join(dir, "k3s.yaml"),
				"--config", filepath.Join(dir, "config.yaml"), "--no-endpoints", "--secret", "none", "--listen", addr, "--interval", "1h"}
		}
	}
	exporters := []exporter{
		{name: "k3scert", metric: "k3scert_certificate_not_after_seconds", argv: serve(bin)},
		{name: "peer", metric: "x509_cert_not_after", env: []string{"XDG_CONFIG_HOME=" + cfgHome}, argv: func(dir, addr string) []string {
			tls := filepath.Join(dir, "k3s", "server", "tls")
			return []string{peer, "--watch-dir", filepath.Join(tls, bulkSubdir), "--watch-file", filepath.Join(tls, "server-ca.crt"), "--listen-address", addr}
		}},
	}
	before := os.Getenv(beforeEnv)
	if before != "" {
		exporters = append(exporters, exporter{name: "before", metric: "k3scert_certificate_not_after_seconds", argv: serve(before)})
	}
	peerMax := 0
	if v := os.Getenv(peerMaxEnv); v != "" {
		var err error
		if peerMax, err = strconv.Atoi(v); err != nil {
			b.Fatalf("%s=%q: want a count", peerMaxEnv, v)
		}
	}
	for _, n := range peerSizes(b) {
		dir := cached(b, fmt.Sprintf(bulkCache, n), func(d string) error { return genBulk(d, n) })
		want := n + 1 // the leaves and the CA
		active := exporters
		if peerMax > 0 && n > peerMax {
			active = nil
			for _, e := range exporters {
				if e.name != "peer" {
					active = append(active, e)
				}
			}
		}
		runs := map[string][]peerRun{}
		for i := range b.N {
			for j := range active {
				e := active[(i+j)%len(active)]
				runs[e.name] = append(runs[e.name], runExporter(b, e, dir, want))
			}
		}
		hasPeer := len(runs["peer"]) > 0
		med := func(name string, f func(peerRun) float64) float64 {
			var xs []float64
			for _, r := range runs[name] {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		first := func(r peerRun) float64 { return float64(r.firstFull) / 1e6 }
		firstCPU := func(r peerRun) float64 { return float64(r.firstCPU) / 1e6 }
		warm := func(r peerRun) float64 { return float64(r.warm) / 1e6 }
		rss := func(r peerRun) float64 { return r.rssMiB }
		for _, m := range []struct {
			unit string
			f    func(peerRun) float64
		}{{"first-ms", first}, {"first-cpu-ms", firstCPU}, {"warm-ms", warm}, {"rss-MiB", rss}} {
			k := med("k3scert", m.f)
			b.ReportMetric(k, fmt.Sprintf("N%d-%s-k3scert", n, m.unit))
			if hasPeer {
				p := med("peer", m.f)
				b.ReportMetric(p, fmt.Sprintf("N%d-%s-peer", n, m.unit))
				b.ReportMetric(k/p, fmt.Sprintf("N%d-%s-ratio", n, m.unit))
			}
			if before != "" {
				o := med("before", m.f)
				b.ReportMetric(o, fmt.Sprintf("N%d-%s-before", n, m.unit))
				b.ReportMetric(k/o, fmt.Sprintf("N%d-%s-ratio-before", n, m.unit))
			}
		}
		if !hasPeer {
			b.Logf("N=%d, load %s: k3scert: first full scrape %.1f ms, CPU to it %.0f ms, warm scrape %.1f ms, peak RSS %.1f MiB (peer not run above %s=%d)",
				n, loadavg(), med("k3scert", first), med("k3scert", firstCPU), med("k3scert", warm), med("k3scert", rss), peerMaxEnv, peerMax)
		} else {
			b.Logf("N=%d, load %s: first full scrape k3scert %.1f ms, peer %.1f ms (×%.2f); CPU to it %.0f / %.0f ms (×%.2f); warm scrape %.1f / %.1f ms (×%.2f); peak RSS %.1f / %.1f MiB (×%.2f)",
				n, loadavg(), med("k3scert", first), med("peer", first), med("k3scert", first)/med("peer", first),
				med("k3scert", firstCPU), med("peer", firstCPU), med("k3scert", firstCPU)/med("peer", firstCPU),
				med("k3scert", warm), med("peer", warm), med("k3scert", warm)/med("peer", warm),
				med("k3scert", rss), med("peer", rss), med("k3scert", rss)/med("peer", rss))
		}
		if before != "" {
			b.Logf("N=%d: before %s: first full scrape %.1f ms (k3scert/before ×%.2f), CPU to it %.0f ms (×%.2f), warm %.1f ms (×%.2f), peak RSS %.1f MiB (×%.2f)",
				n, before, med("before", first), med("k3scert", first)/med("before", first),
				med("before", firstCPU), med("k3scert", firstCPU)/med("before", firstCPU),
				med("before", warm), med("k3scert", warm)/med("before", warm),
				med("before", rss), med("k3scert", rss)/med("before", rss))
		}
	}
}
