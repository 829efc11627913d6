// Package exporter is k3scert's Prometheus exporter: a collector over the
// cached result of the last scan of the node (`k3scert check`'s report and
// the inventory's source problems), a scheduler that rescans on an interval
// and when files under the watched directories change, and the HTTP
// endpoints of `k3scert serve`.
//
// A scrape never rescans. Each scan renders the per-certificate and
// per-finding families once per format (the gzip-compressed text format at
// the scan, others at the first scrape that asks for them), written
// directly from the report, not through metric objects; a scrape copies
// those bytes, gathers only the few dozen series of the scan itself and,
// compressed, finishes the one gzip member the pre-compressed bytes start. Between scans
// the exporter keeps the report (plain strings and times, for /report and
// the renderings) and nothing else: no x509 object, no file bytes, no
// private key material; the inventory is dropped after its problems are
// counted.
//
// Bundle entries: every certificate of a registry file (a CA bundle the
// user maintains under containerd's certs.d) is exported, each a CA that
// can expire on its own; of every other location only index 0, the
// certificate that the location is. The CA copies K3s appends to every
// leaf file are the same certificates as the CA files, which are
// exported at their own index 0; a copy that differs is a chain problem
// and surfaces as a K3C302 finding. This keeps one series per K3s file
// instead of two to four, and matches the diagnosis, which judges index
// 0 only (exportedCerts says how registry entries that share subject and
// issuer stay apart).
//
// This package (its scheduler) is allowed to read the clock; the scan it
// triggers receives that time as a parameter.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// ScanFunc scans the node as it is at now.
type ScanFunc func(ctx context.Context, now time.Time) (report.Report, *source.Inventory, error)

// Options configure an Exporter.
type Options struct {
	// Scan reads and judges the node; required.
	Scan ScanFunc
	// Dirs lists the directories to watch for changes. It is called before
	// every scan, so directories that appear later are picked up. Missing
	// directories are skipped. nil watches nothing.
	Dirs func() []string
	// Interval between scans; default 5m.
	Interval time.Duration
	// Debounce is how long the file system must be quiet after a change
	// before the rescan; default 2s. A burst of changes is rescanned at most
	// MaxDelay after its first event (default 10 × Debounce).
	Debounce time.Duration
	MaxDelay time.Duration
	// ScanTimeout bounds one scan; default 2m.
	ScanTimeout time.Duration
	// Now is the exporter's clock; default time.Now.
	Now func() time.Time
	// Log receives scan failures and watch errors; default discards.
	Log *slog.Logger
	// Node is the value of the node label on every series (--node-name or
	// NODE_NAME); empty omits it.
	Node string
}

// Exporter caches the last scan and exposes it as metrics.
type Exporter struct {
	o     Options
	state atomic.Pointer[state]
	// mu serialises scans (the scheduler and direct Scan calls).
	mu    sync.Mutex
	scans atomic.Uint64
	// scanStart is the start of the scan in progress (UnixNano), 0 when idle.
	scanStart atomic.Int64
}

// state is everything a scrape reads; it is replaced, never mutated.
type state struct {
	rendered *rendered      // the large families of report
	report   *report.Report // the last successful report
	lastOK   bool           // whether the last scan succeeded
	lastAt   time.Time      // time of the last successful scan
	duration time.Duration  // duration of the last scan
	errs     map[source.Reason]float64
	scanOK   float64
	scanFail float64
	lastErr  string
}

