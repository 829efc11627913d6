package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/spf13/cobra"
)

// nodeFlags are the flags every command that looks at a node shares.
type nodeFlags struct {
	dataDir, program, profile, version, at, admin, config string
	kubeconfigs, endpoints, tlsSANs, nodeIPs              []string
	noEndpoints                                           bool
	timeout                                               time.Duration
	secret                                                string
	supervisorPort, apiserverPort                         int
	// oldKubeconfigs are the values of the deprecated --kubeconfig alias of
	// --compare-kubeconfig (kept apart: pflag's string arrays replace their
	// default on the first Set of each flag).
	oldKubeconfigs []string
	// NoKubeconfigAlias, set before register, leaves --kubeconfig free
	// for a command that means "connect with" by it (kubectl's meaning).
	NoKubeconfigAlias bool
	// SecretModes, set before register, are the --secret values a command
	// completes (serve's differ: it never mints); default secretModes.
	SecretModes []string
}

// secretModes are the values of --secret.
var secretModes = []string{"auto", "api", "datastore", "none"}

func (f *nodeFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVarP(&f.dataDir, "data-dir", "d", "", "K3s data dir (default /var/lib/rancher/k3s, or rke2's)")
	fl.StringVar(&f.program, "program", "", "k3s or rke2 (default: detected)")
	fl.StringVar(&f.profile, "profile", "", "release-matrix row (v1.18, v1.19.1, v1.21.2, v1.21.8, v1.22.12, v1.24.0, v1.24.3, v1.31.9, v1.31.10, v1.31.11) or alias v1.19+, current (default: from --k3s-version, else detected from the files; the report says which)")
	fl.StringVar(&f.version, "k3s-version", "", "the node's K3s version, e.g. v1.18.6+k3s1")
	fl.StringVar(&f.at, "at", "now", "judge at this time: RFC3339, YYYY-MM-DD or +90d")
	fl.StringVar(&f.admin, "admin-kubeconfig", "", "K3s's own admin kubeconfig (default: write-kubeconfig from the config files or the unit, else /etc/rancher/k3s/k3s.yaml)")
	fl.StringVar(&f.config, "config", "", "K3s config file; its config.yaml.d drop-ins and the unit's ExecStart flags are read too (default /etc/rancher/k3s/config.yaml)")
	fl.StringArrayVar(&f.kubeconfigs, "compare-kubeconfig", nil, "a copied kubeconfig to compare with the current admin credentials (repeatable)")
	if !f.NoKubeconfigAlias {
		// kubectl's --kubeconfig means "connect with"; ours never did.
		fl.StringArrayVar(&f.oldKubeconfigs, "kubeconfig", nil, "deprecated: use --compare-kubeconfig")
		_ = fl.MarkDeprecated("kubeconfig", "use --compare-kubeconfig (--kubeconfig names a file to compare, not credentials to connect with)")
	}
	fl.StringArrayVar(&f.endpoints, "endpoint", nil, "a TLS endpoint HOST:PORT to probe (repeatable; default: the node's ports when they answer)")
	fl.StringArrayVar(&f.tlsSANs, "tls-san", nil, "a name the serving certificates must carry (repeatable)")
	fl.StringArrayVar(&f.nodeIPs, "node-ip", nil, "a node IP the serving certificates must carry (repeatable)")
	fl.BoolVar(&f.noEndpoints, "no-endpoints", false, "do not probe endpoints")
	fl.DurationVar(&f.timeout, "timeout", 1500*time.Millisecond, "per-endpoint timeout")
	fl.StringVar(&f.secret, "secret", "auto", "where to read the listener secret: auto, api, datastore or none")
	fl.IntVar(&f.supervisorPort, "supervisor-port", 0, "the supervisor (listener) port when not the default (k3s 6443, rke2 9345), e.g. a lab node")
	fl.IntVar(&f.apiserverPort, "apiserver-port", 0, "the apiserver port when not the default (k3s 6444, rke2 6443)")
	modes := f.SecretModes
	if modes == nil {
		modes = secretModes
	}
	_ = c.RegisterFlagCompletionFunc("secret", cliutil.Complete(modes...))
	_ = c.RegisterFlagCompletionFunc("program", cliutil.Complete("k3s", "rke2"))
	_ = c.RegisterFlagCompletionFunc("profile", cliutil.Complete(profileNames()...))
}

