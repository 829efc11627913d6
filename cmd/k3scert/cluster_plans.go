package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/cluster"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func init() {
	clusterCommands = append(clusterCommands, newClusterPlansCmd, newClusterWaitPlanCmd, newClusterHostRotateCmd)
}

// imageRepository is the k3scert image (tools/image, deploy/helm).
const imageRepository = "ghcr.io/k3scert/k3scert"

var releaseVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$`)

// defaultImage is the image of this build's release, when the build is
// one.
func defaultImage() string {
	v := currentBuild().Version
	if !releaseVersion.MatchString(v) {
		return ""
	}
	return imageRepository + ":" + strings.ReplaceAll(v, "+", "-")
}

func newClusterPlansCmd() *cobra.Command {
	var o cluster.PlansOptions
	var program, output string
	c := &cobra.Command{
		Use:   "plans",
		Short: "Print system-upgrade-controller Plans that rotate every server (one at a time), then every agent",
		Long: `plans prints the ServiceAccount, the least RBAC and two system-upgrade-controller Plans
(upgrade.cattle.io/v1, checked against ` + cluster.SUCCommit + `):

  server plan  concurrency 1, nodes labelled node-role.kubernetes.io/control-plane=true,
               tolerating the server taints; its job installs k3scert on the node and runs
               'k3scert rotate --yes' there (chroot into the node's root)
  agent plan   every other node; its prepare step ('k3scert cluster wait-plan <server plan>')
               waits until every server carries the server plan's completed label

The run id is the plans' version: applying them with a new --run-id rotates the cluster again.

  k3scert cluster plans --run-id 2026-12-02 | kubectl apply -f -
  kubectl -n system-upgrade get plans,jobs -w`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Program = k3s.Program(program)
			switch {
			case o.JobDeadline == 0:
				o.JobDeadline = -1 // the flag's 0: no deadline
			case o.JobDeadline < 0:
				return fmt.Errorf("--job-deadline %d: want seconds, or 0 for none", o.JobDeadline)
			}
			if o.Image == "" {
				o.Image = defaultImage()
				if o.Image == "" {
					return cliutil.WithHint(fmt.Errorf("this build (%q) is not a release: no default image", currentBuild().Version),
						"pass --image, e.g. --image "+imageRepository+":v0.2.0")
				}
			}
			if o.RunID == "" {
				o.RunID = time.Now().UTC().Format("2006-01-02")
			}
			objs, err := cluster.Manifest(o)
			if err != nil {
				return err
			}
			var b []byte
			switch output {
			case "yaml":
				b, err = cluster.RenderYAML(objs)
			case "json":
				b, err = cluster.RenderJSON(objs)
			default:
				return fmt.Errorf("-o %q: want yaml or json", output)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.Image, "image", "", "the k3scert image with a tag or digest (default: this release's "+imageRepository+":<version>)")
	fl.StringVarP(&o.Namespace, "namespace", "n", cluster.DefaultSUCNamespace, "namespace the system-upgrade-controller watches")
	fl.StringVar(&o.ServiceAccount, "service-account", cluster.DefaultSUCAccount, "ServiceAccount of the jobs (created with its RBAC)")
	fl.StringVar(&o.RunID, "run-id", "", "the plans' version; a new id rotates again (default: today's date, UTC)")
	fl.StringVar(&program, "k3s-program", "k3s", "k3s or rke2 (program and unit names: k3s/k3s-agent, rke2-server/rke2-agent)")
	fl.StringVar(&o.ServerPlan, "server-plan", cluster.DefaultServerPlan, "name of the server plan")
	fl.StringVar(&o.AgentPlan, "agent-plan", cluster.DefaultAgentPlan, "name of the agent plan")
	fl.Int64Var(&o.AgentConcurrency, "agent-concurrency", cluster.DefaultAgentConcurrency, "agents rotated at once")
	fl.Int64Var(&o.JobDeadline, "job-deadline", cluster.DefaultJobDeadline, "jobActiveDeadlineSecs of every job (an agent's job includes waiting for the servers); 0: none")
	fl.StringVar(&o.HostBinary, "host-binary", cluster.DefaultHostBinary, "where the job installs k3scert on the node")
	fl.StringArrayVar(&o.RotateArgs, "rotate-arg", nil, "an extra 'k3scert rotate' argument for every node, e.g. --rotate-arg=--verify-days=60 (repeatable)")
	fl.StringArrayVar(&o.ImagePullSecrets, "image-pull-secret", nil, "a Secret in the namespace for pulling --image (repeatable)")
	fl.StringVarP(&output, "output", "o", "yaml", "yaml (multi-document) or json (a v1 List)")
	_ = c.RegisterFlagCompletionFunc("k3s-program", cliutil.Complete("k3s", "rke2"))
	_ = c.RegisterFlagCompletionFunc("output", cliutil.Complete("yaml", "json"))
	return c
}

// saNamespaceFile is the pod's namespace, next to its ServiceAccount token.
const saNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func newClusterWaitPlanCmd() *cobra.Command {
	var namespace, kubeconfig, runVersion string
	var interval, timeout time.Duration
	c := &cobra.Command{
		Use:   "wait-plan PLAN",
		Short: "Wait until every node a system-upgrade-controller Plan selects has completed it (the agent plan's prepare step)",
		Long: `wait-plan returns once every node the plan selects carries the label the controller sets when
the plan's job completed on it: plan.upgrade.cattle.io/<PLAN> = the plan's status.latestHash.
In a job it uses the pod's ServiceAccount (get plans, get/list nodes); elsewhere --kubeconfig.
The plan must first have resolved the caller's run: --version, by default the calling plan's
version from $SYSTEM_UPGRADE_PLAN_LATEST_VERSION (the plans share the run id), so an agent of a
new run never passes on the servers' labels of the previous run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			w, ns, err := planWatcher(kubeconfig, namespace)
			if err != nil {
				return err
			}
			defer w.Close()
			namespace = ns
			out := cmd.OutOrStdout()
			if !cmd.Flags().Changed("version") {
				runVersion = os.Getenv("SYSTEM_UPGRADE_PLAN_LATEST_VERSION")
			}
			_, err = w.WaitPlan(ctx, namespace, args[0], cluster.WaitOptions{Interval: interval, Version: runVersion,
				Report: func(s string) { fmt.Fprintf(out, "%s %s\n", time.Now().UTC().Format(time.RFC3339), s) }})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "plan %s/%s is complete on every node it selects\n", namespace, args[0])
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVarP(&namespace, "namespace", "n", "", "the plan's namespace (default: the pod's, else "+cluster.DefaultSUCNamespace+")")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "connect with this kubeconfig instead of the pod's ServiceAccount")
	fl.StringVar(&runVersion, "version", "", "the plan must have resolved this version (run id) first (default: $SYSTEM_UPGRADE_PLAN_LATEST_VERSION, the calling plan's version, which the controller sets; empty: any)")
	fl.DurationVar(&interval, "interval", 5*time.Second, "between polls")
	fl.DurationVar(&timeout, "timeout", 0, "give up after this long (default: never; the job's deadline bounds it)")
	return c
}

