package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/k3scert/k3scert/internal/render"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics from g (a registry holding e, and whatever else
// the caller registered), /healthz and /report.
//
// /healthz answers 200 once a scan succeeded and the last success is not
// older than three intervals plus the scan timeout, 503 otherwise (no scan
// yet, the data dir vanished, or the scheduler is stuck). /report is the
// HTML page of `k3scert check -o html` for the cached report; it never
// rescans either.
func (e *Exporter) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogPrinter{e}, MaxRequestsInFlight: 4, Timeout: 30 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", e.healthz)
	mux.HandleFunc("GET /report", e.reportPage)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><meta charset="utf-8"><title>k3scert</title></head><body><h1>k3scert</h1><ul><li><a href="metrics">/metrics</a></li><li><a href="report">/report</a></li><li><a href="healthz">/healthz</a></li></ul></body></html>`+"\n")
	})
	return mux
}

type slogPrinter struct{ e *Exporter }

func (p slogPrinter) Println(v ...any) { p.e.o.Log.Warn("metrics", "err", fmt.Sprint(v...)) }

func (e *Exporter) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	s := e.state.Load()
	switch {
	case s.lastAt.IsZero() && s.lastErr != "":
		http.Error(w, "scan failed: "+s.lastErr, http.StatusServiceUnavailable)
	case s.lastAt.IsZero():
		http.Error(w, "no scan yet", http.StatusServiceUnavailable)
	case e.o.Now().Sub(s.lastAt) > 3*e.o.Interval+e.o.ScanTimeout:
		http.Error(w, "last successful scan at "+s.lastAt.UTC().Format(time.RFC3339)+" is too old", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

func (e *Exporter) reportPage(w http.ResponseWriter, _ *http.Request) {
	r, ok := e.Report()
	if !ok {
		http.Error(w, "no scan yet", http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := render.ReportHTML(&buf, r); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// Serve runs the scheduler and an HTTP server on ln until ctx is done, then
// stops accepting, lets requests in flight finish (at most grace) and
// waits for the scheduler to return. An error of the server other than
// its shutdown ends both.
func (e *Exporter) Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer, grace time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{
		Handler:           e.Handler(g),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = e.Run(ctx)
	}()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	var err error
	select {
	case err = <-srvErr:
		// The server failed on its own.
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), grace)
		err = srv.Shutdown(sctx)
		scancel()
		if err != nil {
			_ = srv.Close() // grace ran out: drop what is left
		}
		if serr := <-srvErr; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	cancel()
	<-runDone
	return err
}
