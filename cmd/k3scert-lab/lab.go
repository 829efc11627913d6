package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/spf13/cobra"
)

func labProfiles(flag string, all bool) ([]k3s.Profile, error) {
	if flag == "" {
		if all {
			return []k3s.Profile{k3s.ProfileV118, k3s.ProfileCurrent}, nil
		}
		return []k3s.Profile{k3s.ProfileV118}, nil
	}
	p, err := k3s.ProfileByName(flag)
	return []k3s.Profile{p}, err
}

func newLabRunCmd() *cobra.Command {
	var profile, remedy, output, root string
	var verbose bool
	c := &cobra.Command{
		Use:   "run scenario1|scenario2|all",
		Short: "Replay the reference verification on a fresh lab node, without touching the clock",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scenarios := []string{args[0]}
			if args[0] == "all" {
				scenarios = lab.Scenarios
			}
			profiles, err := labProfiles(profile, args[0] == "all")
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			base := root
			if base == "" {
				if base, err = os.MkdirTemp("", "k3scert-lab-"); err != nil {
					return err
				}
			}
			logf := func(string, ...any) {}
			if verbose || output == "table" {
				logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lab: "+f+"\n", a...) }
			}
			var results []lab.Result
			start := time.Now()
			for _, p := range profiles {
				for _, s := range scenarios {
					logf("=== %s, profile %s, remedy %s", s, p.Name, remedy)
					r, _, err := lab.Run(ctx, lab.RunOptions{Scenario: s, Profile: p, Remedy: remedy,
						Root: filepath.Join(base, s+"-"+strings.ReplaceAll(p.Name, "+", "plus")), Log: logf})
					if err != nil {
						return fmt.Errorf("%s (profile %s): %w", s, p.Name, err)
					}
					results = append(results, r)
				}
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				if len(results) == 1 {
					return render.JSON(out, results[0])
				}
				return render.JSON(out, results)
			case "table":
				for _, r := range results {
					labTable(out, r)
				}
				fmt.Fprintf(out, "lab: %d run(s) in %.1fs; nodes under %s\n", len(results), time.Since(start).Seconds(), base)
				return nil
			}
			return fmt.Errorf("unknown output %q (want table or json)", output)
		},
	}
	c.Flags().StringVar(&profile, "profile", "", "version profile: v1.18 (the reference), v1.19+ or current (default: v1.18; run all uses v1.18 and current)")
	c.Flags().StringVar(&remedy, "remedy", "none", "after the failure apply: "+strings.Join(lab.Remedies, ", "))
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	c.Flags().StringVar(&root, "root", "", "where to create the nodes (default: a new temporary directory)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log each lab action to stderr")
	return c
}

func fmtDate(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02")
}

func labTable(w io.Writer, r lab.Result) {
	fmt.Fprintf(w, "\n%s  profile %s  remedy %s\n", strings.ToUpper(r.Scenario), r.Profile, r.Remedy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tDAY\tVIRTUAL DATE\tFILES (client-admin)\tDYNAMIC-CERT.JSON\tSECRET\tSERVED :6443\tKUBECTL")
	for _, s := range r.Steps {
		files := "-"
		if t, ok := s.FilesNotAfter["client-admin"]; ok {
			files = t.Format("2006-01-02")
		}
		k := "ok"
		if !s.KubectlOK {
			k = "FAIL: " + s.KubectlError
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Day, s.VirtualDate.Format("2006-01-02"), files,
			fmtDate(s.DynamicCertNotAfter), fmtDate(s.SecretNotAfter), fmtDate(s.ServedNotAfter), k)
	}
	tw.Flush()
	fmt.Fprintf(w, "=> %s (%.1fs)\n", r.Summary, r.Seconds)
}

func newLabUpCmd() *cobra.Command {
	var profile, root string
	var advance, supPort, apiPort, kinePort int
	c := &cobra.Command{
		Use:   "up",
		Short: "Start a lab node and leave it running until Ctrl-C (point check and rotate at it)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := k3s.ProfileByName(profile)
			if err != nil {
				return err
			}
			if root == "" {
				if root, err = os.MkdirTemp("", "k3scert-lab-"); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := lab.New(lab.Options{Root: root, Profile: p, SupervisorPort: supPort, APIServerPort: apiPort, KinePort: kinePort,
				Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lab: "+f+"\n", a...) }})
			if err != nil {
				return err
			}
			defer n.Close()
			if _, err := n.Start(ctx); err != nil {
				return err
			}
			if advance > 0 {
				if err := n.Advance(ctx, advance); err != nil {
					return err
				}
			}
			ports := n.Ports()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "lab node running (profile %s, virtual date %s)\n", p.Name, n.Now().Format(time.RFC3339))
			fmt.Fprintf(w, "  data dir:    %s\n  kubeconfig:  %s\n  supervisor:  127.0.0.1:%d\n  apiserver:   127.0.0.1:%d\n  kine:        127.0.0.1:%d\n",
				n.DataDir(), n.Kubeconfig(), ports.Supervisor, ports.APIServer, ports.Etcd)
			fmt.Fprintf(w, "try (time travel is in the certificates, so judge at the real now):\n  kubectl --kubeconfig %s get --raw /readyz\n  k3scert check -d %s --admin-kubeconfig %s --profile %s --supervisor-port %d --apiserver-port %d\n  k3scert rotate -d %s --admin-kubeconfig %s --profile %s --supervisor-port %d --apiserver-port %d --dry-run\n",
				n.Kubeconfig(), n.DataDir(), n.Kubeconfig(), p.Name, ports.Supervisor, ports.APIServer, n.DataDir(), n.Kubeconfig(), p.Name, ports.Supervisor, ports.APIServer)
			fmt.Fprintln(w, "Ctrl-C stops the node")
			<-ctx.Done()
			return nil
		},
	}
	c.Flags().StringVar(&profile, "profile", "v1.18", "version profile: v1.18, v1.19+ or current")
	c.Flags().IntVar(&advance, "advance", 0, "advance the node this many days after start (re-signs into the past)")
	c.Flags().StringVar(&root, "root", "", "node root (default: a new temporary directory)")
	c.Flags().IntVar(&supPort, "supervisor-port", 0, "supervisor port (default: a free port)")
	c.Flags().IntVar(&apiPort, "apiserver-port", 0, "apiserver port (default: a free port)")
	c.Flags().IntVar(&kinePort, "kine-port", 0, "kine port (default: a free port)")
	return c
}
