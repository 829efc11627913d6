package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 11's budgets for the product binary. Each benchmark measures its
// baseline in the same run and reports the ratio; with K3SCERT_BENCH_BEFORE
// set it measures that earlier binary too, interleaved with this tree's.
const (
	budgetCheckRatio = 25.0 // check as a process ≥ 25× faster than the openssl loop
	budgetInitMs     = 10.0 // `k3scert --help`: sum of GODEBUG=inittrace=1 clock times
	budgetRSSMiB     = 40.0 // `k3scert --help`: peak RSS
	budgetStrippedMB = 45.0 // binary, stripped (strip --strip-all, like -ldflags=-s -w)
	budgetModules    = 90   // modules linked (`go version -m`, dep lines)
)

// contender is a k3scert binary under measurement.
type contender struct{ name, bin string }

func contenders(b *testing.B) []contender {
	cs := []contender{{"after", k3scertBin(b)}}
	if p := os.Getenv(beforeEnv); p != "" {
		cs = append(cs, contender{"before", p})
	}
	return cs
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkBudgetCheck: `k3scert check -o json` of the full generated node
// as a whole process against the openssl loop over the node's .crt files,
// interleaved (openssl, then each binary, in turn), medians over b.N
// rounds. Metrics: x-<name> is openssl/k3scert (budget ≥ 25).
func BenchmarkBudgetCheck(b *testing.B) {
	dir, openssl := nodeDir(b), opensslPath(b)
	files := certFiles(b, dir)
	cs := contenders(b)
	times := map[string][]float64{}
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		opensslLoop(b, openssl, files)
		times["openssl"] = append(times["openssl"], float64(time.Since(start).Nanoseconds()))
		for j := range cs {
			c := cs[(i+j)%len(cs)] // alternate which binary runs first
			start := time.Now()
			runK3scert(b, c.bin, dir)
			times[c.name] = append(times[c.name], float64(time.Since(start).Nanoseconds()))
		}
	}
	b.StopTimer()
	ossl := median(times["openssl"])
	b.ReportMetric(ossl/1e6, "ms-openssl")
	for _, c := range cs {
		m := median(times[c.name])
		b.ReportMetric(m/1e6, "ms-"+c.name)
		b.ReportMetric(ossl/m, "x-"+c.name)
		b.Logf("%-6s check %.1f ms, openssl loop (%d files) %.1f ms: %.1f× faster (budget ≥ %.0f×)", c.name, m/1e6, len(files), ossl/1e6, ossl/m, budgetCheckRatio)
	}
}

// helpRun is one `k3scert --help` with GODEBUG=inittrace=1.
type helpRun struct {
	initMs float64 // sum of the init clock times
	inits  int
	rssKiB int64 // peak RSS (getrusage ru_maxrss)
}

func runHelp(b *testing.B, bin string) helpRun {
	cmd := exec.Command(bin, "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s --help: %v", bin, err)
	}
	var r helpRun
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		// init internal/bytealg @0.008 ms, 0 ms clock, 0 bytes, 0 allocs
		f := strings.Fields(sc.Text())
		if len(f) < 7 || f[0] != "init" || f[6] != "clock," {
			continue
		}
		ms, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			b.Fatalf("inittrace line %q: %v", sc.Text(), err)
		}
		r.initMs += ms
		r.inits++
	}
	if r.inits == 0 {
		b.Fatalf("%s --help printed no inittrace lines", bin)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rssKiB = ru.Maxrss
	}
	return r
}

// BenchmarkBudgetHelp: `k3scert --help` start-up: package init time (the
// sum GODEBUG=inittrace=1 prints; budget ≤ 10 ms), the number of package
// inits, and peak RSS (budget ≤ 40 MiB); medians over b.N interleaved runs,
// and the fastest run's init sum: init times are wall clock, and on a
// loaded machine preemption only ever adds to them. The baseline is the
// budget itself (printed as a ratio, ≤ 1 is within).
func BenchmarkBudgetHelp(b *testing.B) {
	cs := contenders(b)
	runs := map[string][]helpRun{}
	b.ResetTimer()
	for i := range b.N {
		for j := range cs {
			c := cs[(i+j)%len(cs)]
			runs[c.name] = append(runs[c.name], runHelp(b, c.bin))
		}
	}
	b.StopTimer()
	for _, c := range cs {
		var ms, rss []float64
		for _, r := range runs[c.name] {
			ms = append(ms, r.initMs)
			rss = append(rss, float64(r.rssKiB)/1024)
		}
		mi, mr := median(ms), median(rss)
		lo := ms[0]
		for _, x := range ms {
			lo = min(lo, x)
		}
		b.ReportMetric(mi, "init-ms-"+c.name)
		b.ReportMetric(lo, "init-ms-min-"+c.name)
		b.ReportMetric(float64(runs[c.name][0].inits), "inits-"+c.name)
		b.ReportMetric(mr, "rss-MiB-"+c.name)
		b.Logf("%-6s --help: %d inits, %.1f ms init, fastest run %.1f ms (budget %.0f: ×%.2f, fastest ×%.2f), peak RSS %.1f MiB (budget %.0f: ×%.2f)",
			c.name, runs[c.name][0].inits, mi, lo, budgetInitMs, mi/budgetInitMs, lo/budgetInitMs, mr, budgetRSSMiB, mr/budgetRSSMiB)
	}
}

// BenchmarkBudgetBinary: the size of each binary stripped of symbols and
// DWARF (strip --strip-all on a copy; budget ≤ 45 MB) and the modules it
// links (`go version -m` dep lines; budget ≤ 90). b.N does not matter.
func BenchmarkBudgetBinary(b *testing.B) {
	strip, err := exec.LookPath("strip")
	if err != nil {
		b.Fatalf("strip (binutils) not on PATH: %v", err)
	}
	for _, c := range contenders(b) {
		tmp := filepath.Join(b.TempDir(), "stripped")
		if out, err := exec.Command(strip, "--strip-all", "-o", tmp, c.bin).CombinedOutput(); err != nil {
			b.Fatalf("strip %s: %v\n%s", c.bin, err, out)
		}
		st, err := os.Stat(tmp)
		if err != nil {
			b.Fatal(err)
		}
		full, err := os.Stat(c.bin)
		if err != nil {
			b.Fatal(err)
		}
		out, err := exec.Command("go", "version", "-m", c.bin).Output()
		if err != nil {
			b.Fatalf("go version -m %s: %v", c.bin, err)
		}
		mods := 0
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "dep" {
				mods++
			}
		}
		mb := float64(st.Size()) / 1e6
		b.ReportMetric(mb, "MB-stripped-"+c.name)
		b.ReportMetric(float64(full.Size())/1e6, "MB-"+c.name)
		b.ReportMetric(float64(mods), "modules-"+c.name)
		if b.N > 1 {
			continue // logged once, for the final b.N
		}
		b.Logf("%-6s binary %.1f MB, stripped %.1f MB (budget %.0f: ×%.2f), %d modules (budget %d: ×%.2f)",
			c.name, float64(full.Size())/1e6, mb, budgetStrippedMB, mb/budgetStrippedMB, mods, budgetModules, float64(mods)/budgetModules)
	}
	b.ResetTimer() // the loop measures nothing: the numbers are the metrics
	for range b.N {
		_ = b.N
	}
}
