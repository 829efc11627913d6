package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
)

// lockedBuffer is a goroutine-safe writer for the command's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe runs `k3scert serve` on a loopback port of a generated node,
// scrapes it, and stops it as SIGTERM would (its context ends).
func TestServe(t *testing.T) {
	dir := t.TempDir()
	dataDir, kubeconfig, config := filepath.Join(dir, "data"), filepath.Join(dir, "k3s.yaml"), filepath.Join(dir, "config.yaml")
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dataDir, Profile: k3s.ProfileCurrent, Kubeconfig: kubeconfig, Listener: true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	root := newRoot()
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	root.SetArgs([]string{"serve", "-d", dataDir, "--admin-kubeconfig", kubeconfig, "--config", config,
		"--no-endpoints", "--listen", "127.0.0.1:0", "--interval", "1h", "--node-name", "test-node"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	addrRE := regexp.MustCompile(`serving http://(127\.0\.0\.1:\d+)/metrics`)
	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _ := get("/healthz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never ok:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`k3scert_certificate_not_after_seconds{issuer="CN=k3s-client-ca@`,
		`k3scert_scan_errors_total{node="test-node",reason="not_found"} 0`,
		`k3scert_findings_by_code{code="K3C101",node="test-node"} 0`,
		`k3scert_last_scan_success{node="test-node"} 1`,
		`k3scert_identity_info{mode="none",node="test-node",user=""} 1`,
		`k3scert_build_info{build_date=`,
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get("/report"); code != 200 || !strings.Contains(body, dataDir) {
		t.Errorf("/report: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stderr.String(), "the listener secret is not read (not in a pod and no --api-kubeconfig)") {
		t.Errorf("serve outside a pod without credentials must say the secret is not read:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "k3scert: stopped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("still serving after stop")
	}
}

func TestServeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--interval", "10ms"},
		{"serve", "--program", "k8s"},
		{"serve", "--at", "yesterday-ish"},
		// serve never mints an admin certificate nor opens the datastore.
		{"serve", "--secret", "api"},
		{"serve", "--secret", "datastore"},
		{"serve", "--secret", "kubeconfig"},     // without --api-kubeconfig
		{"serve", "--secret", "serviceaccount"}, // not in a pod
	} {
		root := newRoot()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs(args)
		if err := root.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
