package kube

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
)

// A FIFO in place of server-ca.crt (or the client CA) is refused at once,
// never waited on: NodeOptions runs for check, forecast, serve and rotate.
func TestNodeOptionsRefusesFIFO(t *testing.T) {
	dataDir := t.TempDir()
	tls := filepath.Join(dataDir, "server", "tls")
	if err := os.MkdirAll(tls, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(tls, "server-ca.crt"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NodeOptions(dataDir, k3s.K3s, k3s.DefaultPorts(k3s.K3s), time.Unix(0, 0), time.Second)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("server-ca.crt as a FIFO: %v, want not a regular file", err)
	}
}
