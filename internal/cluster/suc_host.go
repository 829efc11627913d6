package cluster

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/k3scert/k3scert/internal/rotate"
)

// HostPath is path (absolute on the node) under the node's root as the
// job sees it (SUCHostRoot, or a lab node's root).
func HostPath(hostRoot, path string) string {
	return filepath.Join(hostRoot, filepath.FromSlash(strings.TrimPrefix(path, "/")))
}

// InstallBinary copies the running k3scert (src) to dst on the node
// (HostPath(hostRoot, dst)) with mode 0755, atomically, unless the same
// bytes are already there. It reports whether it wrote. The job installs
// the binary rather than running it from the image because the rotation
// must run in the node's root (see HostRotate) and because its journal,
// backup and a later `k3scert rotate --resume|--rollback` by hand belong
// to the node: the binary that wrote them stays there.
func InstallBinary(src, hostRoot, dst string) (bool, error) {
	if !strings.HasPrefix(dst, "/") {
		return false, fmt.Errorf("host binary %q: want an absolute path", dst)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("read own binary: %w", err)
	}
	target := HostPath(hostRoot, dst)
	if old, err := os.ReadFile(target); err == nil && sha256.Sum256(old) == sha256.Sum256(b) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return false, err
	}
	if err := rotate.WriteAtomic(target, b, 0o755); err != nil {
		return false, fmt.Errorf("install %s: %w", target, err)
	}
	return true, nil
}

// HostEnv is the environment the rotation runs with on the node: the
// job's environment (SYSTEM_UPGRADE_* and the like) with the PATH of a
// host shell, so that systemctl or rc-service are found in the node's root.
func HostEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, "PATH=") {
			out = append(out, e)
		}
	}
	return append(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

// errNoArgs: host-rotate runs a k3scert command; it needs one.
var errNoArgs = errors.New("host-rotate: no k3scert arguments after --")

// HostArgv is the argv run in the node's root: the installed binary and
// the k3scert arguments.
func HostArgv(bin string, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errNoArgs
	}
	if strings.ContainsRune(bin, 0) {
		return nil, fmt.Errorf("host binary %q", bin)
	}
	return append([]string{bin}, args...), nil
}
