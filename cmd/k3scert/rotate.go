package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/rotate"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newRotateCmd) }

type rotateFlags struct {
	dryRun, yes, resume, rollback bool
	method, unit, stopCmd, start  string
	verifyDays                    int
	output                        string
}

func newRotateCmd() *cobra.Command {
	var nf nodeFlags
	var rf rotateFlags
	c := &cobra.Command{
		Use:   "rotate",
		Short: "Plan and run a complete, journaled, verified rotation (also on an expired node; the clock is never touched)",
		Long: `rotate renews every leaf certificate of a K3s server node and the :6443 listener
certificate in BOTH places it lives (dynamic-cert.json and the serving secret), restarts K3s,
verifies the result on the wire, and rolls back from its backup when anything fails.

  k3scert rotate --dry-run     print the plan and the findings it resolves
  k3scert rotate               ask, then run the plan (--yes to skip the question)
  k3scert rotate --resume      finish a rotation that was interrupted
  k3scert rotate --rollback    undo an interrupted rotation from its backup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRotate(cmd, &nf, &rf) },
	}
	nf.register(c)
	fl := c.Flags()
	fl.BoolVar(&rf.dryRun, "dry-run", false, "print the plan and exit")
	fl.BoolVarP(&rf.yes, "yes", "y", false, "do not ask before acting")
	fl.BoolVar(&rf.resume, "resume", false, "finish an interrupted rotation from its journal")
	fl.BoolVar(&rf.rollback, "rollback", false, "undo an interrupted rotation from its journal and backup")
	fl.StringVar(&rf.method, "method", rotate.MethodRenew, "renew (reuse each certificate as template, fresh key) or regenerate (remove leaves; K3s recreates them on start)")
	fl.StringVar(&rf.unit, "unit", "", "service unit (default k3s, or rke2-server)")
	fl.StringVar(&rf.stopCmd, "stop-cmd", "", "command that stops K3s (default: systemd or OpenRC)")
	fl.StringVar(&rf.start, "start-cmd", "", "command that starts K3s (default: systemd or OpenRC)")
	fl.IntVar(&rf.verifyDays, "verify-days", 30, "served certificates must still be valid this many days after the rotation")
	fl.StringVarP(&rf.output, "output", "o", "text", "plan output: text or json")
	return c
}

func runRotate(cmd *cobra.Command, nf *nodeFlags, rf *rotateFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	o, err := nf.options(time.Now())
	if err != nil {
		return err
	}
	o.Secret = nil // the plan reads the datastore itself, with K3s stopped
	n, err := check.Resolve(o)
	if err != nil {
		return cliutil.WithHint(err, "pass the data dir with -d/--data-dir")
	}
	svc, err := rotateService(n, rf)
	if err != nil && !rf.dryRun {
		return cliutil.WithHint(err, "pass --stop-cmd and --start-cmd, e.g. --stop-cmd 'systemctl stop k3s' --start-cmd 'systemctl start k3s'")
	}
	e := &rotate.Executor{Service: svc, Now: time.Now,
		Verify:   rotate.Verifier{Check: o, Now: time.Now}.Verify,
		Progress: progressPrinter(out, cliutil.IsTerminal(os.Stdout))}
	if n.Role == k3s.RoleServer && rotate.OfflineSecret(n.DataDir) {
		e.Secrets = rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: n.DataDir, Program: n.Program})
	}
	journal := rotate.JournalPath(n.DataDir, n.Role)
	switch {
	case rf.resume && rf.rollback:
		return errors.New("--resume and --rollback exclude each other")
	case rf.resume:
		if err := rotate.Resume(ctx, e, journal); err != nil {
			return err
		}
		fmt.Fprintln(out, "k3scert: rotation finished")
		return nil
	case rf.rollback:
		if err := rotate.Rollback(ctx, e, journal); err != nil {
			return err
		}
		fmt.Fprintln(out, "k3scert: rotation rolled back; the node runs on its previous certificates")
		return nil
	}
	svcName := "(no service manager found)"
	if svc != nil {
		svcName = svc.Name()
	}
	in, err := rotate.Gather(ctx, o, rf.method, svcName, rotate.DescribeDatastore(n.DataDir))
	if err != nil {
		return err
	}
	in.VerifyDays = rf.verifyDays
	plan, err := rotate.NewPlan(in)
	if err != nil {
		return err
	}
	if rf.output == "json" {
		if err := render.JSON(out, plan); err != nil {
			return err
		}
	} else {
		fmt.Fprint(out, plan.Summary())
	}
	if rf.dryRun {
		return nil
	}
	if !rf.yes {
		if !cliutil.IsTerminal(os.Stdin) {
			return cliutil.WithHint(errors.New("refusing to rotate without confirmation: stdin is not a terminal"), "review the plan above, then run again with --yes")
		}
		fmt.Fprint(out, "proceed? this stops and starts "+svcName+" [y/N] ")
		ans, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(ans)); a != "y" && a != "yes" {
			return errors.New("not confirmed; nothing was changed")
		}
	}
	e.Plan = plan
	start := time.Now()
	if err := e.Apply(ctx); err != nil {
		if errors.Is(err, rotate.ErrInterrupted) {
			return cliutil.WithHint(err, "k3scert rotate --resume", "k3scert rotate --rollback")
		}
		return err
	}
	st, _ := rotate.ReadJournal(journal)
	if n.Role == k3s.RoleAgent {
		fmt.Fprintf(out, "k3scert: restarted the agent; its certificates are fresh and verified (%.1fs)\n", time.Since(start).Seconds())
	} else {
		fmt.Fprintf(out, "k3scert: rotated %d leaf certificates and the listener certificate in %.1fs\n", len(plan.Leaves), time.Since(start).Seconds())
	}
	fmt.Fprintf(out, "  backup:  %s\n  journal: %s\n", st.Backup, journal)
	fmt.Fprintln(out, "  next, elsewhere:")
	for _, x := range plan.Others {
		fmt.Fprintf(out, "    - %s\n", x)
	}
	return nil
}

func rotateService(n check.Node, rf *rotateFlags) (rotate.Service, error) {
	if rf.stopCmd != "" || rf.start != "" {
		if rf.stopCmd == "" || rf.start == "" {
			return nil, errors.New("--stop-cmd and --start-cmd go together")
		}
		return rotate.CommandService{Label: "custom commands", StopCmd: rf.stopCmd, StartCmd: rf.start}, nil
	}
	unit := rf.unit
	if unit == "" {
		unit = string(n.Program)
		switch {
		case n.Role == k3s.RoleAgent:
			unit += "-agent"
		case n.Program == k3s.RKE2:
			unit = "rke2-server"
		}
	}
	s, err := rotate.DetectService(unit)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// progressPrinter shows each step as it runs: a line per step with its
// duration; on a terminal the running step is marked and then ticked.
func progressPrinter(w io.Writer, tty bool) func(rotate.Event) {
	return func(ev rotate.Event) {
		n := ev.Step.Index + 1
		switch ev.State {
		case "begin":
			if tty {
				fmt.Fprintf(w, "  … %d. %s", n, ev.Step.Name)
			} else {
				fmt.Fprintf(w, "rotate: %d. %s ...\n", n, ev.Step.Name)
			}
		case "done":
			if tty {
				fmt.Fprintf(w, "\r  ✓ %d. %-13s %5.1fs  %s\n", n, ev.Step.Name, ev.Duration.Seconds(), ev.Detail)
			} else {
				fmt.Fprintf(w, "rotate: %d. %s done in %.1fs: %s\n", n, ev.Step.Name, ev.Duration.Seconds(), ev.Detail)
			}
		case "failed":
			if tty {
				fmt.Fprintf(w, "\r  ✗ %d. %-13s %5.1fs  %v\n", n, ev.Step.Name, ev.Duration.Seconds(), ev.Err)
			} else {
				fmt.Fprintf(w, "rotate: %d. %s FAILED after %.1fs: %v\n", n, ev.Step.Name, ev.Duration.Seconds(), ev.Err)
			}
		case "rollback":
			fmt.Fprintf(w, "rotate: rolling back from %s\n", ev.Detail)
		}
	}
}
