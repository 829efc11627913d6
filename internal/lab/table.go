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

// WriteHATable writes an HA run: one row per node and step, the rotation's
// per-node timing, the client's counts and the summary.
func WriteHATable(w io.Writer, r HAResult) {
	fmt.Fprintf(w, "\n%s  profile %s  listener %s  remedy %s  servers %d  agents %d\n", strings.ToUpper(r.Scenario), r.Profile, r.Listener, r.Remedy, r.Servers, r.Agents)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tNODE\tROLE\tDAY\tVIRTUAL DATE\tSERVED\tKUBECTL / API")
	for _, s := range r.Steps {
		k := "ok"
		if !s.KubectlOK {
			k = "FAIL: " + s.KubectlError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.Node, s.Role, s.Day, s.VirtualDate.Format("2006-01-02"), tableDate(s.ServedNotAfter), k)
	}
	tw.Flush()
	if len(r.Rotation) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ROTATED\tROLE\tLISTENER\tSECONDS\tDOWNTIME\tOUTCOME")
		for _, t := range r.Rotation {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%s\n", t.Node, t.Role, t.Listener, t.Seconds, t.DowntimeSeconds, t.Outcome)
		}
		tw.Flush()
	}
	if r.Client != nil {
		fmt.Fprintf(w, "client during the rotation: %d requests, %d failed, %d failovers, %d retried (reset/EOF, as kubectl retries a GET), longest gap %.2fs\n",
			r.Client.Sent, r.Client.Failed, r.Client.Failovers, r.Client.Retried, r.Client.LongestGapSeconds)
	}
	fmt.Fprintf(w, "=> %s (%.1fs; nodes under %s)\n", r.Summary, r.Seconds, r.Root)
}
