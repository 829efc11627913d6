package main

import "github.com/spf13/cobra"

func init() { extraCommands = append(extraCommands, newClusterCmd) }

// clusterCommands are the `k3scert cluster` subcommands, registered by
// their files' init functions (cluster rotation, system-upgrade-controller
// plans).
var clusterCommands []func() *cobra.Command

func newClusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Rotate a whole cluster: servers one at a time, then agents (over SSH, or as system-upgrade-controller Plans)",
	}
	for _, f := range clusterCommands {
		c.AddCommand(f())
	}
	return c
}
