package source

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ReadFile refuses what is not a small regular file, without blocking and
// without reading it, and its errors classify to stable reasons.
func TestReadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.crt")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.crt")
	if err := os.WriteFile(huge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, 1<<30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.crt")
	if err := os.WriteFile(small, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.crt")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tests := []struct {
		path   string
		reason Reason
		is     error
		detail string
	}{
		{fifo, ReasonNotRegular, ErrNotRegular, "not a regular file (a FIFO)"},
		{dir, ReasonNotRegular, ErrNotRegular, "not a regular file (a directory)"},
		{"/dev/null", ReasonNotRegular, ErrNotRegular, "not a regular file (a character device)"},
		{sock, ReasonNotRegular, syscall.ENXIO, "no such device or address"},
		{huge, ReasonTooLarge, ErrTooLarge, "1073741824 bytes, over the 1048576-byte limit"},
		{filepath.Join(dir, "nope"), ReasonNotFound, fs.ErrNotExist, "no such file"},
	}
	for _, tt := range tests {
		_, err := ReadFile(tt.path)
		if err == nil || !errors.Is(err, tt.is) || classifyReadError(err) != tt.reason || !strings.Contains(err.Error(), tt.detail) {
			t.Errorf("%s: err %v, reason %s; want %s and %q", tt.path, err, classifyReadError(err), tt.reason, tt.detail)
		}
	}
	b, fi, err := ReadFileInfo(small)
	if err != nil || string(b) != "x" || fi.Mode().Perm() != 0o640 {
		t.Errorf("small: %q %v %v", b, fi, err)
	}
}

// A kubeconfig that references a FIFO: a not_regular_file problem (kubectl
// would hang on it), found with a stat that never blocks.
func TestKubeconfigReferencesFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "ca.crt"), 0o600); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(dir, "kc.yaml")
	y := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: ca.crt}
users:
- name: u
  user: {token: x}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	if err := os.WriteFile(kc, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := ReadAll(context.Background(), Kubeconfigs{Files: []KubeconfigFile{{Path: kc, Copy: true}}})
	if len(inv.Problems) != 1 || inv.Problems[0].Reason != ReasonNotRegular || !strings.Contains(inv.Problems[0].Detail, "a FIFO") {
		t.Errorf("problems: %+v", inv.Problems)
	}
}
