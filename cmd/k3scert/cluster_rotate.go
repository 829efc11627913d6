package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/cluster"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/spf13/cobra"
)

func init() { clusterCommands = append(clusterCommands, newClusterRotateCmd) }

type clusterRotateFlags struct {
	inventory, journal, output, ssh string
	dryRun, yes, resume             bool
	agentConcurrency                int
}

func newClusterRotateCmd() *cobra.Command {
	var f clusterRotateFlags
	c := &cobra.Command{
		Use:   "rotate --inventory FILE",
		Short: "Rotate every node of a cluster over SSH: servers one at a time, then agents (recovery when the cluster has expired)",
		Long: `cluster rotate runs k3scert rotate on every node of an inventory over SSH (the system OpenSSH
client, BatchMode: never a password prompt), one node at a time: the servers in inventory order —
the first renews the shared serving secret, the others adopt it — then the agents. Each node's own
rotation is journaled, verified and rolled back on failure on the node; the run stops at the first
node that fails. The cluster journal makes the run resumable (--resume). Afterwards every server's
API endpoint is dialled with the cluster CA, kubectl runs through each server and every agent's
certificates are checked. See docs/runbooks/ha-expired.md.

  k3scert cluster rotate --inventory cluster.yaml --dry-run   the plan and each node's exact command
  k3scert cluster rotate --inventory cluster.yaml --yes       run it
  k3scert cluster rotate --inventory cluster.yaml --resume    continue an interrupted or failed run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runClusterRotate(cmd, &f) },
	}
	fl := c.Flags()
	fl.StringVarP(&f.inventory, "inventory", "i", "", "the cluster inventory (YAML: program, ssh, nodes)")
	fl.StringVar(&f.journal, "journal", "", "the cluster journal (default: the inventory's path + .journal)")
	fl.StringVarP(&f.output, "output", "o", "text", "output: text or json")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (each node's exact ssh command) and exit")
	fl.BoolVarP(&f.yes, "yes", "y", false, "do not ask before acting")
	fl.BoolVar(&f.resume, "resume", false, "continue the run of the cluster journal: done nodes are skipped, an interrupted node is resumed from its own journal")
	fl.IntVar(&f.agentConcurrency, "agent-concurrency", 1, "how many agents rotate at once (1 to 50; servers are always one at a time); a failed agent stops the run after its batch")
	fl.StringVar(&f.ssh, "ssh", "ssh", "the OpenSSH client")
	_ = fl.MarkHidden("ssh")
	return c
}

func runClusterRotate(cmd *cobra.Command, f *clusterRotateFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	defer close(finished) // before stop(): no interrupt message at a normal end
	go func() {
		select {
		case <-finished:
		case <-ctx.Done():
			stop() // a second Ctrl-C ends k3scert at once (the node's remote rotation goes on)
			fmt.Fprintln(cmd.ErrOrStderr(), "k3scert: interrupted: the node in progress finishes, then the run stops (--resume continues); Ctrl-C again to quit now")
		}
	}()
	out := cmd.OutOrStdout()
	switch {
	case f.inventory == "":
		return errors.New("--inventory is required")
	case f.output != "text" && f.output != "json":
		return fmt.Errorf("-o %q: want text or json", f.output)
	case f.dryRun && f.resume:
		return errors.New("--dry-run and --resume exclude each other")
	case f.agentConcurrency < 1 || f.agentConcurrency > 50:
		return fmt.Errorf("--agent-concurrency %d: want 1 to 50", f.agentConcurrency)
	}
	inv, err := cluster.LoadInventory(f.inventory)
	if err != nil {
		return err
	}
	plan, err := cluster.NewPlan(inv)
	if err != nil {
		return err
	}
	logw := cmd.ErrOrStderr()
	r := &cluster.SSHRunner{Inv: inv, SSH: f.ssh, Now: time.Now, Log: logw}
	plan.AgentConcurrency = f.agentConcurrency
	plan = plan.WithCommands(r.Command)
	journal := f.journal
	if journal == "" {
		journal = f.inventory + ".journal"
	}
	if f.dryRun {
		if f.output == "json" {
			return render.JSON(out, plan)
		}
		fmt.Fprint(out, plan.Summary())
		fmt.Fprintf(out, "journal: %s\n", journal)
		return nil
	}
	if !f.resume && !f.yes {
		fmt.Fprint(out, plan.Summary())
		if !cliutil.IsTerminal(os.Stdin) {
			return cliutil.WithHint(errors.New("refusing to rotate the cluster without confirmation: stdin is not a terminal"), "review the plan above, then run again with --yes")
		}
		fmt.Fprintf(out, "proceed? this restarts %d nodes one at a time [y/N] ", len(plan.Steps))
		ans, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(ans)); a != "y" && a != "yes" {
			return errors.New("not confirmed; nothing was changed")
		}
	}
	var rep cluster.Report
	if f.resume {
		rep, err = cluster.Resume(ctx, plan, r, journal, time.Now)
	} else {
		rep, err = cluster.Run(ctx, plan, r, journal, time.Now)
	}
	if rep.Kind == "" { // refused before anything ran
		if errors.Is(err, cluster.ErrInterrupted) {
			return cliutil.WithHint(err, "k3scert cluster rotate --inventory "+f.inventory+" --resume")
		}
		return err
	}
	if f.output == "json" {
		if jerr := render.JSON(out, rep); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Fprint(out, rep.Text())
	}
	if err != nil {
		return cliutil.WithHint(err, "k3scert cluster rotate --inventory "+f.inventory+" --resume")
	}
	if f.output == "text" {
		fmt.Fprintln(out, "k3scert: every node rotated and the cluster verified")
	}
	return nil
}
