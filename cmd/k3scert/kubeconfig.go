package main

import (
	"fmt"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/rotate"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newKubeconfigCmd) }

func newKubeconfigCmd() *cobra.Command {
	c := &cobra.Command{Use: "kubeconfig", Short: "Work on copied kubeconfigs"}
	var dataDir, program string
	refresh := &cobra.Command{
		Use:   "refresh PATH...",
		Short: "Rewrite copied kubeconfigs with the node's current admin credentials (backup first; K3C201)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := check.Resolve(check.Options{DataDir: dataDir, Program: k3s.Program(program)})
			if err != nil {
				return cliutil.WithHint(err, "pass the data dir with -d/--data-dir")
			}
			now := time.Now()
			for _, p := range args {
				r, err := rotate.RefreshKubeconfig(p, n.DataDir, now)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "k3scert: refreshed %s (users %v, clusters %v); certificate valid until %s; backup %s\n",
					r.Path, r.Users, r.Clusters, r.NotAfter.UTC().Format(time.RFC3339), r.Backup)
			}
			return nil
		},
	}
	refresh.Flags().StringVarP(&dataDir, "data-dir", "d", "", "K3s data dir (default /var/lib/rancher/k3s)")
	refresh.Flags().StringVar(&program, "program", "", "k3s or rke2 (default: detected)")
	c.AddCommand(refresh)
	return c
}
