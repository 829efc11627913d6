package datastore

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A FIFO where the node keeps a CA, a client certificate or the encryption
// configuration is refused at once: opening it for reading would otherwise
// wait for a writer forever and hang check, rotate or serve. (The test
// itself would hang, not fail, if the read blocked: go test's -timeout is
// the guard.)
func TestNodeFilesThatAreFIFOsAreRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "server-ca.crt")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdTLS(EtcdOptions{CAFile: fifo, CertFile: fifo, KeyFile: fifo}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("etcd CA as a FIFO: %v, want not a regular file", err)
	}
	if _, err := loadKeyPair(fifo, fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("etcd client certificate as a FIFO: %v, want not a regular file", err)
	}
	if _, err := OpenSQLite(fifo, ""); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("state.db as a FIFO: %v, want not a regular file", err)
	}
	if _, err := LoadEncryption(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("encryption config as a FIFO: %v, want not a regular file", err)
	}
}