// New returns an exporter; it does not scan until Run or Scan is called.
func New(o Options) (*Exporter, error) {
	if o.Scan == nil {
		return nil, errors.New("exporter: Options.Scan is required")
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Minute
	}
	if o.Debounce <= 0 {
		o.Debounce = 2 * time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 10 * o.Debounce
	}
	if o.ScanTimeout <= 0 {
		o.ScanTimeout = 2 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e := &Exporter{o: o}
	s := &state{errs: map[source.Reason]float64{}, rendered: &rendered{node: o.Node}}
	for _, r := range source.AllReasons {
		s.errs[r] = 0
	}
	e.state.Store(s)
	return e, nil
}

// Scans is the number of scans started so far.
func (e *Exporter) Scans() uint64 { return e.scans.Load() }

// Report returns the report of the last successful scan.
func (e *Exporter) Report() (report.Report, bool) {
	s := e.state.Load()
	if s.report == nil {
		return report.Report{}, false
	}
	return *s.report, true
}

// LastScan returns the time of the last successful scan (zero before one)
// and whether the last scan succeeded.
func (e *Exporter) LastScan() (time.Time, bool) {
	s := e.state.Load()
	return s.lastAt, s.lastOK
}

// Scan scans the node once, now, and replaces the cached state.
func (e *Exporter) Scan(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.scans.Add(1)
	now := e.o.Now()
	e.scanStart.Store(now.UnixNano())
	defer e.scanStart.Store(0)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, e.o.ScanTimeout)
	defer cancel()
	r, inv, err := e.o.Scan(ctx, now)
	dur := e.o.Now().Sub(now)
	if parent.Err() != nil {
		return parent.Err() // shutting down: a partial scan, not a result
	}

	old := e.state.Load()
	s := *old
	s.duration = dur
	s.errs = make(map[source.Reason]float64, len(old.errs))
	for k, v := range old.errs {
		s.errs[k] = v
	}
	if err != nil {
		s.lastOK = false
		s.scanFail++
		s.lastErr = err.Error()
		e.state.Store(&s)
		e.o.Log.Warn("scan failed; keeping the last result", "err", err)
		return fmt.Errorf("scan: %w", err)
	}
	if inv != nil {
		for _, p := range inv.Problems {
			s.errs[p.Reason]++
		}
	}
	s.lastOK, s.lastErr = true, ""
	s.scanOK++
	s.lastAt = now
	s.report = &r
	s.rendered = &rendered{r: &r, node: e.o.Node}
	if _, err := s.rendered.get(textFormat, true); err != nil {
		e.o.Log.Warn("render metrics", "err", err)
	}
	e.state.Store(&s)
	return nil
}

// running returns how long the scan in progress has been running (0 when
// none is) and whether it overran the scan timeout: a scan that ignores
// its deadline is stuck.
func (e *Exporter) running() (time.Duration, bool) {
	start := e.scanStart.Load()
	if start == 0 {
		return 0, false
	}
	d := e.o.Now().Sub(time.Unix(0, start))
	if d < 0 {
		d = 0
	}
	return d, d > e.o.ScanTimeout+e.o.ScanTimeout/2
}

// Run scans at once, then on every interval and after changes under the
// watched directories, until ctx is done. It returns nil when ctx ends.
func (e *Exporter) Run(ctx context.Context) error {
	w, err := newWatcher(e.o.Log)
	if err != nil {
		// Without inotify (limits reached) the interval still works.
		e.o.Log.Warn("file watching unavailable; rescanning on the interval only", "err", err)
	}
	defer w.close()

	scan := func() {
		if e.o.Dirs != nil {
			w.sync(e.o.Dirs())
		}
		_ = e.Scan(ctx)
	}
	scan()
	tick := time.NewTicker(e.o.Interval)
	defer tick.Stop()
	var (
		timer   *time.Timer
		timerC  <-chan time.Time
		pending time.Time // first event of the current burst
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			scan()
		case ev, ok := <-w.events():
			if !ok {
				w.stop()
				continue
			}
			e.o.Log.Debug("change", "path", ev.Name, "op", ev.Op.String())
			now := time.Now()
			if pending.IsZero() {
				pending = now
			}
			wait := e.o.Debounce
			if rest := e.o.MaxDelay - now.Sub(pending); rest < wait {
				wait = max(rest, 0)
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timerC = timer.C
		case err, ok := <-w.errors():
			if !ok {
				w.stop()
				continue
			}
			e.o.Log.Warn("watch error", "err", err)
		case <-timerC:
			timerC, pending = nil, time.Time{}
			scan()
			tick.Reset(e.o.Interval)
		}
	}
}
