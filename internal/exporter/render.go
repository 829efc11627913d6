package exporter

import (
	"bytes"
	"compress/gzip"
	"sync"

	"github.com/k3scert/k3scert/internal/report"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// rendered is the exposition of the large families (certificates and
// findings) of one scan, in each format a scraper can negotiate, made at
// most once per scan: the text format eagerly at the scan, the others
// (OpenMetrics, protobuf, gzip) at the first scrape that asks for them. A scrape then copies bytes; it
// builds no metric objects and holds no certificate.
type rendered struct {
	r    *report.Report
	node string

	mu  sync.Mutex
	out map[renderKey]*renderOnce
}

type renderKey struct {
	format expfmt.Format
	gzip   bool
}

type renderOnce struct {
	once sync.Once
	b    []byte
	err  error
}

// families are the large metric families in exposition order.
var families = []struct {
	desc       *prometheus.Desc
	name, help string
}{
	{descNotAfter, NameNotAfter, "NotAfter of the certificate, as a Unix time (index 0 of each location only)."},
	{descNotBefore, NameNotBefore, "NotBefore of the certificate, as a Unix time (index 0 of each location only)."},
	{descStatus, NameStatus, "Status of the certificate at the last scan (ok, warning, expired, not_yet_valid): one series per status, 1 for the current one."},
	{descFinding, NameFindingActive, "A finding of the last scan at one location (see docs/findings/<code>.md): the number of findings with these labels, usually 1; remedy is the finding's own remedy."},
	{descFindings, NameFindingsByCode, "Number of findings of the last scan per code; every code is present, at zero when absent."},
}

// get returns the large families in format (gzip-compressed when gz),
// rendering them on first use.
func (r *rendered) get(format expfmt.Format, gz bool) ([]byte, error) {
	k := renderKey{format, gz}
	r.mu.Lock()
	if r.out == nil {
		r.out = map[renderKey]*renderOnce{}
	}
	o := r.out[k]
	if o == nil {
		o = &renderOnce{}
		r.out[k] = o
	}
	r.mu.Unlock()
	o.once.Do(func() {
		if !gz {
			o.b, o.err = renderFamilies(r.r, r.node, format)
			return
		}
		plain, err := r.get(format, false)
		if err != nil {
			o.err = err
			return
		}
		o.b, o.err = gzipBytes(plain)
	})
	return o.b, o.err
}

// gzipBytes compresses b as one gzip member. A scrape writes this member
// and then one for the small families; gzip readers (Go's, Prometheus's)
// read concatenated members as one stream.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// renderFamilies encodes the large families of a report (nil: the
// per-code zeros only) without the OpenMetrics "# EOF" trailer, which the
// handler writes after the other families.
func renderFamilies(r *report.Report, node string, format expfmt.Format) ([]byte, error) {
	var ms []prometheus.Metric
	if r != nil {
		ms = buildMetrics(*r, node)
	} else {
		ms = findingsByCode(nil, node)
	}
	var buf bytes.Buffer
	buf.Grow(len(ms) * 200)
	enc := expfmt.NewEncoder(&buf, format)
	gaugeType := dto.MetricType_GAUGE
	for _, f := range families {
		name, help := f.name, f.help
		mf := &dto.MetricFamily{Name: &name, Help: &help, Type: &gaugeType}
		for _, m := range ms {
			if m.Desc() != f.desc {
				continue
			}
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				return nil, err
			}
			mf.Metric = append(mf.Metric, &d)
		}
		if len(mf.Metric) == 0 {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
