package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/render"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Handler serves /metrics, /healthz and /report.
//
// /metrics is the exporter's pre-rendered certificate and finding families
// followed by the exporter's scan metrics and whatever g gathers (the Go
// and process collectors, build info; g must not hold the exporter
// itself, nil for none). The format is negotiated as client_golang's
// promhttp does with EnableOpenMetrics (text 0.0.4, OpenMetrics 1.0,
// protobuf), and the body is gzip-compressed when the scraper accepts it.
//
// /healthz answers 200 once a scan succeeded and the last success is not
// older than three intervals plus the scan timeout, 503 otherwise (no scan
// yet, the data dir vanished, a scan is stuck past its deadline, or the
// scheduler is stuck). /report is the HTML page of `k3scert check -o html`
// for the cached report; it never rescans either.
func (e *Exporter) Handler(g prometheus.Gatherer) http.Handler {
	var others prometheus.Gatherer
	if g != nil {
		others = withoutOwn{g} // a registry that also holds e: its families are served once
	}
	mux := http.NewServeMux()
	sem := make(chan struct{}, 4)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, req *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			http.Error(w, "too many scrapes in flight", http.StatusServiceUnavailable)
			return
		}
		e.serveMetrics(w, req, others)
	})
	mux.HandleFunc("GET /healthz", e.healthz)
	mux.HandleFunc("GET /report", e.reportPage)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><meta charset="utf-8"><title>k3scert</title></head><body><h1>k3scert</h1><ul><li><a href="metrics">/metrics</a></li><li><a href="report">/report</a></li><li><a href="healthz">/healthz</a></li></ul></body></html>`+"\n")
	})
	return mux
}

// withoutOwn drops the exporter's own families from a gatherer, so that a
// registry holding the exporter (as before pre-rendering) still works.
type withoutOwn struct{ g prometheus.Gatherer }

func (w withoutOwn) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := w.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		if !ownFamily(mf.GetName()) {
			out = append(out, mf)
		}
	}
	return out, err
}

// textFormat is the Prometheus text format 0.0.4, rendered at every scan.
var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

func (e *Exporter) serveMetrics(w http.ResponseWriter, req *http.Request, g prometheus.Gatherer) {
	format := expfmt.NegotiateIncludingOpenMetrics(req.Header)
	if format.FormatType() == expfmt.TypeTextPlain {
		format = textFormat // one text rendering, whatever escaping was asked
	}
	gz := acceptsGzip(req.Header.Get("Accept-Encoding"))
	// One state for the whole exposition: the large families and the
	// scan's own metrics (last_scan_success, scans_total, …) of the same
	// scan, even when a scan ends during the scrape.
	s := e.state.Load()
	big, err := s.rendered.get(format, gz)
	if err != nil {
		http.Error(w, "render metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	small := prometheus.NewRegistry()
	small.MustRegister(smallCollector{e, s})
	gs := prometheus.Gatherers{small}
	if g != nil {
		gs = append(gs, g)
	}
	mfs, gerr := gs.Gather()
	if gerr != nil {
		e.o.Log.Warn("metrics", "err", gerr) // serve what was gathered, as promhttp's ContinueOnError
	}
	var rest bytes.Buffer
	enc := expfmt.NewEncoder(&rest, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			http.Error(w, "encode metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil { // OpenMetrics: "# EOF"
			http.Error(w, "encode metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	tail := rest.Bytes()
	if gz {
		// One gzip member: the pre-compressed families, then these.
		if tail, err = gzipFinish(big, tail); err != nil {
			http.Error(w, "compress metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Type", string(format))
	w.Header().Set("Content-Length", strconv.Itoa(len(big.b)+len(tail)))
	w.Header().Add("Vary", "Accept-Encoding")
	_, _ = w.Write(big.b)
	_, _ = w.Write(tail)
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip
// (q > 0), as promhttp's negotiation between gzip and identity does.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}

func (e *Exporter) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	s := e.state.Load()
	running, stuck := e.running()
	switch {
	case stuck:
		http.Error(w, fmt.Sprintf("scan stuck: running for %s, past its %s deadline", running.Round(time.Second), e.o.ScanTimeout), http.StatusServiceUnavailable)
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
	// A scan that ignores its context must not keep SIGTERM from ending
	// the process: wait for the scheduler at most grace.
	select {
	case <-runDone:
	case <-time.After(grace):
		e.o.Log.Warn("scheduler did not stop within the grace period; exiting without it")
	}
	return err
}
