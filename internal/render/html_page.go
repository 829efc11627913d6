package render

// pageHTML is the one page of check -o html and forecast -o html. It must
// stay self-contained: inline CSS and SVG, no script, no external URL.
const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}: {{.F.Node.Program}} {{.F.Node.Role}} {{.F.Node.DataDir}}</title>
<style>
:root{--ok:#2e7d4f;--win:#e0a030;--bad:#c0392b;--ca:#4a6fa5;--ink:#1d2329;--mute:#5d6975;--line:#d9dee3}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);margin:20px 24px;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.meta{color:var(--mute);margin:0 0 12px}
.head{border-radius:6px;padding:12px 16px;margin:10px 0 16px;border:2px solid}
.head.bad{background:#fdecea;border-color:var(--bad)}.head.good{background:#e9f6ee;border-color:var(--ok)}
.head .big{font-size:22px;font-weight:700}.head.bad .big{color:var(--bad)}.head.good .big{color:var(--ok)}
.head p{margin:6px 0 0}
.status{display:inline-block;font-weight:700;padding:1px 8px;border-radius:4px;color:#fff}
.status.OK{background:var(--ok)}.status.WARNING{background:var(--win)}.status.CRITICAL,.status.UNKNOWN{background:var(--bad)}
svg.timeline{display:block;font:11px system-ui,"DejaVu Sans",sans-serif;background:#fff}
svg .grid{stroke:#eceff2;stroke-width:1}
svg .axis{stroke:#8a949e;stroke-width:1}
svg .tick{fill:var(--mute);text-anchor:middle}
svg .group{fill:var(--ink);font-weight:700;font-size:11px}
svg .label{fill:var(--ink)}
svg .label.client{font-weight:700}
svg .seg.valid{fill:var(--ok)}
svg .bar[data-class="ca"] .seg.valid{fill:var(--ca)}
svg .seg.window{fill:var(--win)}
svg .seg.expired{fill:url(#hatch)}
svg .renewal{stroke:#111;stroke-width:2}
svg .restart{stroke:#3a56d4;stroke-width:1.5;stroke-dasharray:5 3}
svg .restart-label{fill:#3a56d4;font-weight:700}
svg .lockout{fill:var(--bad);fill-opacity:.13;stroke:var(--bad);stroke-width:1}
svg .lockout-label{fill:var(--bad);font-weight:700;font-size:12px}
svg .today{stroke:#111;stroke-width:2}
svg .today-label{fill:#111;font-weight:700}
.legend{display:flex;gap:18px;flex-wrap:wrap;color:var(--mute);margin:6px 0 0}
.legend i{display:inline-block;width:22px;height:10px;margin-right:5px;vertical-align:middle;border-radius:2px}
table{border-collapse:collapse;width:100%}
table{table-layout:fixed}
td,th{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;overflow-wrap:anywhere}
table.findings col.sev{width:104px}table.findings col.code{width:170px}table.findings col.loc{width:22%}table.findings col.msg{width:38%}
table.events col.when{width:140px}table.events col.kind{width:120px}table.events col.act{width:140px}
table.certs col.cls{width:130px}table.certs col.when{width:170px}
th{background:#f4f6f8;font-weight:600}
td.when{white-space:nowrap;font-variant-numeric:tabular-nums}
tr.critical td.kind{color:var(--bad);font-weight:700}tr.warning td.kind{color:#9a6700;font-weight:600}tr.ok td.kind{color:var(--ok)}
.sev-critical{color:var(--bad);font-weight:700;overflow-wrap:normal}.sev-warning{color:#9a6700;font-weight:700;overflow-wrap:normal}.sev-info{color:var(--mute)}
ol.actions li{margin:0 0 10px}
ol.actions .deadline{font-weight:700;color:var(--bad)}
.mute{color:var(--mute)}
code{font-size:12px}
</style></head><body>
<h1>{{.Title}}</h1>
<p class="meta">{{.F.Node.Program}} {{.F.Node.Role}} at <code>{{.F.Node.DataDir}}</code>; profile <b>{{.F.Node.Profile}}</b> (renew window {{.F.Node.RenewDays}} days{{if .F.Node.ProfileSource}}, {{.F.Node.ProfileSource}}{{end}});
from {{when .F.From}} to {{when .F.To}}; {{if .F.Restarts}}planned restarts:{{range .F.Restarts}} {{when .}}{{end}}{{else}}no planned restart (what happens if nothing is done){{end}}.
{{with .Status}} Status now: <span class="status {{.Status}}">{{.Status}}</span> ({{.Critical}} critical, {{.Warning}} warning).{{end}}</p>

<div class="head {{.HeadCls}}" id="headline"><div class="big">{{.Headline}}</div><p>{{.Detail}}</p></div>

<h2>Timeline</h2>
{{with .SVG}}<svg xmlns="http://www.w3.org/2000/svg" class="timeline" id="timeline" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="certificate timeline">
<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f5c6bf"></rect><line x1="0" y1="0" x2="0" y2="6" stroke="#c0392b" stroke-width="3"></line></pattern></defs>
{{range .Ticks}}<line class="grid" x1="{{f1 .X}}" y1="{{$.SVG.ChartY}}" x2="{{f1 .X}}" y2="{{$.SVG.AxisY}}"></line><text class="tick" x="{{f1 .X}}" y="{{add $.SVG.AxisY 16}}">{{.Label}}</text>
{{end}}<line class="axis" x1="{{.ChartX}}" y1="{{.AxisY}}" x2="{{add .ChartX .ChartW}}" y2="{{.AxisY}}"></line>
{{range .LockOuts}}<rect class="lockout" x="{{f1 .X}}" y="{{$.SVG.ChartY}}" width="{{f1 .W}}" height="{{$.SVG.ChartH}}"><title>{{.Label}}</title></rect><text class="lockout-label" x="{{f1 .X}}" y="40" dx="3">{{.Label}}</text>
{{end}}{{range .Groups}}<text class="group" x="6" y="{{.Y}}">{{.Label}}</text>
{{end}}{{range $r := .Rows}}<g class="row"><text class="label{{if .ClientFacing}} client{{end}}" x="14" y="{{.TextY}}"><title>{{.Full}}</title>{{.Name}}</text>
<g class="bar" data-cert="{{.ID}}" data-class="{{.Class}}"><title>{{.Full}}</title>{{range .Segs}}<rect class="seg {{.Kind}}" x="{{f1 .X}}" y="{{$r.BarY}}" width="{{f1 .W}}" height="11"><title>{{.Title}}</title></rect>{{end}}{{range .Renewals}}<line class="renewal" x1="{{f1 .X}}" y1="{{$r.MarkTop}}" x2="{{f1 .X}}" y2="{{$r.MarkBottom}}"><title>{{.Label}}</title></line>{{end}}</g>
</g>
{{end}}{{range .Restarts}}<line class="restart" x1="{{f1 .X}}" y1="20" x2="{{f1 .X}}" y2="{{$.SVG.AxisY}}"></line><text class="restart-label" x="{{f1 .X}}" y="28" dx="3">{{.Label}}</text>
{{end}}{{with .Today}}<line class="today" x1="{{f1 .X}}" y1="6" x2="{{f1 .X}}" y2="{{$.SVG.AxisY}}"></line><text class="today-label" x="{{f1 .X}}" y="14" dx="3">{{.Label}}</text>
{{end}}</svg>{{end}}
<div class="legend"><span><i style="background:#2e7d4f"></i>valid</span><span><i style="background:#4a6fa5"></i>valid (CA)</span><span><i style="background:#e0a030"></i>renew window</span><span><i style="background:repeating-linear-gradient(45deg,#c0392b 0 3px,#f5c6bf 3px 6px)"></i>expired</span><span><i style="background:#3a56d4;height:3px"></i>planned restart</span><span><i style="background:#111;height:3px"></i>renewal / today</span><span><i style="background:rgba(192,57,43,.2);border:1px solid #c0392b"></i>lock-out</span></div>
{{with .CASummary}}<p class="mute" id="ca-summary">{{.}}</p>{{end}}

<h2>What to do</h2>
<ol class="actions">{{range .Actions}}{{if .Required}}<li><b>{{.Title}}</b>{{with .Deadline}} <span class="deadline">by {{when .}}</span>{{end}}<br>{{.Remedy}}<br><span class="mute">certificates: {{range $i, $c := .Certificates}}{{if $i}}, {{end}}{{name $.F $c}}{{end}}</span></li>
{{end}}{{end}}</ol>
{{range .Actions}}{{if not .Required}}<p class="mute"><b>{{.Title}}</b> — {{.Remedy}}</p>
{{end}}{{end}}
<h2>Findings now ({{len .F.Findings}})</h2>
{{if .F.Findings}}<table class="findings"><colgroup><col class="sev"><col class="code"><col class="loc"><col class="msg"><col></colgroup><tr><th>severity</th><th>code</th><th>location</th><th>message</th><th>remedy</th></tr>
{{range .F.Findings}}<tr class="finding {{.Severity}}"><td class="sev-{{.Severity}}">{{upper (print .Severity)}}</td><td>{{.Code}} {{.Name}}</td><td><code>{{rel $.F .Location}}</code></td><td>{{rel $.F .Message}}</td><td>{{.Remedy}}</td></tr>
{{end}}</table>{{else}}<p class="mute">none</p>{{end}}

<h2>Events</h2>
<table class="events"><colgroup><col class="when"><col class="kind"><col><col class="act"></colgroup><tr><th>when (UTC)</th><th>event</th><th>what</th><th>action</th></tr>
{{range .Events}}<tr class="{{.Cls}}"><td class="when">{{.At}}</td><td class="kind">{{.Label}}</td><td>{{.Text}}</td><td>{{.Action}}</td></tr>
{{end}}</table>

<h2>Certificates ({{len .Certs}})</h2>
<table class="certs"><colgroup><col><col class="cls"><col class="when"><col class="when"><col></colgroup><tr><th>certificate</th><th>class</th><th>expires now</th><th>expires at the end</th><th>what renews it</th></tr>
{{range .Certs}}<tr><td><code>{{.Name}}</code></td><td>{{.Class}}</td><td class="when">{{.NotAfter}}</td><td class="when">{{.Final}}</td><td>{{.Renewal}}</td></tr>
{{end}}</table>

<h2>Assumptions</h2>
<ul>{{range .F.Assumptions}}<li>{{.}}</li>{{end}}</ul>
<p class="mute">k3scert {{.F.APIVersion}} {{.F.Kind}}; made {{when .F.Now}}.</p>
</body></html>
`
