package exporter

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/report"
	"github.com/prometheus/common/expfmt"
)

// The direct writer (appendFamilies) writes the bytes expfmt writes for
// the same series through client_model objects, in the text format and
// in OpenMetrics, for label values that need escaping or are not valid
// UTF-8, any node name (also none), and reports with and without
// certificates or findings.
func TestAppendFamiliesIsExpfmt(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := func(loc string, idx int, name, subj, iss, status string, na time.Time) report.Certificate {
		return report.Certificate{Source: "file", Location: loc, Index: idx, Name: name, Subject: subj, Issuer: iss,
			NotBefore: at.Add(-time.Hour), NotAfter: na, Status: status}
	}
	full := report.Report{
		Certificates: []report.Certificate{
			cert("/var/lib/rancher/k3s/server/tls/client-admin.crt", 0, "client-admin", "CN=system:admin,O=system:masters", "k3s-client-ca@1700000000", "OK", at.Add(300*24*time.Hour)),
			cert("/var/lib/rancher/k3s/server/tls/client-admin.crt", 1, "", "CN=k3s-client-ca@1700000000", "k3s-client-ca@1700000000", "OK", at.Add(3000*24*time.Hour)),
			cert("/tmp/we\"ird\\dir\nname/\xff\xfe.crt", 0, "we\"ird", "CN=a\\b,O=\"q\"", "CN=x\ny", "EXPIRED", at.Add(-48*time.Hour)),
			cert("/tmp/epoch.crt", 0, "epoch", "CN=epoch", "", "NOT YET VALID", time.Unix(0, 0)),
			cert("/tmp/neg.crt", 0, "neg", "CN=neg", "CN=already", "WARNING", time.Unix(-1, 0)),
			cert("/tmp/one.crt", 0, "one", "CN=one", "ca", "WARNING", time.Unix(1, 0)),
			cert("/tmp/big.crt", 0, "big", "CN=big", "ca", "OK", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)),
			cert("/tmp/epoch.crt", 0, "dup", "CN=dup", "ca", "OK", at), // same location again: not exported twice
		},
		Findings: []report.Finding{
			{Code: "K3C001", Severity: report.Critical, Location: "/tmp/a.crt", Remedy: "run \"k3scert rotate\"\\now"},
			{Code: "K3C001", Severity: report.Critical, Location: "/tmp/a.crt", Remedy: "run \"k3scert rotate\"\\now"},
			{Code: "K3C302", Severity: report.Warning, Location: "/tmp/\xffb.crt", Remedy: "line\nbreak"},
			{Code: "K3C005", Severity: report.Info, Location: "", Remedy: ""},
		},
	}
	onlyCerts := report.Report{Certificates: full.Certificates[:2]}
	onlyFindings := report.Report{Findings: full.Findings}
	for _, format := range []expfmt.Format{
		expfmt.NewFormat(expfmt.TypeTextPlain),
		expfmt.NewFormat(expfmt.TypeOpenMetrics),
		expfmt.Negotiate(nil),
	} {
		for _, node := range []string{"", "node-1", "we\"ird\\node\n"} {
			for name, r := range map[string]*report.Report{"full": &full, "certs": &onlyCerts, "findings": &onlyFindings, "empty": {}, "nil": nil} {
				want, err := renderFamiliesDTO(r, node, format)
				if err != nil {
					t.Fatal(err)
				}
				got, err := renderFamilies(r, node, format)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s, node %q, %s: direct rendering differs from expfmt's\n--- direct\n%s\n--- expfmt\n%s", format, node, name, got, want)
				}
			}
		}
	}
}

// gzipStart compresses b as the start of a gzip member (see renderOnce).
func gzipStart(b []byte) ([]byte, error) {
	z := newDeflater()
	z.add(b)
	out, _, _, err := z.finish()
	return out, err
}

// gzipStart and gzipFinish make one gzip member, whatever the size: the
// pre-compressed families (split into parallel parts above chunkSize) and
// the scrape's tail (a large rendering in parallel pieces of chunkSize). A reader that reads a single member (as curl
// --compressed does) gets every byte, and nothing follows the member.
func TestGzipOneMember(t *testing.T) {
	line := func(i int) string {
		return fmt.Sprintf("k3scert_certificate_not_after_seconds{location=\"/x/%07d.crt\"} %d\n", i, 1700000000+i)
	}
	for _, size := range []int{0, 10, chunkSize - 1, chunkSize + 1, 3*chunkSize + 17} {
		for _, tail := range []string{"", "k3scert_last_scan_success 1\n# EOF\n"} {
			var in bytes.Buffer
			for i := 0; in.Len() < size; i++ {
				in.WriteString(line(i))
			}
			b := in.Bytes()
			if size%2 == 1 && len(b) > 0 {
				b = b[:len(b)-1] // no final newline
			}
			o := &renderOnce{crc: crc32.ChecksumIEEE(b), n: len(b)}
			start, err := gzipStart(b)
			if err != nil {
				t.Fatal(err)
			}
			o.b = start
			end, err := gzipFinish(o, []byte(tail))
			if err != nil {
				t.Fatal(err)
			}
			// A bytes.Reader is an io.ByteReader: the gzip reader reads
			// exactly one member from it and leaves the rest.
			br := bytes.NewReader(append(start, end...))
			zr, err := gzip.NewReader(br)
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("size %d: %v", len(b), err)
			}
			if want := string(b) + tail; string(got) != want {
				t.Errorf("size %d, tail %q: one member holds %d bytes, want %d", len(b), tail, len(got), len(want))
			}
			if br.Len() != 0 {
				t.Errorf("size %d: %d bytes after the first gzip member", len(b), br.Len())
			}
		}
	}
}

// The compressed rendering of a large report (written and compressed in
// pieces, in parallel) decompresses to the plain rendering, in the text
// format and in OpenMetrics, and is one gzip member.
func TestCompressedRenderingIsPlain(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &report.Report{}
	for i := range 20000 {
		r.Certificates = append(r.Certificates, report.Certificate{Source: "file", Location: fmt.Sprintf("/var/lib/rancher/k3s/server/tls/kube-scheduler/%05d.crt", i),
			Name: fmt.Sprintf("%05d", i), Subject: fmt.Sprintf("CN=bulk-%05d", i), Issuer: "k3s-server-ca@1735689600",
			NotBefore: at.Add(-time.Duration(i) * time.Hour), NotAfter: at.Add(time.Duration(i) * time.Hour), Status: "OK"})
	}
	for _, format := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeOpenMetrics), expfmt.NewFormat(expfmt.TypeProtoDelim)} {
		rd := &rendered{r: r, node: "n1"}
		plain, err := rd.get(format, false)
		if err != nil {
			t.Fatal(err)
		}
		z, err := rd.get(format, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain.b) < 3*chunkSize {
			t.Fatalf("%s: %d bytes: too small to be compressed in pieces", format, len(plain.b))
		}
		end, err := gzipFinish(z, nil)
		if err != nil {
			t.Fatal(err)
		}
		br := bytes.NewReader(append(append([]byte{}, z.b...), end...))
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !bytes.Equal(got, plain.b) || br.Len() != 0 {
			t.Errorf("%s: decompressed %d bytes (%d left after the member), plain %d", format, len(got), br.Len(), len(plain.b))
		}
	}
}
