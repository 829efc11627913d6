// Package render prints k3scert's documents as table, wide, json or yaml
// (html lives in html.go). Every renderer writes only to the io.Writer it
// is given and never reads the clock: times come from the document.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/k3scert/k3scert/internal/report"
	"sigs.k8s.io/yaml"
)

// Formats lists the -o values every command accepts.
var Formats = []string{"table", "wide", "json", "yaml", "html"}

// Options control human output.
type Options struct {
	Color bool // ANSI colour; only when stdout is a terminal
	// SupervisorPort is the node's supervisor port when not the program's
	// default (--supervisor-port); the HTML page names it in every message.
	SupervisorPort int
}

// JSON writes v as indented JSON.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// YAML writes v as YAML (through its JSON form, so field names agree).
func YAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Report renders a check report in the given format.
func Report(w io.Writer, r report.Report, format string, o Options) error {
	switch format {
	case "json":
		return JSON(w, r)
	case "yaml":
		return YAML(w, r)
	case "table", "", "wide":
		return reportTable(w, r, format == "wide", o)
	case "html":
		return ReportHTML(w, r)
	}
	return fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// ExpiresLayout is how `k3s certificate check -o table` prints EXPIRES.
const ExpiresLayout = "Jan 02, 2006 15:04 MST"

func reportTable(w io.Writer, r report.Report, wide bool, o Options) error {
	// Subjects, file names, endpoint errors and messages come from the node
	// and the wire: escape them all before they reach a terminal.
	r = safeCopy(r)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := "SOURCE\tFILENAME\tSUBJECT\tUSAGES\tEXPIRES\tRESIDUAL TIME\tSTATUS"
	if wide {
		hdr += "\tISSUER\tSHA256\tLOCATION"
	}
	fmt.Fprintln(tw, hdr)
	for _, c := range r.Certificates {
		if c.Index > 0 && !wide {
			continue
		}
		cn := strings.TrimPrefix(strings.SplitN(c.Subject, ",", 2)[0], "CN=")
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", c.Source, filename(c), cn, strings.Join(c.Usages, ","),
			c.NotAfter.UTC().Format(ExpiresLayout), Residual(time.Duration(c.ResidualSeconds)*time.Second), paint(c.Status, o))
		if wide {
			line += fmt.Sprintf("\t%s\t%s\t%s", c.Issuer, c.SHA256[:16], c.Location)
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Endpoints) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tROLE\tSTATUS\tTRUSTED\tDETAIL")
		for _, e := range r.Endpoints {
			detail := e.Error
			if detail == "" {
				detail = e.VerifyError
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\n", e.Address, dash(e.Role), e.Status, e.Trusted, detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	Findings(w, r.Findings, o)
	fmt.Fprintf(w, "\nstatus: %s (exit %d): %d certificates, %d critical, %d warning, %d info; at %s; %s %s, profile %s (%s)\n",
		paint(r.Summary.Status, o), r.Summary.ExitCode, r.Summary.Certificates, r.Summary.Critical, r.Summary.Warning, r.Summary.Info,
		r.At.UTC().Format(time.RFC3339), r.Node.Program, r.Node.Role, r.Node.Profile, r.Node.ProfileSource)
	return nil
}

// Findings prints findings, most severe first, each with its remedy.
func Findings(w io.Writer, fs []report.Finding, o Options) {
	fs = safeCopy(fs)
	if len(fs) == 0 {
		fmt.Fprintln(w, "FINDINGS: none")
		return
	}
	fmt.Fprintf(w, "FINDINGS (%d)\n", len(fs))
	for _, f := range fs {
		fmt.Fprintf(w, "%s %s %s  %s\n", paint(strings.ToUpper(string(f.Severity)), o), f.Code, f.Name, f.Location)
		fmt.Fprintf(w, "    %s\n", f.Message)
		fmt.Fprintf(w, "    remedy: %s\n", f.Remedy)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func filename(c report.Certificate) string {
	switch c.Source {
	case "endpoint", "secret":
		return strings.TrimPrefix(c.Location, "secret ")
	case "kubeconfig":
		loc := c.Location
		if i := strings.Index(loc, " (user "); i > 0 {
			loc = loc[:i]
		}
		return filepath.Base(loc)
	}
	return filepath.Base(c.Location)
}

// Residual prints a remaining duration the short way: "364d", "5h", "-57d".
func Residual(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%s%dd", sign, int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%s%dh", sign, int(d.Hours()))
	}
	return fmt.Sprintf("%s%dm", sign, int(d.Minutes()))
}

func paint(s string, o Options) string {
	if !o.Color {
		return s
	}
	switch s {
	case "OK", "INFO":
		return "\x1b[32m" + s + "\x1b[0m"
	case "WARNING":
		return "\x1b[33m" + s + "\x1b[0m"
	case "EXPIRED", "NOT YET VALID", "CRITICAL", "UNKNOWN":
		return "\x1b[31m" + s + "\x1b[0m"
	}
	return s
}
