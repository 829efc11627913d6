//go:build !unix

package cluster

import "errors"

// ExecInHostRoot is Unix-only: the plans' jobs run on Linux nodes.
func ExecInHostRoot(string, []string, []string) error {
	return errors.New("host-rotate runs on Linux nodes only")
}
