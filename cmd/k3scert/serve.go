package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cliutil"
	"github.com/k3scert/k3scert/internal/exporter"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newServeCmd) }

func newServeCmd() *cobra.Command {
	var nf nodeFlags
	var listen string
	var interval, debounce time.Duration
	var verbose bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Prometheus exporter of the node's certificates and findings (/metrics, /healthz, /report)",
		Long: `serve scans the node like check, then again every --interval and shortly after any
change under the data dir's certificate directories, and serves the cached result:
  /metrics  Prometheus metrics (a scrape never rescans)
  /healthz  200 once a scan succeeded and is recent, 503 otherwise
  /report   the HTML report of the last scan
It listens on loopback by default. --at is re-read at every scan (e.g. +30d judges 30 days ahead).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := nf.options(time.Now()) // validates the flags once
			if err != nil {
				return err
			}
			if interval < time.Second {
				return errors.New("--interval must be at least 1s")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			e, err := exporter.New(exporter.Options{
				Scan: func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error) {
					o, err := nf.options(now)
					if err != nil {
						return report.Report{}, nil, err
					}
					return check.Run(ctx, o)
				},
				Dirs:     func() []string { return exporter.WatchDirs(o) },
				Interval: interval,
				Debounce: debounce,
				Log:      log,
			})
			if err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(e, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return cliutil.WithHint(err, "pick a free address with --listen, e.g. --listen 127.0.0.1:9797")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.ErrOrStderr(), "k3scert: serving http://%s/metrics (also /healthz, /report); rescans every %s and on changes\n", ln.Addr(), interval)
			if err := e.Serve(ctx, ln, reg, 10*time.Second); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "k3scert: stopped")
			return nil
		},
	}
	nf.register(c)
	fl := c.Flags()
	fl.StringVar(&listen, "listen", "127.0.0.1:9796", "HOST:PORT to serve on (loopback by default; the DaemonSet passes the node IP)")
	fl.DurationVar(&interval, "interval", 5*time.Minute, "time between scheduled rescans")
	fl.DurationVar(&debounce, "debounce", 2*time.Second, "quiet time after a file change before the rescan")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log every file change")
	return c
}
