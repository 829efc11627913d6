package exporter

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/k3scert/k3scert/internal/diagnose"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// rendered is the exposition of the large families (certificates and
// findings) of one scan, in each format a scraper can negotiate, made at
// most once per scan: gzip-compressed text eagerly at the scan (what
// most scrapers ask for), the others (OpenMetrics, protobuf, plain) at
// the first scrape that asks for them. A compressed rendering keeps only
// the compressed bytes (the plain text of 10,000 certificates is 16 MiB,
// compressed 0.6 MiB), written and compressed piece by piece; a scrape
// that asks for the plain text gets its own rendering. A scrape then
// copies bytes; it builds no metric objects and holds no certificate.
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
	// For a compressed rendering: b is the start of one gzip member (the
	// header and the families as deflate blocks ending in a sync flush,
	// no final block), crc and n the CRC-32 and length of the plain
	// bytes; gzipFinish appends what the scrape adds and the trailer.
	crc uint32
	n   int
}

// families are the large metric families in exposition order.
var families = []struct {
	desc       *prometheus.Desc
	name, help string
}{
	{descNotAfter, NameNotAfter, helpNotAfter},
	{descNotBefore, NameNotBefore, helpNotBefore},
	{descStatus, NameStatus, "Status of the certificate at the last scan (ok, warning, expired, not_yet_valid): one series per status, 1 for the current one."},
	{descFinding, NameFindingActive, "A finding of the last scan at one location (see docs/findings/<code>.md): the number of findings with these labels, usually 1; remedy is the finding's own remedy."},
	{descFindings, NameFindingsByCode, "Number of findings of the last scan per code; every code is present, at zero when absent."},
}

// get returns the large families in format, rendering them on first
// use. For gz it returns the start of a gzip member (see renderOnce): the
// handler finishes it with gzipFinish, so a scrape is one gzip member,
// which every gzip reader reads whole (curl --compressed, for one, stops
// after the first member of a concatenation).
func (r *rendered) get(format expfmt.Format, gz bool) (*renderOnce, error) {
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
		z := newDeflater()
		switch format.FormatType() {
		case expfmt.TypeTextPlain, expfmt.TypeOpenMetrics:
			// Written and compressed piece by piece.
			// nil: appendFamilies sizes the first buffer (a small node's
			// text is a few KiB, not a piece).
			rest := appendFamilies(nil, r.r, r.node, format.FormatType() == expfmt.TypeOpenMetrics, z.add)
			z.add(rest)
		default:
			plain, err := renderFamilies(r.r, r.node, format)
			if err != nil {
				o.err = err
				return
			}
			z.add(plain)
		}
		o.b, o.crc, o.n, o.err = z.finish()
	})
	return o, o.err
}

// gzipHeader is a gzip member header: deflate, no flags, no time, no
// extra flags, OS unknown (RFC 1952 2.3).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// chunkSize is the size of the pieces a rendering is compressed in.
const chunkSize = 1 << 20

// deflater compresses a stream of pieces as the start of one gzip member:
// the header, then each piece as its own run of deflate blocks ending in
// a sync flush (byte-aligned, not final), so runs can follow each other
// and the handler can add the scrape's own. The pieces are compressed by
// GOMAXPROCS goroutines at a time (as pigz does), in order; the CRC-32
// and the length of the plain bytes are kept for the trailer. A piece's
// buffer is reused once compressed.
type deflater struct {
	crc  uint32
	n    int
	outs []*[]byte
	errs []error
	sem  chan struct{}
	free chan []byte
	wg   sync.WaitGroup
	mu   sync.Mutex
}

func newDeflater() *deflater {
	p := runtime.GOMAXPROCS(0)
	return &deflater{sem: make(chan struct{}, p), free: make(chan []byte, p+1)}
}

// buffer returns an empty buffer for the next piece.
func (z *deflater) buffer() []byte {
	select {
	case b := <-z.free:
		return b[:0]
	default:
		return make([]byte, 0, chunkSize+chunkSize/8)
	}
}

// add compresses b (a large b in pieces of chunkSize) and returns an
// empty buffer to go on with; the caller does not use b afterwards.
func (z *deflater) add(b []byte) []byte {
	whole := len(b) <= 2*chunkSize // one piece: its buffer is reused after
	for len(b) > 0 {
		n := len(b)
		if !whole {
			n = min(n, chunkSize)
		}
		piece := b[:n]
		b = b[n:]
		z.crc = crc32.Update(z.crc, crc32.IEEETable, piece)
		z.n += len(piece)
		out := new([]byte)
		z.outs = append(z.outs, out)
		z.sem <- struct{}{}
		z.wg.Add(1)
		go func() {
			defer z.wg.Done()
			var err error
			*out, err = deflateBlocks(piece, false)
			<-z.sem
			if err != nil {
				z.mu.Lock()
				z.errs = append(z.errs, err)
				z.mu.Unlock()
			}
			if whole && cap(piece) >= chunkSize {
				select {
				case z.free <- piece[:0]:
				default:
				}
			}
		}()
	}
	return z.buffer()
}

