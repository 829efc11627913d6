package check_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// TestBadInput: every kind of broken input gives one clear K3C900 (K3C301
// for a wrong key) naming the file, never a panic, and the rest of the scan
// goes on.
//
// The tests run as root, so chmod 000 blocks nothing; "unreadable" is
// exercised with what root cannot read as a certificate either: a FIFO (an
// open for reading would block forever), a directory named like a
// certificate, and a symlink to a directory.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		file   string // relative to the data dir; the finding's location
		code   string
		reason source.Reason
		make   func(t *testing.T, n *node, p string)
	}{
		{"corrupt PEM", "server/tls/client-admin.crt", "K3C900", source.ReasonBadPEM, func(t *testing.T, n *node, p string) {
			write(t, p, "-----BEGIN CERTIFICATE-----\nMIIB!!!not base64\n-----END CERTIFICATE-----\n")
		}},
		{"not PEM at all", "server/tls/client-scheduler.crt", "K3C900", source.ReasonBadPEM, func(t *testing.T, n *node, p string) {
			write(t, p, "hello\n")
		}},
		{"empty certificate", "server/tls/client-controller.crt", "K3C900", source.ReasonBadPEM, func(t *testing.T, n *node, p string) {
			write(t, p, "")
		}},
		{"DER garbage in a PEM block", "server/tls/client-auth-proxy.crt", "K3C900", source.ReasonBadCert, func(t *testing.T, n *node, p string) {
			write(t, p, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}},
		{"truncated certificate", "server/tls/client-kube-apiserver.crt", "K3C900", source.ReasonBadPEM, func(t *testing.T, n *node, p string) {
			b := read(t, p)
			write(t, p, string(b[:len(b)/3]))
		}},
		{"corrupt key", "server/tls/client-admin.key", "K3C900", source.ReasonBadKey, func(t *testing.T, n *node, p string) {
			write(t, p, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")
		}},
		{"truncated dynamic-cert.json", "server/tls/dynamic-cert.json", "K3C900", source.ReasonBadJSON, func(t *testing.T, n *node, p string) {
			b := read(t, p)
			write(t, p, string(b[:len(b)/2]))
		}},
		{"dynamic-cert.json without tls.crt", "server/tls/dynamic-cert.json", "K3C900", source.ReasonBadCert, func(t *testing.T, n *node, p string) {
			write(t, p, `{"kind":"Secret","data":{}}`)
		}},
		{"key of another certificate", "server/tls/client-admin.key", "K3C301", "", func(t *testing.T, n *node, p string) {
			write(t, p, string(read(t, n.Path("server/tls/serving-kube-apiserver.key"))))
		}},
		{"symlink loop", "server/tls/client-admin.crt", "K3C900", source.ReasonSymlinkLoop, func(t *testing.T, n *node, p string) {
			rm(t, p)
			other := filepath.Join(filepath.Dir(p), "loop-b.crt")
			if err := os.Symlink(other, p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(p, other); err != nil {
				t.Fatal(err)
			}
		}},
		{"100 MB file", "server/tls/client-scheduler.crt", "K3C900", source.ReasonTooLarge, func(t *testing.T, n *node, p string) {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(100 << 20); err != nil { // sparse: no disk used
				t.Fatal(err)
			}
		}},
		{"FIFO in place of a certificate", "server/tls/client-controller.crt", "K3C900", source.ReasonNotRegular, func(t *testing.T, n *node, p string) {
			rm(t, p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"FIFO in place of dynamic-cert.json", "server/tls/dynamic-cert.json", "K3C900", source.ReasonNotRegular, func(t *testing.T, n *node, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory named like a certificate", "server/tls/client-admin.crt", "K3C900", source.ReasonNotRegular, func(t *testing.T, n *node, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a directory", "server/tls/client-auth-proxy.crt", "K3C900", source.ReasonNotRegular, func(t *testing.T, n *node, p string) {
			rm(t, p)
			if err := os.Symlink(n.Path("server/tls/etcd"), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", "server/tls/client-scheduler.crt", "K3C900", source.ReasonNotFound, func(t *testing.T, n *node, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(n.Path("server/tls/nowhere.crt"), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage kubeconfig", "k3s.yaml", "K3C900", source.ReasonBadYAML, func(t *testing.T, n *node, p string) {
			write(t, n.KC, "apiVersion: [\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, k3s.ProfileCurrent, t0)
			p := n.Path(tt.file)
			if tt.file == "k3s.yaml" {
				p = n.KC
			}
			tt.make(t, n, p)
			r := n.Check(t0)
			// One finding at the file itself (a symlink loop has two
			// files, a dangling certificate is also named by the
			// kubeconfig that references it).
			var fs []report.Finding
			for _, f := range findings(r, tt.code) {
				if f.Location == p || strings.HasPrefix(f.Location, p+" ") {
					fs = append(fs, f)
				}
			}
			if len(fs) != 1 {
				dump(t, r)
				t.Fatalf("%d %s findings at %s, want 1", len(fs), tt.code, p)
			}
			f := fs[0]
			if !strings.Contains(f.Message, filepath.Base(p)) || f.Remedy == "" {
				t.Errorf("message does not name the file: %+v", f)
			}
			if tt.reason != "" && !strings.Contains(f.Message, "("+string(tt.reason)+")") {
				t.Errorf("message %q, want reason %s", f.Message, tt.reason)
			}
			// The rest of the scan went on: the other certificates are there.
			found := 0
			for _, c := range r.Certificates {
				if c.Index == 0 && (strings.HasSuffix(c.Location, "server/tls/serving-kube-apiserver.crt") || strings.HasSuffix(c.Location, "agent/client-kubelet.crt")) {
					found++
				}
			}
			if found != 2 || len(r.Certificates) < 25 {
				t.Errorf("scan did not go on: %d certificates", len(r.Certificates))
			}
			if r.Summary.ExitCode == report.ExitOK {
				t.Errorf("exit 0 with a %s", tt.code)
			}
		})
	}
}

// TestMissingDataDir: no data dir (or one that is not a K3s data dir) is an
// error that says so, not a report: exit 3 in the CLI.
func TestMissingDataDir(t *testing.T) {
	tmp := t.TempDir()
	write(t, filepath.Join(tmp, "file"), "x")
	tests := []struct {
		name, dir, msg string
	}{
		{"missing", filepath.Join(tmp, "nope"), "no such file or directory"},
		{"a file", filepath.Join(tmp, "file"), "is not a directory"},
		{"empty dir", tmp, "has neither server/tls nor agent/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := check.Run(context.Background(), check.Options{DataDir: tt.dir, At: t0, NoEndpoint: true})
			if !errors.Is(err, check.ErrNoDataDir) || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func rm(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// TestForeignFilesIgnored: files the table does not name are not K3s's
// and are never opened, even next to K3s's own (a FIFO would show up as a
// K3C900 if it were).
func TestForeignFilesIgnored(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	for _, rel := range []string{"server/tls/fifo.crt", "server/tls/tls-1700000000/client-admin.crt", "agent/containerd/snap/etc/ssl/certs/x.pem"} {
		p := n.Path(rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := n.Check(t0)
	if r.Summary.ExitCode != report.ExitOK {
		dump(t, r)
		t.Fatalf("exit %d", r.Summary.ExitCode)
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
