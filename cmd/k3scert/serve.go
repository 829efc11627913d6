package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
)

func init() { extraCommands = append(extraCommands, newServeCmd) }

// serve --secret values. serve never mints a credential: it reads the
// listener secret with credentials it is given, or not at all.
const (
	serveSecretAuto = "auto"
	serveSecretSA   = kube.ModeServiceAccount
	serveSecretKC   = kube.ModeKubeconfig
	serveSecretNone = "none"
)

func newServeCmd() *cobra.Command {
	var nf nodeFlags
	var listen, nodeName, apiKubeconfig string
	var interval, debounce time.Duration
	var verbose bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Prometheus exporter of the node's certificates and findings (/metrics, /healthz, /report)",
		Long: `serve scans the node like check, then again every --interval and shortly after any
change under the data dir's certificate directories, and serves the cached result:
  /metrics  Prometheus metrics (a scrape never rescans); every series carries node=<--node-name>
  /healthz  200 once a scan succeeded and is recent, 503 otherwise (also while a scan is stuck)
  /report   the HTML report of the last scan
It listens on loopback by default. --at is re-read at every scan (e.g. +30d judges 30 days ahead).

Identity: serve never mints a certificate and never reads the client CA key. It reads the
listener secret (kube-system/k3s-serving) only with credentials it is given:
  --secret auto            in a pod, its ServiceAccount (token and CA under
                           /var/run/secrets/kubernetes.io/serviceaccount); outside a pod the
                           --api-kubeconfig file when given; otherwise the secret is not read
                           (files and the wire are still judged)
  --secret serviceaccount  the pod's ServiceAccount, or fail
  --secret kubeconfig      the --api-kubeconfig file
  --secret none            never read it
` + "`k3scert check`" + ` on a broken node may mint an ephemeral admin certificate (--secret api); serve never does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode := nf.secret
			switch mode {
			case serveSecretAuto, serveSecretSA, serveSecretKC, serveSecretNone:
			case "api", "datastore":
				return cliutil.WithHint(fmt.Errorf("serve does not read the secret with --secret %s", mode),
					"serve reads it with a ServiceAccount or --api-kubeconfig only; `k3scert check --secret "+mode+"` reads it as root on the node")
			default:
				return fmt.Errorf("--secret must be auto, serviceaccount, kubeconfig or none, not %q", mode)
			}
			if mode == serveSecretKC && apiKubeconfig == "" {
				return errors.New("--secret kubeconfig needs --api-kubeconfig FILE")
			}
			nf.secret = serveSecretNone      // check's own getter (which may mint) is never used
			o, err := nf.options(time.Now()) // validates the flags once
			if err != nil {
				return err
			}
			if interval < time.Second {
				return errors.New("--interval must be at least 1s")
			}
			if nodeName == "" {
				nodeName = os.Getenv("NODE_NAME")
			}
			if nodeName == "" {
				nodeName, _ = os.Hostname()
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))

			id := &serveIdentity{mode: serveSecretNone}
			reader, err := secretReader(mode, apiKubeconfig, nf.timeout)
			if err != nil {
				return err
			}
			if reader != nil {
				id.mode, id.reader = reader.Mode, reader
				defer reader.Close()
			}
			getter := id.getter(&nf)
			if reader == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "k3scert: the listener secret is not read (%s); files and the wire are judged\n", notReadReason(mode))
			}
			e, err := exporter.New(exporter.Options{
				Scan: func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error) {
					o, err := nf.options(now)
					if err != nil {
						return report.Report{}, nil, err
					}
					o.Secret = getter
					return check.Run(ctx, o)
				},
				Dirs:     func() []string { return exporter.WatchDirs(o) },
				Interval: interval,
				Debounce: debounce,
				Log:      log,
				Node:     nodeName,
			})
			if err != nil {
				return err
			}
			b := currentBuild()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
				buildInfoCollector(b, nodeName), id.collector(nodeName))
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return cliutil.WithHint(err, "pick a free address with --listen, e.g. --listen 127.0.0.1:9797")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				stop() // a second SIGTERM/SIGINT ends the process at once
			}()
			fmt.Fprintf(cmd.ErrOrStderr(), "k3scert: %s serving http://%s/metrics (also /healthz, /report) as node %q; rescans every %s and on changes\n",
				b.Version, ln.Addr(), nodeName, interval)
			if err := e.Serve(ctx, ln, reg, 10*time.Second); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "k3scert: stopped")
			return nil
		},
	}
	nf.SecretModes = []string{"auto", "serviceaccount", "kubeconfig", "none"}
	nf.register(c)
	fl := c.Flags()
	fl.Lookup("secret").Usage = "how to read the listener secret: auto (ServiceAccount in a pod, else --api-kubeconfig, else not read), serviceaccount, kubeconfig or none; serve never mints credentials"
	fl.StringVar(&apiKubeconfig, "api-kubeconfig", "", "kubeconfig with the credentials to read the listener secret with, outside a pod (never minted)")
	fl.StringVar(&nodeName, "node-name", "", "value of the node label on every series (default $NODE_NAME, from the downward API, else the host name)")
	fl.StringVar(&listen, "listen", "127.0.0.1:9796", "HOST:PORT to serve on (loopback by default; the DaemonSet passes the node IP)")
	fl.DurationVar(&interval, "interval", 5*time.Minute, "time between scheduled rescans")
	fl.DurationVar(&debounce, "debounce", 2*time.Second, "quiet time after a file change before the rescan")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log every file change")
	return c
}

// secretReader picks serve's credentials; nil means the secret is not read.
func secretReader(mode, kubeconfig string, timeout time.Duration) (*kube.SecretReader, error) {
	t := max(timeout, 5*time.Second)
	switch mode {
	case serveSecretNone:
		return nil, nil
	case serveSecretSA:
		return kube.InCluster(t)
	case serveSecretKC:
		return kube.FromKubeconfig(kubeconfig, t)
	}
	// auto
	if kube.InPod() {
		return kube.InCluster(t)
	}
	if kubeconfig != "" {
		return kube.FromKubeconfig(kubeconfig, t)
	}
	return nil, nil
}

func notReadReason(mode string) string {
	if mode == serveSecretNone {
		return "--secret none"
	}
	return "not in a pod and no --api-kubeconfig"
}

// serveIdentity is who serve is to the API server, learnt once with a
// SelfSubjectReview, and k3scert_identity_info.
type serveIdentity struct {
	mode   string
	reader *kube.SecretReader

	mu   sync.Mutex
	user string
}

func (s *serveIdentity) whoAmI(ctx context.Context) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.user == "" && s.reader != nil {
		if u, err := s.reader.WhoAmI(ctx); err == nil {
			s.user = u
		}
	}
	return s.user
}

// getter reads the listener secret of a server node with the given
// credentials; agents have none to read.
func (s *serveIdentity) getter(f *nodeFlags) source.SecretGetter {
	if s.reader == nil {
		return nil
	}
	return func(ctx context.Context) (*corev1.Secret, string, error) {
		n, ok, err := serverNode(f)
		if err != nil || !ok {
			return nil, "", err
		}
		l := k3s.ListenerSpec(n.Program)
		via := s.reader.Via(s.whoAmI(ctx))
		sec, err := s.reader.Get(ctx, l.Namespace, l.SecretName)
		if err != nil {
			return nil, "", err
		}
		return sec, via, nil
	}
}

var descIdentity = prometheus.NewDesc("k3scert_identity_info",
	"Who serve is to the API server: mode is serviceaccount, kubeconfig or none (the listener secret is not read); user is the name a SelfSubjectReview returned. serve never mints credentials. Always 1.",
	[]string{"node", "mode", "user"}, nil)

func (s *serveIdentity) collector(node string) prometheus.Collector {
	return identityCollector{s, node}
}

type identityCollector struct {
	s    *serveIdentity
	node string
}

func (c identityCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descIdentity }
func (c identityCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	user := c.s.user
	c.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descIdentity, prometheus.GaugeValue, 1, c.node, c.s.mode, user)
}
