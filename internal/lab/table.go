package lab

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes one replay as the `lab run` table: a header naming the
// scenario, the profile (release-matrix row), the listener code that ran and
// the remedy, one row per step, and the summary.
func WriteTable(w io.Writer, r Result) {
	fmt.Fprintf(w, "\n%s  profile %s  listener %s  remedy %s\n", strings.ToUpper(r.Scenario), r.Profile, r.Listener, r.Remedy)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tDAY\tVIRTUAL DATE\tFILES (client-admin)\tDYNAMIC-CERT.JSON\tSECRET\tSERVED :6443\tKUBECTL")
	for _, s := range r.Steps {
		files := "-"
		if t, ok := s.FilesNotAfter["client-admin"]; ok {
			files = t.Format("2006-01-02")
		}
		k := "ok"
		if !s.KubectlOK {
			k = "FAIL: " + s.KubectlError
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Day, s.VirtualDate.Format("2006-01-02"), files,
			tableDate(s.DynamicCertNotAfter), tableDate(s.SecretNotAfter), tableDate(s.ServedNotAfter), k)
	}
	tw.Flush()
	for _, s := range r.Steps {
		if s.ListenerEvent != "" {
			fmt.Fprintf(w, "   %s: %s\n", s.Name, s.ListenerEvent)
		}
	}
	fmt.Fprintf(w, "=> %s (%.1fs)\n", r.Summary, r.Seconds)
}

func tableDate(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02")
}
