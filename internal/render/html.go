package render

import (
	"html/template"
	"io"

	"github.com/k3scert/k3scert/internal/report"
)

// ReportHTML writes one self-contained HTML page (no network) for a check
// report.
func ReportHTML(w io.Writer, r report.Report) error {
	return reportPage.Execute(w, r)
}

var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>k3scert report {{.Node.DataDir}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.EXPIRED,.critical{color:#b00}.WARNING,.warning{color:#a60}.OK{color:#070}</style></head><body>
<h1>k3scert report</h1>
<p>{{.Node.Program}} {{.Node.Role}} at {{.Node.DataDir}}, profile {{.Node.Profile}}; judged at {{.At.Format "2006-01-02T15:04:05Z07:00"}}; status <b>{{.Summary.Status}}</b></p>
<h2>Findings</h2><table><tr><th>severity</th><th>code</th><th>location</th><th>message</th><th>remedy</th></tr>
{{range .Findings}}<tr class="{{.Severity}}"><td>{{.Severity}}</td><td>{{.Code}}</td><td>{{.Location}}</td><td>{{.Message}}</td><td>{{.Remedy}}</td></tr>
{{end}}</table>
<h2>Certificates</h2><table><tr><th>source</th><th>location</th><th>subject</th><th>not after</th><th>status</th></tr>
{{range .Certificates}}{{if eq .Index 0}}<tr><td>{{.Source}}</td><td>{{.Location}}</td><td>{{.Subject}}</td><td>{{.NotAfter.Format "2006-01-02 15:04"}}</td><td class="{{.Status}}">{{.Status}}</td></tr>
{{end}}{{end}}</table></body></html>
`))
