package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/render"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newForecastCmd) }

// forecastFlags are forecast's own flags; the node flags come from check.
type forecastFlags struct {
	from, to string
	restarts []string
	output   string
	validity int
}

// options resolves the forecast times relative to now (read once, by the
// caller): --from defaults to now, --restart-at offsets are from --from.
func (ff forecastFlags) times(now time.Time) (from time.Time, to *time.Time, restarts []time.Time, err error) {
	from, err = cliutil.ParseAt(ff.from, now)
	if err != nil {
		return from, nil, nil, fmt.Errorf("--from %w", err)
	}
	from = from.UTC().Truncate(time.Second)
	if ff.to != "" {
		t, err := cliutil.ParseAt(ff.to, from)
		if err != nil {
			return from, nil, nil, fmt.Errorf("--to %w", err)
		}
		t = t.UTC()
		if !t.After(from) {
			return from, nil, nil, fmt.Errorf("--to %s is not after --from %s", t.Format(time.RFC3339), from.Format(time.RFC3339))
		}
		to = &t
	}
	for _, s := range ff.restarts {
		r, err := cliutil.ParseAt(s, from)
		if err != nil {
			return from, nil, nil, fmt.Errorf("--restart-at %w", err)
		}
		restarts = append(restarts, r.UTC())
	}
	return from, to, restarts, nil
}

func newForecastCmd() *cobra.Command {
	var nf nodeFlags
	var ff forecastFlags
	c := &cobra.Command{
		Use:   "forecast",
		Short: "Timeline of every certificate: renew windows, expiries, renewals at planned restarts, and the lock-out date",
		Long: `forecast predicts, from the node's certificates as they are now and its K3s version profile,
when each certificate enters its renew window, when it expires, what each planned restart
(--restart-at) would renew, and when the node stops answering its clients (the lock-out: the
first expiry among what :6443 serves and what kubeconfigs hold). Events are grouped by what
you must do. On v1.18 a restart renews the files but never the listener certificate.`,
		Example: `  k3scert forecast
  k3scert forecast --k3s-version v1.18.6+k3s1 --restart-at 2021-07-20 --to 2022-12-31
  k3scert forecast --restart-at +60d -o html > forecast.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !validOutput(ff.output, render.ForecastFormats...) {
				return fmt.Errorf("unknown output format %q (want one of %s)", ff.output, strings.Join(render.ForecastFormats, ", "))
			}
			if ff.validity < 0 {
				return fmt.Errorf("--validity-days %d: must not be negative (0 = K3s's default, 365)", ff.validity)
			}
			if ff.validity > 36500 {
				return fmt.Errorf("--validity-days %d: more than 100 years", ff.validity)
			}
			now := time.Now()
			if cmd.Flags().Changed("at") && !cmd.Flags().Changed("from") {
				ff.from = nf.at
			}
			from, to, restarts, err := ff.times(now)
			if err != nil {
				return cliutil.WithHint(err, "dates are RFC3339 (2021-07-20T00:00:00Z), YYYY-MM-DD or an offset such as +90d")
			}
			nf.at = from.Format(time.RFC3339)
			o, err := nf.options(now)
			if err != nil {
				return err
			}
			r, inv, err := check.Run(context.Background(), o)
			if err != nil {
				return dataDirError(err)
			}
			prof, err := k3s.ProfileByName(r.Node.Profile)
			if err != nil {
				return err
			}
			certs := forecast.FromInventory(inv, r.Node)
			end := forecast.DefaultTo(certs, from)
			if to != nil {
				end = *to
			}
			for _, rs := range restarts {
				if rs.Before(from) || rs.After(end) {
					return cliutil.WithHint(fmt.Errorf("--restart-at %s is outside the forecast (%s to %s)",
						rs.Format(time.RFC3339), from.Format(time.RFC3339), end.Format(time.RFC3339)), "move --from or --to, or the restart")
				}
			}
			f := forecast.Run(forecast.Input{Node: r.Node, Profile: prof, Certs: certs, Now: now.UTC().Truncate(time.Second),
				From: from, To: end, Restarts: restarts, ValidityDays: ff.validity, Findings: r.Findings})
			// Blind: what decides the lock-out could not be read. The
			// forecast says UNKNOWN instead of OK and exits 3.
			f.Unknown = blindSpots(inv)
			if r.Node.Role == string(k3s.RoleServer) && !listenerSeen(inv) && len(f.Unknown) == 0 {
				ports := k3s.DefaultPorts(k3s.Program(r.Node.Program))
				if o.Ports != nil {
					ports = *o.Ports
				}
				f.Unknown = append(f.Unknown, fmt.Sprintf("the listener certificate: no copy found (dynamic-cert.json absent, the serving secret absent or not read (--secret), "+
					"the supervisor port not answering or not probed); what :%d serves decides the lock-out", ports.Supervisor))
			}
			if err := render.Forecast(cmd.OutOrStdout(), f, ff.output, render.Options{Color: ff.output == "text" && cliutil.IsTerminal(os.Stdout), SupervisorPort: nf.supervisorPort}); err != nil {
				return err
			}
			if len(f.Unknown) > 0 {
				return exitError{report.ExitUnknown}
			}
			return nil
		},
	}
	nf.register(c)
	_ = c.Flags().MarkHidden("at")
	fl := c.Flags()
	fl.StringVar(&ff.from, "from", "now", "start of the forecast, and when the node is judged: RFC3339, YYYY-MM-DD or an offset (+30d)")
	fl.StringVar(&ff.to, "to", "", "end of the forecast (default: the latest CA expiry); offsets are from --from")
	fl.StringArrayVar(&ff.restarts, "restart-at", nil, "a planned restart of K3s (repeatable); offsets are from --from")
	fl.IntVar(&ff.validity, "validity-days", 0, "validity of renewed certificates (default 365; CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS)")
	fl.StringVarP(&ff.output, "output", "o", "text", "output format: text, json, yaml or html")
	_ = c.RegisterFlagCompletionFunc("output", cliutil.Complete(render.ForecastFormats...))
	return c
}

// listenerSeen reports whether any copy of the listener certificate was
// read: dynamic-cert.json, the serving secret, or what the supervisor port
// served.
func listenerSeen(inv *source.Inventory) bool {
	for _, c := range inv.Certs {
		if c.SpecID == "listener" || c.SpecID == "endpoint-supervisor" {
			return true
		}
	}
	return false
}
