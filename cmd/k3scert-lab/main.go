// Command k3scert-lab is the emulated K3s server node from real parts (kine
// on SQLite, kube-apiserver, rancher/dynamiclistener) that replays the
// reference verification. It is a separate binary so that k3scert, the
// tool an operator copies onto a node, links none of the lab's parts
// (dynamiclistener, wrangler, lasso, the kine and etcd servers).
package main

import (
	"os"

	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/spf13/cobra"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "k3scert-lab",
		Short:         "An emulated K3s server node from real parts (kine, kube-apiserver, dynamiclistener)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newLabRunCmd(), newLabUpCmd())
	return root
}

func main() {
	root := newRoot()
	root.SetArgs(os.Args[1:])
	if err := root.Execute(); err != nil {
		cliutil.PrintError(os.Stderr, err)
		os.Exit(report.ExitUnknown) // as every k3scert command on error
	}
}
