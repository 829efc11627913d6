package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/rotate"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
)

func init() { extraCommands = append(extraCommands, newRotateCmd) }

type rotateFlags struct {
	dryRun, yes, resume, rollback bool
	method, unit, stopCmd, start  string
	verifyDays, validityDays      int
	startTimeout                  time.Duration
	output                        string
	clusterListener               string
}

// validate rejects flag values that make no sense, as usage errors.
func (rf *rotateFlags) validate(nf *nodeFlags) error {
	switch {
	case rf.resume && rf.rollback:
		return errors.New("--resume and --rollback exclude each other")
	case rf.startTimeout <= 0:
		return fmt.Errorf("--start-timeout %v: want a positive duration, e.g. 5m", rf.startTimeout)
	case rf.startTimeout > 24*time.Hour:
		return fmt.Errorf("--start-timeout %v: at most 24h", rf.startTimeout)
	case rf.validityDays < 0 || rf.validityDays > 36500:
		return fmt.Errorf("--validity-days %d: want 1 to 36500 (0: what K3s gives)", rf.validityDays)
	case rf.verifyDays < 0 || rf.verifyDays > 36500:
		return fmt.Errorf("--verify-days %d: want 0 to 36500", rf.verifyDays)
	case nf.timeout < 0:
		return fmt.Errorf("--timeout %v: want a positive duration", nf.timeout)
	case rf.method != rotate.MethodRenew && rf.method != rotate.MethodRegenerate:
		return fmt.Errorf("--method %q: want renew or regenerate", rf.method)
	case rf.output != "text" && rf.output != "json":
		return fmt.Errorf("-o %q: want text or json", rf.output)
	case rf.clusterListener != "" && rf.clusterListener != rotate.ClusterRenew && rf.clusterListener != rotate.ClusterAdopt:
		return fmt.Errorf("--cluster-listener %q: want renew or adopt", rf.clusterListener)
	}
	return nil
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
	fl.IntVar(&rf.validityDays, "validity-days", 0, "validity of renewed leaf certificates in days (default: what K3s gives)")
	fl.DurationVar(&rf.startTimeout, "start-timeout", rotate.DefaultStartTimeout, "deadline of every start and stop of K3s (rotation and rollback); K3s units are Type=notify with no start timeout of their own")
	fl.StringVarP(&rf.output, "output", "o", "text", "output: text, or json (the plan, then the run's result as a second JSON document; progress goes to stderr)")
	fl.StringVar(&rf.clusterListener, "cluster-listener", "", "a server's part in a cluster rotation (k3scert cluster rotate sets it): renew (this server renews the shared serving secret) or adopt (an earlier server renewed it: serve that certificate, never re-sign it)")
	return c
}

