package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
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
}

func (f *nodeFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.StringVarP(&f.dataDir, "data-dir", "d", "", "K3s data dir (default /var/lib/rancher/k3s, or rke2's)")
	fl.StringVar(&f.program, "program", "", "k3s or rke2 (default: detected)")
	fl.StringVar(&f.profile, "profile", "", "release-matrix row (v1.18, v1.19.1, v1.21.2, v1.21.8, v1.22.12, v1.24.0, v1.24.3, v1.31.9, v1.31.10, v1.31.11) or alias v1.19+, current (default: from --k3s-version, else detected from the files; the report says which)")
	fl.StringVar(&f.version, "k3s-version", "", "the node's K3s version, e.g. v1.18.6+k3s1")
	fl.StringVar(&f.at, "at", "now", "judge at this time: RFC3339, YYYY-MM-DD or +90d")
	fl.StringVar(&f.admin, "admin-kubeconfig", "", "K3s's own admin kubeconfig (default: write-kubeconfig from the config files or the unit, else /etc/rancher/k3s/k3s.yaml)")
	fl.StringVar(&f.config, "config", "", "K3s config file; its config.yaml.d drop-ins and the unit's ExecStart flags are read too (default /etc/rancher/k3s/config.yaml)")
	fl.StringArrayVar(&f.kubeconfigs, "kubeconfig", nil, "a copied kubeconfig to compare with the current admin credentials (repeatable)")
	fl.StringArrayVar(&f.endpoints, "endpoint", nil, "a TLS endpoint HOST:PORT to probe (repeatable; default: the node's ports when they answer)")
	fl.StringArrayVar(&f.tlsSANs, "tls-san", nil, "a name the serving certificates must carry (repeatable)")
	fl.StringArrayVar(&f.nodeIPs, "node-ip", nil, "a node IP the serving certificates must carry (repeatable)")
	fl.BoolVar(&f.noEndpoints, "no-endpoints", false, "do not probe endpoints")
	fl.DurationVar(&f.timeout, "timeout", 1500*time.Millisecond, "per-endpoint timeout")
	fl.StringVar(&f.secret, "secret", "auto", "where to read the listener secret: auto, api, datastore or none")
	fl.IntVar(&f.supervisorPort, "supervisor-port", 0, "the supervisor (listener) port when not the default (k3s 6443, rke2 9345), e.g. a lab node")
	fl.IntVar(&f.apiserverPort, "apiserver-port", 0, "the apiserver port when not the default (k3s 6444, rke2 6443)")
}

// options turns flags into check.Options; now is read once, here.
func (f *nodeFlags) options(now time.Time) (check.Options, error) {
	at, err := cliutil.ParseAt(f.at, now)
	if err != nil {
		return check.Options{}, err
	}
	o := check.Options{
		DataDir: f.dataDir, Program: k3s.Program(f.program), Profile: f.profile, Version: f.version,
		At: at.UTC().Truncate(time.Second), AdminKubeconfig: f.admin, ConfigFile: f.config,
		Kubeconfigs: f.kubeconfigs, Endpoints: f.endpoints, NoEndpoint: f.noEndpoints, Timeout: f.timeout,
		TLSSANs: f.tlsSANs, NodeIPs: f.nodeIPs,
	}
	if f.program != "" && f.program != "k3s" && f.program != "rke2" {
		return o, errors.New("--program must be k3s or rke2")
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
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !validOutput(output, render.Formats...) {
				return fmt.Errorf("unknown output format %q (want one of %s)", output, strings.Join(render.Formats, ", "))
			}
			o, err := nf.options(time.Now())
			if err != nil {
				return err
			}
			r, _, err := check.Run(context.Background(), o)
			if err != nil {
				if errors.Is(err, check.ErrNoDataDir) {
					return cliutil.WithHint(err, "pass the data dir with -d/--data-dir (K3s: /var/lib/rancher/k3s, RKE2: /var/lib/rancher/rke2)")
				}
				return err
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
	return c
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
