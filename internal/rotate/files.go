package rotate

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/k3scert/k3scert/internal/jsonl"
)

func dirOf(p string) string { return filepath.Dir(p) }

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error { return jsonl.SyncDir(dir) }

// WriteAtomic replaces path with data: temp file in the same directory,
// fsync, chmod, rename, fsync the directory. A reader sees the old or the
// new file, never a half-written one.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".k3scert-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func modeOf(path string, def os.FileMode) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return def
}

// backup writes one tar.gz (0600) of server/tls, server/cred, the admin
// kubeconfig and the serving secret as JSON.