func runRotate(cmd *cobra.Command, nf *nodeFlags, rf *rotateFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	if err := rf.validate(nf); err != nil {
		return err
	}
	o, err := nf.options(time.Now())
	if err != nil {
		return err
	}
	o.Secret = nil // the plan reads the datastore itself, with K3s stopped
	if err := dataDirAccess(o.DataDir, o.Program); err != nil {
		return err
	}
	n, err := check.Resolve(o)
	if err != nil {
		return cliutil.WithHint(err, "pass the data dir with -d/--data-dir")
	}
	svc, err := rotateService(n, rf)
	if err != nil && !rf.dryRun {
		return cliutil.WithHint(err, "pass --stop-cmd and --start-cmd, e.g. --stop-cmd 'systemctl stop k3s' --start-cmd 'systemctl start k3s'")
	}
	endpoint := ""
	if n.Role == k3s.RoleServer {
		endpoint = n.Config.DatastoreEndpoint
	}
	verifier := rotate.Verifier{Check: o, Now: time.Now}
	if n.Role == k3s.RoleServer && (endpoint == "" || rotate.ExternalEtcd(endpoint)) {
		ds := rotate.DatastoreSecrets(rotate.NodeDatastore(n.DataDir, n.Program, endpoint))
		verifier.Secret = func(ctx context.Context) (*corev1.Secret, error) {
			st, err := ds(ctx)
			if err != nil {
				return nil, err
			}
			defer st.Close()
			return st.Get(ctx)
		}
	}
	progOut, tty := out, cliutil.IsTerminal(os.Stdout)
	if rf.output == "json" {
		progOut, tty = cmd.ErrOrStderr(), false // stdout holds only JSON documents
	}
	var down downtime
	e := &rotate.Executor{Service: svc, Now: time.Now, StartTimeout: rf.startTimeout, Command: strings.Join(os.Args, " "),
		Verify:   verifier.Verify,
		Progress: down.track(progressPrinter(progOut, tty))}
	if n.Role == k3s.RoleServer && rotate.OfflineSecretAt(n.DataDir, endpoint) {
		e.Secrets = rotate.DatastoreSecrets(rotate.NodeDatastore(n.DataDir, n.Program, endpoint))
	}
	journal := rotate.JournalPath(n.DataDir, n.Role)
	result := func(action string, started time.Time, err error) error {
		if rf.output == "json" {
			if jerr := render.JSON(out, rotate.NewResult(action, n.DataDir, string(n.Role), journal, err, started, time.Now(), down.d())); jerr != nil && err == nil {
				err = jerr
			}
		}
		if err != nil {
			return rotateError(err)
		}
		return nil
	}
	switch {
	case rf.resume:
		started := time.Now()
		signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE) // as for a rotation: run to the end
		if err := rotate.Resume(ctx, e, journal); err != nil {
			return result("resume", started, err)
		}
		if rf.output == "json" {
			return result("resume", started, nil)
		}
		fmt.Fprintln(out, "k3scert: rotation finished")
		return nil
	case rf.rollback:
		signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE) // as for a rotation: run to the end
		if err := rotate.Rollback(ctx, e, journal); err != nil {
			return rotateError(err)
		}
		fmt.Fprintln(out, "k3scert: rotation rolled back; the node runs on its previous certificates")
		return nil
	}
	svcName := "(no service manager found)"
	if svc != nil {
		svcName = svc.Name()
	}
	in, err := rotate.GatherNode(ctx, rotate.GatherOptions{Check: o, Method: rf.method, Service: svcName,
		Datastore: rotate.DescribeDatastoreAt(n.DataDir, endpoint), ClusterListener: rf.clusterListener, DatastoreEndpoint: endpoint})
	if err != nil {
		return err
	}
	in.VerifyDays = rf.verifyDays
	if rf.validityDays > 0 {
		in.ValidDays = rf.validityDays
	}
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
		fmt.Fprintf(out, "every start and stop of %s, in the rotation and in a rollback, must finish within %v (--start-timeout)\n", svcName, rf.startTimeout)
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
	// Once K3s may be stopped, the rotation runs to its end (done, or
	// rolled back) whatever happens to the session that started it: a
	// dropped ssh connection (SIGHUP, then EPIPE on stdout/stderr) must not
	// kill it between the stop and the start. Ctrl-C and SIGTERM still
	// end it the orderly way (rollback).
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	if err := e.Apply(ctx); err != nil {
		return result("rotate", start, err)
	}
	if rf.output == "json" {
		return result("rotate", start, nil)
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

// downtime measures the node's service downtime from the executor's
// events: from the stop's begin to the start's end.
type downtime struct{ stop, start time.Time }

func (d *downtime) track(next func(rotate.Event)) func(rotate.Event) {
	return func(ev rotate.Event) {
		switch {
		case ev.Step.Name == rotate.StepStop && ev.State == "begin":
			d.stop = time.Now()
		case ev.Step.Name == rotate.StepStart && ev.State == "done":
			d.start = time.Now()
		}
		next(ev)
	}
}

func (d *downtime) d() time.Duration {
	if d.stop.IsZero() || d.start.Before(d.stop) {
		return 0
	}
	return d.start.Sub(d.stop)
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
			if ev.Detail == "" {
				fmt.Fprintf(w, "rotate: no backup was written: starting K3s again on its unchanged files\n")
			} else {
				fmt.Fprintf(w, "rotate: rolling back from %s\n", ev.Detail)
			}
		case "warning":
			fmt.Fprintf(w, "rotate: warning: %s\n", ev.Detail)
		}
	}
}

// rotateError adds what to do next to an executor error.
func rotateError(err error) error {
	var le *rotate.LockedError
	var re *rotate.RunError
	switch {
	case errors.As(err, &le):
		return cliutil.WithHint(err, "wait for the other k3scert to end; if it hangs, look at it with ps -p PID, never delete the lock file")
	case errors.Is(err, rotate.ErrInterrupted):
		return cliutil.WithHint(err, "k3scert rotate --resume", "k3scert rotate --rollback")
	case errors.Is(err, rotate.ErrNoJournal):
		return cliutil.WithHint(err, "k3scert rotate --dry-run shows what a new rotation would do")
	case errors.As(err, &re) && !re.Outcome.Running:
		return cliutil.WithHint(err, "start K3s by hand (systemctl start k3s) and look at journalctl -u k3s", "the journal and the backup are kept: k3scert rotate --rollback puts the backup back")
	}
	return err
}

// dataDirAccess says "permission denied" when that is the problem, not
// "not a data dir": rotate must read CA keys and the datastore.
func dataDirAccess(dataDir string, prog k3s.Program) error {
	if dataDir == "" {
		if prog == "" {
			prog = k3s.K3s
		}
		dataDir = k3s.DefaultDataDir(prog)
	}
	for _, p := range []string{dataDir, dataDir + "/server", dataDir + "/server/tls", dataDir + "/agent"} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrPermission) {
			return cliutil.WithHint(fmt.Errorf("%s: permission denied: rotate reads CA keys and the datastore and stops K3s", p), "run it as root (sudo k3scert rotate ...)")
		}
	}
	return nil
}
