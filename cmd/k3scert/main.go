// Command k3scert tells a K3s or RKE2 operator the truth about every
// certificate a node depends on, predicts what breaks and when, rotates
// them safely and proves the result on the wire.
package main

import (
	"errors"
	"os"

	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/spf13/cobra"
)

// exitError carries an exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit" }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "k3scert",
		Short:         "Certificate truth, forecast and safe rotation for K3s and RKE2 nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	setVersion(root)
	root.AddCommand(newCheckCmd())
	for _, f := range extraCommands {
		root.AddCommand(f())
	}
	return root
}

// extraCommands are registered by the other command files' init functions.
var extraCommands []func() *cobra.Command

func main() {
	lab.MaybeRunSupervisor() // the lab's :6443 supervisor re-executes this binary
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	cliutil.PrintError(os.Stderr, err)
	return report.ExitUnknown
}
