// Command k3scert tells a K3s or RKE2 operator the truth about every
// certificate a node depends on, predicts what breaks and when, rotates
// them safely and proves the result on the wire.
package main

import (
	"errors"
	"os"
	"strings"

	"github.com/k3scert/k3scert/internal/cliutil"
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

func init() { extraCommands = append(extraCommands, movedLabCmd) }

// movedLabCmd answers `k3scert lab ...` with where the lab went: its own
// command, so that this binary links none of its parts.
func movedLabCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "lab",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return cliutil.WithHint(errors.New("the lab is its own command now"),
				"run k3scert-lab "+strings.Join(args, " ")+" (make build builds bin/k3scert-lab)")
		},
	}
}

// extraCommands are registered by the other command files' init functions.
var extraCommands []func() *cobra.Command

func main() {
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