// finish waits for every piece and returns the header and the compressed
// pieces, with the CRC-32 and length of the plain bytes.
func (z *deflater) finish() ([]byte, uint32, int, error) {
	z.wg.Wait()
	if err := errors.Join(z.errs...); err != nil {
		return nil, 0, 0, err
	}
	size := len(gzipHeader)
	for _, o := range z.outs {
		size += len(*o)
	}
	out := make([]byte, 0, size)
	out = append(out, gzipHeader...)
	for _, o := range z.outs {
		out = append(out, *o...)
	}
	return out, z.crc, z.n, nil
}

// deflateBlocks compresses b as deflate blocks at BestSpeed (promhttp
// uses the default level; for metric text BestSpeed is several times
// faster and the output a few percent larger), ending in a sync flush,
// or with the final block when final.
func deflateBlocks(b []byte, final bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(b)/16 + 64)
	zw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if final {
		err = zw.Close()
	} else {
		err = zw.Flush()
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipFinish returns what completes the member o starts, once tail (the
// plain bytes that follow o's) is added: tail's deflate blocks, the last
// one final, and the trailer (CRC-32 and length of all the plain bytes).
func gzipFinish(o *renderOnce, tail []byte) ([]byte, error) {
	z, err := deflateBlocks(tail, true)
	if err != nil {
		return nil, err
	}
	crc := crc32.Update(o.crc, crc32.IEEETable, tail)
	return binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(z, crc), uint32(o.n+len(tail))), nil
}

// renderFamilies encodes the large families of a report (nil: the
// per-code zeros only) without the OpenMetrics "# EOF" trailer, which the
// handler writes after the other families. The text format and
// OpenMetrics are written directly from the report into one buffer
// sized up front (appendFamilies); other formats (protobuf) go through
// client_model objects and expfmt (renderFamiliesDTO), which is also the
// reference the direct writer is tested against.
func renderFamilies(r *report.Report, node string, format expfmt.Format) ([]byte, error) {
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		return appendFamilies(nil, r, node, false, nil), nil
	case expfmt.TypeOpenMetrics:
		return appendFamilies(nil, r, node, true, nil), nil
	}
	return renderFamiliesDTO(r, node, format)
}