// profileNames are the --profile values to complete: the three names
// people use, then every matrix row; only names ProfileByName accepts.
func profileNames() []string {
	var out []string
	seen := map[string]bool{}
	cand := []string{"v1.18", "v1.19+", "current"}
	for _, p := range k3s.Profiles {
		cand = append(cand, p.Name)
	}
	for _, n := range cand {
		if _, err := k3s.ProfileByName(n); err == nil && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// validate checks the flag values every node command shares: usage errors
// (exit 3) before anything is read.
func (f *nodeFlags) validate() error {
	if f.program != "" && f.program != "k3s" && f.program != "rke2" {
		return errors.New("--program must be k3s or rke2")
	}
	if err := cliutil.OneOf("--secret", f.secret, secretModes...); err != nil {
		return err
	}
	if err := cliutil.ValidPort("--supervisor-port", f.supervisorPort); err != nil {
		return err
	}
	if err := cliutil.ValidPort("--apiserver-port", f.apiserverPort); err != nil {
		return err
	}
	if f.timeout < 0 {
		return fmt.Errorf("--timeout %s: must not be negative", f.timeout)
	}
	for _, e := range f.endpoints {
		if err := cliutil.ValidHostPort("--endpoint", e); err != nil {
			return err
		}
	}
	return nil
}

// options turns flags into check.Options; now is read once, here.
func (f *nodeFlags) options(now time.Time) (check.Options, error) {
	if err := f.validate(); err != nil {
		return check.Options{}, err
	}
	at, err := cliutil.ParseAt(f.at, now)
	if err != nil {
		return check.Options{}, fmt.Errorf("--at %w", err)
	}
	o := check.Options{
		DataDir: f.dataDir, Program: k3s.Program(f.program), Profile: f.profile, Version: f.version,
		At: at.UTC().Truncate(time.Second), AdminKubeconfig: f.admin, ConfigFile: f.config,
		Kubeconfigs: append(append([]string{}, f.kubeconfigs...), f.oldKubeconfigs...), Endpoints: f.endpoints, NoEndpoint: f.noEndpoints, Timeout: f.timeout,
		TLSSANs: f.tlsSANs, NodeIPs: f.nodeIPs,
	}
	o.Ports = f.ports()
	if o.Profile == "" && o.Version == "" {
		o.Version = installedVersion(f.program)
	}
	o.Secret = secretGetter(f)
	return o, nil
}

func newCheckCmd() *cobra.Command {
	var nf nodeFlags
	var output string
	c := &cobra.Command{
		Use:   "check",
		Short: "Inventory and judge every certificate of the node (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
		Long: `check reads every certificate and key the node depends on — the files under server/tls and
agent/, dynamic-cert.json, the k3s-serving secret (through the API, else the datastore), the
kubeconfigs — and what the node's TLS ports serve, then judges them at --at (default now).
Every finding has a stable code (K3Cnnn) and a page under docs/findings/.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (a usage error, no data dir, or the listener
certificate, the secret or a kubeconfig could not be read: check never says OK about what it
could not see).`,
		Example: `  # the node as it is now (run as root)
  k3scert check

  # an RKE2 node, every certificate of every chain, with issuer and fingerprint
  k3scert check -d /var/lib/rancher/rke2 -o wide

  # what will be wrong in 90 days, and whether a copied kubeconfig still works
  k3scert check --at +90d --compare-kubeconfig ~/.kube/config

  # offline: no probing of the node's ports, no secret lookup
  k3scert check --no-endpoints --secret none -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !validOutput(output, render.Formats...) {
				return fmt.Errorf("unknown output format %q (want one of %s)", output, strings.Join(render.Formats, ", "))
			}
			o, err := nf.options(time.Now())
			if err != nil {
				return err
			}
			r, inv, err := check.Run(context.Background(), o)
			if err != nil {
				return dataDirError(err)
			}
			if blind := blindSpots(inv); len(blind) > 0 && r.Summary.ExitCode < report.ExitCritical {
				// Never OK (nor a mere WARNING) about what could not be
				// read: the K3C900 findings say what and why.
				r.Summary.Status, r.Summary.ExitCode = "UNKNOWN", report.ExitUnknown
			}
			if err := render.Report(cmd.OutOrStdout(), r, output, render.Options{Color: cliutil.IsTerminal(os.Stdout)}); err != nil {
				return err
			}
			if r.Summary.ExitCode != 0 {
				return exitError{r.Summary.ExitCode}
			}
			return nil
		},
	}
	nf.register(c)
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide, json, yaml or html")
	_ = c.RegisterFlagCompletionFunc("output", cliutil.Complete(render.Formats...))
	return c
}

// dataDirError adds the hint for an unusable data dir: run as root when it
// is a permission problem, else pass -d.
func dataDirError(err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return cliutil.WithHint(err, "run k3scert as root (the data dir is root-only)")
	case errors.Is(err, check.ErrNoDataDir):
		return cliutil.WithHint(err, "pass the data dir with -d/--data-dir (K3s: /var/lib/rancher/k3s, RKE2: /var/lib/rancher/rke2)")
	}
	return err
}

// blindSpots lists what decides whether clients can still connect (the
// listener certificate's copies, the serving secret, kubeconfigs) but could
// not be read. check and forecast turn a non-empty list into UNKNOWN.
func blindSpots(inv *source.Inventory) []string {
	if inv == nil {
		return nil
	}
	var out []string
	for _, p := range inv.Problems {
		what := ""
		switch p.Source {
		case source.DynamicCert:
			what = "the listener certificate"
		case source.Secret:
			what = "the listener" // Location is "secret NS/NAME"
		case source.Kubeconfig:
			if strings.HasPrefix(p.Detail, "references ") {
				// Read fine; a file it names is missing: a finding
				// about the kubeconfig (K3C900), not a blind spot.
				continue
			}
			what = "the kubeconfig"
		default:
			continue
		}
		out = append(out, fmt.Sprintf("%s %s: %s (%s)", what, p.Location, p.Detail, p.Reason))
	}
	return out
}

// ports overrides the program's default ports (--supervisor-port,
// --apiserver-port), or returns nil.
func (f *nodeFlags) ports() *k3s.Ports {
	if f.supervisorPort == 0 && f.apiserverPort == 0 {
		return nil
	}
	p := k3s.DefaultPorts(k3s.Program(f.program))
	if f.program == "" {
		p = k3s.DefaultPorts(k3s.K3s)
	}
	if f.supervisorPort != 0 {
		p.Supervisor = f.supervisorPort
	}
	if f.apiserverPort != 0 {
		p.APIServer = f.apiserverPort
	}
	return &p
}

func validOutput(o string, allowed ...string) bool {
	for _, a := range allowed {
		if o == a {
			return true
		}
	}
	return false
}

// installedVersion asks the node's own binary for its version (`k3s
// --version`, or rke2's), so the profile follows the installed K3s. It
// returns "" when there is none; check then detects or assumes a profile
// and says which.
func installedVersion(program string) string {
	progs := []string{"k3s", "rke2"}
	if program != "" {
		progs = []string{program}
	}
	for _, p := range progs {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		out, err := exec.CommandContext(ctx, path, "--version").Output()
		cancel()
		if err == nil {
			if line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n"); line != "" {
				return line
			}
		}
	}
	return ""
}
