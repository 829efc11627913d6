package exporter_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/prometheus/client_golang/prometheus"
)

// waitFor polls cond until it holds; the deadline only bounds a hung
// test, it asserts no timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running starts e.Run and returns a stop function that waits for it.
func running(t *testing.T, e *exporter.Exporter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestScrapeNeverRescans and rescans on file changes, debounced.
func TestRescanOnChange(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	var scans atomic.Int64
	e, err := exporter.New(exporter.Options{
		Scan: n.scanFunc(&scans), Dirs: func() []string { return exporter.WatchDirs(n.opts) },
		Interval: time.Hour, Debounce: 300 * time.Millisecond, MaxDelay: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()
	running(t, e)
	waitFor(t, "the first scan", func() bool { s, _ := e.LastScan(); return !s.IsZero() })

	// Scrapes, of the collector and over HTTP, never rescan.
	for i := 0; i < 5; i++ {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		code, body := get(t, srv.URL+"/metrics")
		if code != 200 || !strings.Contains(body, "k3scert_certificate_not_after_seconds{") {
			t.Fatalf("/metrics: %d %.200s", code, body)
		}
		if code, _ := get(t, srv.URL+"/report"); code != 200 {
			t.Fatalf("/report: %d", code)
		}
	}
	if got := scans.Load(); got != 1 {
		t.Fatalf("%d scans after 5 scrapes, want 1", got)
	}

	// A touched certificate file triggers one rescan.
	admin := filepath.Join(n.dataDir, "server/tls/client-admin.crt")
	touch := func(p string) {
		now := time.Now()
		if err := os.Chtimes(p, now, now); err != nil {
			t.Fatal(err)
		}
	}
	touch(admin)
	waitFor(t, "a rescan after touching client-admin.crt", func() bool { return scans.Load() == 2 })

	// A burst of changes in several watched directories is one rescan.
	for i := 0; i < 10; i++ {
		touch(admin)
		touch(filepath.Join(n.dataDir, "server/tls/etcd/client.crt"))
		touch(filepath.Join(n.dataDir, "server/cred/admin.kubeconfig"))
	}
	if err := os.WriteFile(filepath.Join(n.dataDir, "agent", "new.crt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a rescan after a burst", func() bool { return scans.Load() == 3 })
	time.Sleep(3 * 300 * time.Millisecond) // no trailing rescans of the same burst
	if got := scans.Load(); got != 3 {
		t.Errorf("%d scans after one burst, want 3", got)
	}
	// The admin kubeconfig's directory, outside the data dir, is watched.
	touch(n.kubeconfig)
	waitFor(t, "a rescan after touching k3s.yaml", func() bool { return scans.Load() == 4 })
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if got := scans.Load(); got != 4 {
		t.Errorf("%d scans, want 4", got)
	}

	// server/tls replaced as a whole: removed (its watch dies with it; one
	// rescan), then created anew after that rescan. Only the parent's
	// watch sees the new directory; the rescan it triggers watches it,
	// so its changes rescan again without waiting for the interval.
	tlsDir := filepath.Join(n.dataDir, "server/tls")
	if err := os.Rename(tlsDir, tlsDir+".old"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a rescan after server/tls went away", func() bool { return scans.Load() == 5 })
	time.Sleep(3 * 300 * time.Millisecond)
	if err := os.CopyFS(tlsDir, os.DirFS(tlsDir+".old")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a rescan after a new server/tls appeared", func() bool { return scans.Load() == 6 })
	time.Sleep(3 * 300 * time.Millisecond)
	touch(admin)
	waitFor(t, "a rescan after touching a file of the new server/tls", func() bool { return scans.Load() == 7 })
}

// TestRescanOnInterval: without changes, the interval rescans.
func TestRescanOnInterval(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	var scans atomic.Int64
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(&scans), Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	running(t, e)
	waitFor(t, "three scans", func() bool { return scans.Load() >= 3 })
}

func TestHealthzAndReport(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	var now atomic.Pointer[time.Time]
	at := t0.Add(time.Hour)
	now.Store(&at)
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Interval: time.Minute, ScanTimeout: time.Minute,
		Now: func() time.Time { return *now.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler(nil))
	defer srv.Close()

	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before a scan: %d", code)
	}
	if code, _ := get(t, srv.URL+"/report"); code != http.StatusServiceUnavailable {
		t.Errorf("/report before a scan: %d", code)
	}
	if err := e.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, srv.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz after a scan: %d %q", code, body)
	}
	code, body := get(t, srv.URL+"/report")
	if code != 200 || !strings.Contains(body, "<html") || !strings.Contains(body, n.dataDir) {
		t.Errorf("/report: %d %.300s", code, body)
	}
	if strings.Contains(body, "PRIVATE KEY") || strings.Contains(body, "-----BEGIN") {
		t.Error("/report shows PEM material")
	}
	if code, _ := get(t, srv.URL+"/"); code != 200 {
		t.Errorf("/: %d", code)
	}
	if code, _ := get(t, srv.URL+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d", code)
	}
	later := at.Add(time.Hour) // 3 intervals + the scan timeout have passed
	now.Store(&later)
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with a stale scan: %d", code)
	}
}

// TestServeShutdown: Serve answers on a loopback listener and returns,
// with its scheduler stopped and its listener closed, when ctx ends.
func TestServeShutdown(t *testing.T) {
	n := genNode(t, k3s.ProfileCurrent, t0)
	e, err := exporter.New(exporter.Options{Scan: n.scanFunc(nil), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln, nil, 5*time.Second) }()
	url := "http://" + ln.Addr().String()
	waitFor(t, "healthz ok", func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("listener still open after Serve returned")
	}
}