// planWatcher connects with --kubeconfig, else the pod's ServiceAccount,
// else $KUBECONFIG (by hand on a node); the namespace defaults to the
// pod's, else system-upgrade.
func planWatcher(kubeconfig, namespace string) (*cluster.PlanWatcher, string, error) {
	inPod := false
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	default:
		cfg, err = rest.InClusterConfig()
		inPod = err == nil
		if errors.Is(err, rest.ErrNotInCluster) {
			if env := os.Getenv("KUBECONFIG"); env != "" {
				cfg, err = clientcmd.BuildConfigFromFlags("", env)
			} else {
				return nil, "", cliutil.WithHint(err, "outside a pod pass --kubeconfig")
			}
		}
	}
	if err != nil {
		return nil, "", err
	}
	if namespace == "" {
		namespace = cluster.DefaultSUCNamespace
		if b, err := os.ReadFile(saNamespaceFile); err == nil && inPod {
			namespace = strings.TrimSpace(string(b))
		}
	}
	w, err := cluster.NewPlanWatcher(cfg)
	return w, namespace, err
}

func newClusterHostRotateCmd() *cobra.Command {
	var hostRoot, hostBinary, fromPlan, namespace, kubeconfig string
	c := &cobra.Command{
		Use:   "host-rotate [flags] -- K3SCERT-ARGS...",
		Short: "In a system-upgrade-controller job: install k3scert on the node and run it in the node's root",
		Long: `host-rotate is the upgrade container of the plans 'k3scert cluster plans' prints. It copies
this binary to --host-binary under --host-root (the node's root, mounted at /host by the
controller), then chroots into --host-root and executes that copy with K3SCERT-ARGS, e.g.
'rotate --yes --program=k3s --unit=k3s'. The rotation thus runs with the node's paths, service
manager and loopback listeners, and its journal and backup stay on the node next to the binary
that can resume or roll it back by hand.

With --listener-from-plan (the server plan) it first decides the server's part in the shared
listener secret and passes it as rotate's --cluster-listener: renew on the run's first server,
adopt once another server carries the plan's completed label (node from
$SYSTEM_UPGRADE_NODE_NAME, which the controller sets).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return errors.New("put the k3scert arguments after --, e.g. host-rotate -- rotate --yes")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			wrote, err := cluster.InstallBinary(self, hostRoot, hostBinary)
			if err != nil {
				return err
			}
			if wrote {
				fmt.Fprintf(cmd.OutOrStdout(), "k3scert: installed %s on the node\n", hostBinary)
			}
			if fromPlan != "" {
				node := os.Getenv("SYSTEM_UPGRADE_NODE_NAME")
				if node == "" {
					return errors.New("--listener-from-plan: SYSTEM_UPGRADE_NODE_NAME is not set (the controller sets it in the job)")
				}
				w, ns, err := planWatcher(kubeconfig, namespace)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
				pr, err := w.Progress(ctx, ns, fromPlan)
				cancel()
				w.Close()
				if err != nil {
					return fmt.Errorf("--listener-from-plan: %w", err)
				}
				if pr.LatestHash == "" {
					return fmt.Errorf("--listener-from-plan: plan %s/%s has no status.latestHash yet", ns, fromPlan)
				}
				mode, why := cluster.ListenerModeFor(pr, node)
				fmt.Fprintf(cmd.OutOrStdout(), "k3scert: %s's listener part: %s, %s\n", node, mode, why)
				args = append(args, "--cluster-listener="+mode)
			}
			argv, err := cluster.HostArgv(hostBinary, args)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "k3scert: running in the node's root (%s): %s\n", hostRoot, strings.Join(argv, " "))
			return cluster.ExecInHostRoot(hostRoot, argv, cluster.HostEnv(os.Environ()))
		},
	}
	c.Flags().StringVar(&hostRoot, "host-root", cluster.SUCHostRoot, "the node's root file system")
	c.Flags().StringVar(&hostBinary, "host-binary", cluster.DefaultHostBinary, "where to install k3scert on the node")
	c.Flags().StringVar(&fromPlan, "listener-from-plan", "", "server plan whose progress decides rotate's --cluster-listener (renew on the first server, then adopt)")
	c.Flags().StringVarP(&namespace, "namespace", "n", "", "the plan's namespace (default: the pod's, else "+cluster.DefaultSUCNamespace+")")
	c.Flags().StringVar(&kubeconfig, "kubeconfig", "", "connect with this kubeconfig instead of the pod's ServiceAccount")
	return c
}
