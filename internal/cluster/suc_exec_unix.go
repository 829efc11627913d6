//go:build unix

package cluster

import (
	"fmt"
	"os"
	"syscall"
)

// ExecInHostRoot replaces the process with argv run inside hostRoot:
// chroot(hostRoot) unless it is "/", chdir "/", exec argv[0] (a path in
// the node's root). The job's container is privileged (the controller's
// default for the upgrade container, pkg/upgrade/job/job.go New:
// Privileged, CAP_SYS_BOOT) and shares the node's PID, IPC and network
// namespaces, so inside the chroot systemctl reaches the node's systemd and
// the rotation's verification reaches the node's listeners on loopback.
func ExecInHostRoot(hostRoot string, argv, env []string) error {
	if hostRoot != "/" {
		if err := syscall.Chroot(hostRoot); err != nil {
			return fmt.Errorf("chroot %s: %w", hostRoot, err)
		}
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Exec(argv[0], argv, env); err != nil {
		return fmt.Errorf("exec %s in %s: %w", argv[0], hostRoot, err)
	}
	return nil
}
