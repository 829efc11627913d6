package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/spf13/cobra"
)

func labProfiles(flag string, all bool) ([]k3s.Profile, error) {
	if flag == "" {
		if all {
			// One release line per dynamiclistener era, each with the
			// listener code that line shipped.
			lines, err := lab.Lines()
			if err != nil {
				return nil, err
			}
			var out []k3s.Profile
			for _, l := range lines {
				out = append(out, l.Profile)
			}
			return out, nil
		}
		return []k3s.Profile{k3s.ProfileV118}, nil
	}
	p, err := k3s.ProfileByName(flag)
	return []k3s.Profile{p}, err
}

func newLabRunCmd() *cobra.Command {
	var profile, remedy, output, root string
	var verbose bool
	var servers, agents int
	c := &cobra.Command{
		Use:   "run scenario1|scenario2|all|ha-expired|ha-preventive",
		Short: "Replay the reference verification on a fresh lab node or HA cluster, without touching the clock",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.HasPrefix(args[0], "ha-") {
				return runHA(cmd, args[0], profile, remedy, output, root, verbose, servers, agents)
			}
			if cmd.Flags().Changed("servers") || cmd.Flags().Changed("agents") {
				return fmt.Errorf("--servers and --agents are for the ha-* scenarios")
			}
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
					lab.WriteTable(out, r)
				}
				fmt.Fprintf(out, "lab: %d run(s) in %.1fs; nodes under %s\n", len(results), time.Since(start).Seconds(), base)
				return nil
			}
			return fmt.Errorf("unknown output %q (want table or json)", output)
		},
	}
	c.Flags().StringVar(&profile, "profile", "", "release-matrix row or alias: v1.18 (the reference), v1.19.1, v1.21.8, v1.24.3, current, ... (default: v1.18; run all replays one row per dynamiclistener era: v1.18, v1.19.1, v1.21.8, v1.24.3, current)")
	c.Flags().StringVar(&remedy, "remedy", "none", "after the failure apply: "+strings.Join(lab.Remedies, ", "))
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	c.Flags().StringVar(&root, "root", "", "where to create the nodes (default: a new temporary directory)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log each lab action to stderr")
	c.Flags().IntVar(&servers, "servers", 3, "ha-*: servers sharing one datastore")
	c.Flags().IntVar(&agents, "agents", 2, "ha-*: agents (0: none)")
	c.ValidArgsFunction = cliutil.Complete(append(append(append([]string{}, lab.Scenarios...), "all"), lab.HAScenarios...)...)
	_ = c.RegisterFlagCompletionFunc("remedy", cliutil.Complete(lab.Remedies...))
	_ = c.RegisterFlagCompletionFunc("output", cliutil.Complete("table", "json"))
	_ = c.RegisterFlagCompletionFunc("profile", cliutil.Complete(labProfileNames()...))
	return c
}

func newLabUpCmd() *cobra.Command {
	var profile, root string
	var advance, supPort, apiPort, kinePort, servers, agents int
	c := &cobra.Command{
		Use:   "up",
		Short: "Start a lab node (or an HA cluster with --servers/--agents) and leave it running until Ctrl-C (point check and rotate at it)",
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
			if servers > 1 || agents > 0 {
				if supPort != 0 || apiPort != 0 || kinePort != 0 {
					return fmt.Errorf("--supervisor-port, --apiserver-port and --kine-port are for a single node; a cluster picks free ports")
				}
				return upCluster(ctx, cmd, p, root, servers, agents, advance)
			}
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
	c.Flags().IntVar(&servers, "servers", 1, "servers sharing one datastore (more than 1: an HA cluster)")
	c.Flags().IntVar(&agents, "agents", 0, "agents fetching their certificates from the servers")
	return c
}

// upCluster is `lab up --servers N --agents M`: an HA cluster left running.
func upCluster(ctx context.Context, cmd *cobra.Command, p k3s.Profile, root string, servers, agents, advance int) error {
	if servers < 1 {
		servers = 1
	}
	c, err := lab.NewCluster(lab.ClusterOptions{Root: root, Profile: p, Servers: servers, Agents: agents, NoAgents: agents == 0,
		Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lab: "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Start(ctx); err != nil {
		return err
	}
	if advance > 0 {
		if err := c.Advance(ctx, advance); err != nil {
			return err
		}
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "lab cluster running (profile %s, virtual date %s, datastore %s)\n", p.Name, c.Now().Format(time.RFC3339), c.DatastoreEndpoint())
	for _, n := range c.Servers {
		ports := n.Ports()
		fmt.Fprintf(w, "  %s: data dir %s, kubeconfig %s, supervisor 127.0.0.1:%d, apiserver 127.0.0.1:%d\n", n.Name(), n.DataDir(), n.Kubeconfig(), ports.Supervisor, ports.APIServer)
	}
	for _, a := range c.Agents {
		fmt.Fprintf(w, "  %s: data dir %s, server %s, kubelet %s\n", a.Name(), a.DataDir(), a.ServerURL(), a.KubeletAddr())
	}
	fmt.Fprintln(w, "Ctrl-C stops the cluster")
	<-ctx.Done()
	return nil
}

// labProfileNames are the --profile values: the aliases, then every row of
// the release matrix.
func labProfileNames() []string {
	names := []string{"v1.18", "v1.19+", "current"}
	for _, r := range k3s.Rows {
		if r.Name != "v1.18" {
			names = append(names, r.Name)
		}
	}
	return names
}

// runHA runs `lab run ha-expired|ha-preventive`. The default profile is
// v1.18, the seed's release line: its listener (dynamiclistener v0.2.0)
// never renews itself, so on a cluster every server shows the reference
// failure after the restart and the preventive run needs the rotation's
// listener step on every server; --profile current runs today's code.
func runHA(cmd *cobra.Command, scenario, profile, remedy, output, root string, verbose bool, servers, agents int) error {
	if profile == "" {
		profile = "v1.18"
	}
	p, err := k3s.ProfileByName(profile)
	if err != nil {
		return err
	}
	if scenario == "ha-preventive" && !cmd.Flags().Changed("remedy") {
		remedy = "rotate"
	}
	if output != "table" && output != "json" {
		return fmt.Errorf("unknown output %q (want table or json)", output)
	}
	if agents == 0 {
		agents = -1 // none
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if root == "" {
		if root, err = os.MkdirTemp("", "k3scert-lab-"); err != nil {
			return err
		}
	}
	logf := func(string, ...any) {}
	if verbose || output == "table" {
		logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lab: "+f+"\n", a...) }
	}
	r, err := lab.RunHA(ctx, lab.HAOptions{Scenario: scenario, Profile: p, Remedy: remedy, Servers: servers, Agents: agents,
		Root: filepath.Join(root, scenario+"-"+strings.ReplaceAll(p.Name, "+", "plus")), Log: logf})
	if err != nil {
		return fmt.Errorf("%s (profile %s): %w", scenario, p.Name, err)
	}
	out := cmd.OutOrStdout()
	if output == "json" {
		return render.JSON(out, r)
	}
	lab.WriteHATable(out, r)
	return nil
}
