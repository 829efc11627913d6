package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/rotate"
	"github.com/k3scert/k3scert/internal/source"
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
			if program != "" && program != "k3s" && program != "rke2" {
				return fmt.Errorf("--program must be k3s or rke2")
			}
			n, err := check.Resolve(check.Options{DataDir: dataDir, Program: k3s.Program(program)})
			if err != nil {
				return dataDirError(err)
			}
			now := time.Now()
			// Every input goes through source.ReadFile first: a FIFO or a
			// huge file in place of a kubeconfig or a credential is an
			// error, never a hang or exhausted memory.
			inputs := append([]string{}, args...)
			for _, id := range []string{"client-admin", "server-ca", "client-ca"} {
				if s, ok := k3s.ByID(n.Program, k3s.ProfileCurrent, id); ok {
					inputs = append(inputs, filepath.Join(n.DataDir, filepath.FromSlash(s.Cert)))
					if id == "client-admin" {
						inputs = append(inputs, filepath.Join(n.DataDir, filepath.FromSlash(s.Key)))
					}
				}
			}
			for _, p := range inputs {
				if _, err := source.ReadFile(p); err != nil {
					return err
				}
			}
			for _, p := range args {
				r, err := rotate.RefreshKubeconfig(p, n.DataDir, now)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "k3scert: refreshed %s (users %s, clusters %s); certificate valid until %s; backup %s\n",
					render.Safe(r.Path), render.Safe(fmt.Sprint(r.Users)), render.Safe(fmt.Sprint(r.Clusters)), r.NotAfter.UTC().Format(time.RFC3339), render.Safe(r.Backup))
			}
			return nil
		},
	}
	refresh.Flags().StringVarP(&dataDir, "data-dir", "d", "", "K3s data dir (default /var/lib/rancher/k3s)")
	refresh.Flags().StringVar(&program, "program", "", "k3s or rke2 (default: detected)")
	_ = refresh.RegisterFlagCompletionFunc("program", cliutil.Complete("k3s", "rke2"))
	c.AddCommand(refresh)
	return c
}
