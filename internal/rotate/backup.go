package rotate

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// backup writes one tar.gz (0600) of server/tls, server/cred, the admin
// kubeconfig and the serving secret as JSON.
func (e *Executor) backup(ctx context.Context) (string, error) {
	var sec *corev1.Secret
	if e.Secrets != nil {
		st, err := e.Secrets(ctx)
		if err != nil {
			return "", fmt.Errorf("open datastore for the secret backup: %w", err)
		}
		sec, err = st.Get(ctx)
		st.Close()
		if err != nil {
			return "", fmt.Errorf("read the serving secret for the backup: %w", err)
		}
	}
	if err := os.MkdirAll(e.Plan.BackupDir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(e.Plan.BackupDir, fmt.Sprintf("rotate-%s.tar.gz", e.now().UTC().Format("20060102T150405Z")))
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(name string, data []byte, mode os.FileMode) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode), Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, root := range e.Plan.BackupRoots {
		base := e.dataPath(root)
		err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) && p == base {
					return filepath.SkipDir
				}
				return err
			}
			if d.IsDir() && strings.HasPrefix(d.Name(), ".k3scert") {
				return filepath.SkipDir // earlier backups
			}
			if d.IsDir() || !d.Type().IsRegular() || isJournal(p) {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(e.Plan.Node.DataDir, p)
			return add("data/"+filepath.ToSlash(rel), b, fi.Mode().Perm())
		})
		if err != nil {
			return "", fmt.Errorf("backup %s: %w", base, err)
		}
	}
	if e.Plan.Kubeconfig != "" {
		if b, err := os.ReadFile(e.Plan.Kubeconfig); err == nil {
			if err := add("kubeconfig", b, modeOf(e.Plan.Kubeconfig, 0o600)); err != nil {
				return "", err
			}
		}
	}
	sj, err := marshalSecret(sec)
	if err != nil {
		return "", err
	}
	if err := add("secret.json", sj, 0o600); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return path, WriteAtomic(path, buf.Bytes(), 0o600)
}

func isJournal(p string) bool { return strings.HasPrefix(filepath.Base(p), JournalName) }

// restore puts every file and the secret back exactly as the backup holds
// them, and removes files the rotation added under the backed-up trees.
func (e *Executor) restore(ctx context.Context, backup string) error {
	f, err := os.Open(backup)
	if err != nil {
		return fmt.Errorf("open backup: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("backup %s: %w", backup, err)
	}
	tr := tar.NewReader(gz)
	keep := map[string]bool{}
	var sj []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("backup %s: %w", backup, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		switch {
		case h.Name == "secret.json":
			sj = b
		case h.Name == "kubeconfig":
			if e.Plan.Kubeconfig != "" {
				if err := WriteAtomic(e.Plan.Kubeconfig, b, os.FileMode(h.Mode)); err != nil {
					return err
				}
			}
		case strings.HasPrefix(h.Name, "data/"):
			p := e.dataPath(strings.TrimPrefix(h.Name, "data/"))
			keep[p] = true
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := WriteAtomic(p, b, os.FileMode(h.Mode)); err != nil {
				return err
			}
		}
	}
	for _, root := range e.Plan.BackupRoots {
		_ = filepath.WalkDir(e.dataPath(root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), ".k3scert") {
				return filepath.SkipDir
			}
			if err == nil && !d.IsDir() && !keep[p] && !isJournal(p) {
				os.Remove(p)
			}
			return nil
		})
	}
	if e.Secrets != nil && sj != nil {
		var s secretJSON
		if err := json.Unmarshal(sj, &s); err != nil {
			return fmt.Errorf("backup %s: secret.json: %w", backup, err)
		}
		st, err := e.Secrets(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if s.Absent {
			return st.Delete(ctx)
		}
		return st.Put(ctx, s.Secret)
	}
	return nil
}