// renderFamiliesDTO is renderFamilies through client_model objects and
// expfmt's encoder, for every format.
func renderFamiliesDTO(r *report.Report, node string, format expfmt.Format) ([]byte, error) {
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

// appendFamilies appends the large families of r (nil: the per-code
// zeros only) to b in the Prometheus text format 0.0.4, or in
// OpenMetrics 1.0 when om (without "# EOF"): the bytes expfmt writes for
// the same series (renderFamiliesDTO), without building an object per
// series. Every series of the exposition is the same as buildMetrics's,
// in the same order.
//
// With flush, the text goes out in pieces: whenever b holds chunkSize
// bytes or more after a line, flush gets them and returns the buffer to
// go on with; the rest is returned at the end. The whole text (16 MiB
// for 10,000 certificates) is then never in memory at once.
func appendFamilies(b []byte, r *report.Report, node string, om bool, flush func([]byte) []byte) []byte {
	var certs []exportedCert
	var finds []findingSeries
	var byCode []float64
	if r != nil {
		certs = exportedCerts(*r)
		finds = findingRows(r.Findings)
		byCode = codeCounts(r.Findings)
	} else {
		byCode = codeCounts(nil)
	}
	// The label sets of the certificates, escaped once: pre is
	// {issuer,location,name,node,source and post is ,subject} (sorted
	// by name; the status label goes between them). lbl holds them all,
	// at offsets at[k] (pre) and at[k]+preLen[k] (post).
	var lbl []byte
	var at, preLen []int
	if len(certs) > 0 {
		n := 0
		for _, e := range certs {
			c := &r.Certificates[e.i]
			n += len(c.Issuer) + 3 + len(c.Location) + len(e.name) + len(node) + len(c.Source) + len(c.Subject) + 70
		}
		lbl = make([]byte, 0, n)
		at, preLen = make([]int, len(certs)+1), make([]int, len(certs))
		for k, e := range certs {
			c := &r.Certificates[e.i]
			at[k] = len(lbl)
			lbl = appendLabel(lbl, '{', "issuer", IssuerDN(c.Issuer))
			lbl = appendLabel(lbl, ',', "location", c.Location)
			lbl = appendLabel(lbl, ',', "name", e.name)
			lbl = appendLabel(lbl, ',', "node", node)
			lbl = appendLabel(lbl, ',', "source", c.Source)
			preLen[k] = len(lbl) - at[k]
			lbl = appendLabel(lbl, ',', "subject", c.Subject)
			lbl = append(lbl, '}')
		}
		at[len(certs)] = len(lbl)
	}
	// Size the buffer once: the label sets plus the fixed text of every
	// line (names, the status label, the value).
	size := 4096 + 2*len(lbl) + len(Statuses)*len(lbl) +
		len(certs)*(len(NameNotAfter)+len(NameNotBefore)+len(Statuses)*(len(NameStatus)+len(`,status="not_yet_valid"`)+4)+2*20)
	for _, f := range finds {
		size += len(f.code) + len(f.severity) + len(f.location) + len(f.remedy) + len(node) + len(NameFindingActive) + 70
	}
	size += len(byCode) * (len(NameFindingsByCode) + len(node) + 40)
	if flush != nil {
		size = min(size, chunkSize+chunkSize/8)
	}
	if cap(b)-len(b) < size {
		nb := make([]byte, len(b), len(b)+size)
		copy(nb, b)
		b = nb
	}
	value := func(b []byte, v float64) []byte {
		b = append(b, ' ')
		b = appendFloat(b, v, om)
		b = append(b, '\n')
		if flush != nil && len(b) >= chunkSize {
			b = flush(b)
		}
		return b
	}
	if len(certs) > 0 {
		b = appendHeader(b, families[0].name, families[0].help, om)
		for k, e := range certs {
			b = append(b, NameNotAfter...)
			b = append(b, lbl[at[k]:at[k+1]]...)
			b = value(b, float64(r.Certificates[e.i].NotAfter.Unix()))
		}
		b = appendHeader(b, families[1].name, families[1].help, om)
		for k, e := range certs {
			b = append(b, NameNotBefore...)
			b = append(b, lbl[at[k]:at[k+1]]...)
			b = value(b, float64(r.Certificates[e.i].NotBefore.Unix()))
		}
		b = appendHeader(b, families[2].name, families[2].help, om)
		for k, e := range certs {
			c := &r.Certificates[e.i]
			pre, post := lbl[at[k]:at[k]+preLen[k]], lbl[at[k]+preLen[k]:at[k+1]]
			for j, st := range Statuses {
				v := 0.0
				if c.Status == string(st) {
					v = 1
				}
				b = append(b, NameStatus...)
				b = append(b, pre...)
				b = appendLabel(b, ',', "status", statusLabels[j])
				b = append(b, post...)
				b = value(b, v)
			}
		}
	}
	if len(finds) > 0 {
		b = appendHeader(b, families[3].name, families[3].help, om)
		for _, f := range finds {
			// code, location, node, remedy, severity.
			b = append(b, NameFindingActive...)
			b = appendLabel(b, '{', "code", f.code)
			b = appendLabel(b, ',', "location", f.location)
			b = appendLabel(b, ',', "node", node)
			b = appendLabel(b, ',', "remedy", f.remedy)
			b = appendLabel(b, ',', "severity", f.severity)
			b = append(b, '}')
			b = value(b, f.count)
		}
	}
	if len(byCode) > 0 {
		b = appendHeader(b, families[4].name, families[4].help, om)
		for i, c := range diagnose.All {
			b = append(b, NameFindingsByCode...)
			b = appendLabel(b, '{', "code", c.ID)
			b = appendLabel(b, ',', "node", node)
			b = append(b, '}')
			b = value(b, byCode[i])
		}
	}
	return b
}

// appendHeader writes a gauge family's HELP and TYPE lines (OpenMetrics
// also escapes double quotes in HELP).
func appendHeader(b []byte, name, help string, om bool) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, om)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	return append(b, " gauge\n"...)
}

// appendLabel writes sep, name="value" with the value made valid UTF-8
// and escaped as the exposition formats require.
func appendLabel(b []byte, sep byte, name, value string) []byte {
	b = append(b, sep)
	b = append(b, name...)
	b = append(b, '=', '"')
	if !utf8.ValidString(value) {
		value = strings.ToValidUTF8(value, "\uFFFD")
	}
	b = appendEscaped(b, value, true)
	return append(b, '"')
}

// appendEscaped escapes backslash and newline, and double quotes when
// quotes (expfmt's writeEscapedString).
func appendEscaped(b []byte, s string, quotes bool) []byte {
	for {
		i := strings.IndexAny(s, "\\\n\"")
		if i < 0 {
			return append(b, s...)
		}
		b = append(b, s[:i]...)
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case quotes:
			b = append(b, '\\', '"')
		default:
			b = append(b, '"')
		}
		s = s[i+1:]
	}
}

// appendFloat formats v as expfmt does: the text format's writeFloat, or
// OpenMetrics's writeOpenMetricsFloat (a ".0" on integral values).
func appendFloat(b []byte, v float64, om bool) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	if v == 0 {
		v = 0 // -0 is written as 0
	}
	start := len(b)
	b = strconv.AppendFloat(b, v, 'g', -1, 64)
	if om && !bytes.ContainsAny(b[start:], "e.") {
		b = append(b, '.', '0')
	}
	return b
}
