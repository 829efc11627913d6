package render

import (
	"fmt"
	"html/template"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/forecast"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
)

// ReportHorizon is how far the page of a check report looks ahead: 13
// months, so that a lock-out in weeks is visible (the 10-year CAs are
// summarised instead of stretching the axis).
const ReportHorizonMonths = 13

// HTMLOptions adjust a page.
type HTMLOptions struct {
	// SupervisorPort is the node's supervisor (listener) port when not the
	// program's default (--supervisor-port); every message names it.
	SupervisorPort int
}

// ReportHTML writes the page of a check report: the forecast for the
// present (from the report's judgement time ReportHorizonMonths ahead, no
// planned restarts) with the report's findings. The supervisor port is the
// one the report probed.
func ReportHTML(w io.Writer, r report.Report) error {
	o := HTMLOptions{}
	for _, e := range r.Endpoints {
		if e.Role == "supervisor" {
			if _, port, err := net.SplitHostPort(e.Address); err == nil {
				o.SupervisorPort, _ = strconv.Atoi(port)
			}
		}
	}
	return ReportHTMLWith(w, r, o)
}

// ReportHTMLWith is ReportHTML with options.
func ReportHTMLWith(w io.Writer, r report.Report, o HTMLOptions) error {
	prof, err := k3s.ProfileByName(r.Node.Profile)
	if err != nil {
		prof = k3s.ProfileCurrent
	}
	certs := forecast.FromReport(r)
	to := forecast.DefaultTo(certs, r.At)
	if h := r.At.AddDate(0, ReportHorizonMonths, 0); h.Before(to) {
		to = h
	}
	f := forecast.Run(forecast.Input{Node: r.Node, Profile: prof, Certs: certs, Now: r.At, From: r.At, To: to, Findings: r.Findings})
	p := newPage(f, o)
	p.Title = "k3scert check"
	p.Status = &r.Summary
	return pageTmpl.Execute(w, p)
}

// ForecastHTML writes one self-contained HTML page (inline CSS and SVG, no
// script, nothing fetched from the network) for a forecast: a timeline with
// one bar per certificate (class "bar", data-cert = the certificate ID),
// renew windows shaded, planned restarts, lock-outs and today marked, then
// what to do, the events and the findings.
func ForecastHTML(w io.Writer, f report.Forecast) error {
	return ForecastHTMLWith(w, f, HTMLOptions{})
}

// ForecastHTMLWith is ForecastHTML with options.
func ForecastHTMLWith(w io.Writer, f report.Forecast, o HTMLOptions) error {
	p := newPage(f, o)
	p.Title = "k3scert forecast"
	return pageTmpl.Execute(w, p)
}

// Timeline geometry (SVG user units = CSS pixels).
const (
	svgWidth  = 1360
	labelW    = 380
	rightPad  = 20
	topPad    = 46
	rowH      = 17
	barH      = 11
	groupGap  = 20
	bottomPad = 34
)

type page struct {
	Title    string
	F        report.Forecast
	Status   *report.Summary
	Headline string
	HeadCls  string
	Detail   string
	SVG      timeline
	Actions  []report.ForecastAction
	Events   []htmlEvent
	Certs    []htmlCert
	// CASummary says when the CAs expire when that is beyond the view.
	CASummary string
}

type htmlEvent struct {
	At, Label, Text, Action, Cls string
}

type htmlCert struct {
	Name, Class, Renewal, NotAfter, Final string
}

type timeline struct {
	W, H, ChartX, ChartW, ChartY, ChartH, AxisY int
	Ticks                                       []tick
	Groups                                      []group
	Rows                                        []row
	Restarts                                    []vline
	LockOuts                                    []span
	Today                                       *vline
}

type tick struct {
	X     float64
	Label string
}

type group struct {
	Y     int
	Label string
}

type row struct {
	Y, BarY, TextY int
	MarkTop        int
	MarkBottom     int
	ID, Name, Full string
	Class          string
	ClientFacing   bool
	Segs           []seg
	Renewals       []vline
}

type seg struct {
	X, W  float64
	Kind  string // valid, window, expired
	Title string
}

type vline struct {
	X     float64
	Label string
}

type span struct {
	X, W  float64
	Label string
}

// rowGroups orders the rows: what decides the lock-out first, CAs last.
var rowGroups = []struct {
	label   string
	classes []string
}{
	// Short enough to end before the chart (labelW).
	{"served and held by clients (decide the lock-out)", []string{report.ClassListener, report.ClassAdminKubecfg, report.ClassKubeconfigCopy}},
	{"server/tls leaves (a restart in the window renews)", []string{report.ClassServerLeaf}},
	{"agent leaves, served copies (every restart renews)", []string{report.ClassAgentLeaf, report.ClassFollower}},
	{"not managed by K3s", []string{report.ClassOther}},
	{"CAs (never renewed by K3s)", []string{report.ClassCA}},
}

func newPage(f report.Forecast, o HTMLOptions) page {
	port := portFixer(f, o)
	f.Assumptions = append([]string(nil), f.Assumptions...)
	for i := range f.Assumptions {
		f.Assumptions[i] = port(f.Assumptions[i])
	}
	f.Findings = append([]report.Finding(nil), f.Findings...)
	for i := range f.Findings {
		f.Findings[i].Message, f.Findings[i].Remedy = port(f.Findings[i].Message), port(f.Findings[i].Remedy)
	}
	p := page{F: f}
	for _, a := range f.Actions {
		a.Title, a.Remedy = port(a.Title), port(a.Remedy)
		p.Actions = append(p.Actions, a)
	}
	if f.LockOut != nil {
		lo := f.LockOut
		p.HeadCls = "bad"
		p.Headline = fmt.Sprintf("Lock-out %s (%s)", when(lo.At), relDays(lo.At, f))
		p.Detail = port(lo.Message)
		if lo.At.After(f.Now) {
			p.Detail = futureTense(p.Detail)
		}
	} else {
		p.HeadCls = "good"
		p.Headline = "No lock-out between " + when(f.From) + " and " + when(f.To)
		p.Detail = "every certificate the supervisor serves or a client holds stays valid, given the planned restarts"
	}
	p.SVG = buildTimeline(f)
	for _, g := range groupEvents(f) {
		text := port(g.text())
		if g.At.After(f.Now) {
			text = futureTense(text)
		}
		p.Events = append(p.Events, htmlEvent{At: g.At.UTC().Format("2006-01-02 15:04"), Label: eventLabels[g.Type], Text: text, Action: g.Action, Cls: g.severity()})
	}
	p.CASummary = caSummary(f)
	for _, c := range f.Certificates {
		hc := htmlCert{Name: c.Name, Class: c.Class, Renewal: c.Renewal}
		if len(c.Validities) > 0 {
			hc.NotAfter = when(c.Validities[0].NotAfter)
			hc.Final = when(c.Validities[len(c.Validities)-1].NotAfter)
		}
		p.Certs = append(p.Certs, hc)
	}
	return p
}

func buildTimeline(f report.Forecast) timeline {
	tl := timeline{W: svgWidth, ChartX: labelW, ChartW: svgWidth - labelW - rightPad, ChartY: topPad}
	from, to := f.From, f.To
	if !to.After(from) {
		to = from.Add(24 * time.Hour)
	}
	secs := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		if t.Before(from) {
			t = from
		}
		if t.After(to) {
			t = to
		}
		return float64(tl.ChartX) + float64(tl.ChartW)*t.Sub(from).Seconds()/secs
	}
	y := topPad
	for _, g := range rowGroups {
		var certs []report.ForecastCertificate
		for _, c := range f.Certificates {
			for _, cl := range g.classes {
				if c.Class == cl {
					certs = append(certs, c)
				}
			}
		}
		if len(certs) == 0 {
			continue
		}
		sort.SliceStable(certs, func(i, j int) bool { return certs[i].Name < certs[j].Name })
		y += 4
		tl.Groups = append(tl.Groups, group{Y: y + 10, Label: g.label})
		y += groupGap - 4
		for _, c := range certs {
			r := row{Y: y, BarY: y + (rowH-barH)/2, TextY: y + rowH - 5, MarkTop: y, MarkBottom: y + rowH - 1, ID: c.ID, Full: c.Name, Name: ellipsis(c.Name, 48), Class: c.Class, ClientFacing: c.ClientFacing}
			for k, v := range c.Validities {
				start := from
				if k > 0 && c.Validities[k-1].ReplacedAt != nil {
					start = *c.Validities[k-1].ReplacedAt
				}
				end := to
				if v.ReplacedAt != nil {
					end = *v.ReplacedAt
				}
				add := func(a, b time.Time, kind, title string) {
					if a.Before(start) {
						a = start
					}
					if b.After(end) {
						b = end
					}
					if !b.After(a) {
						return
					}
					x0, x1 := x(a), x(b)
					if x1 <= x0 {
						return
					}
					w := x1 - x0
					if w < 1 {
						w = 1
					}
					r.Segs = append(r.Segs, seg{X: x0, W: w, Kind: kind, Title: title})
				}
				life := fmt.Sprintf("%s: valid %s – %s", c.Name, when(v.NotBefore), when(v.NotAfter))
				add(start, v.WindowStart, "valid", life)
				add(v.WindowStart, v.NotAfter, "window", life+fmt.Sprintf(" (renew window from %s)", when(v.WindowStart)))
				add(v.NotAfter, end, "expired", fmt.Sprintf("%s: EXPIRED since %s", c.Name, when(v.NotAfter)))
				if v.ReplacedAt != nil && !v.ReplacedAt.After(to) {
					r.Renewals = append(r.Renewals, vline{X: x(*v.ReplacedAt), Label: "renewed " + when(*v.ReplacedAt) + " by " + v.ReplacedBy})
				}
			}
			tl.Rows = append(tl.Rows, r)
			y += rowH
		}
	}
	tl.ChartH = y - topPad + 6
	tl.AxisY = topPad + tl.ChartH
	tl.H = tl.AxisY + bottomPad
	tl.Ticks = ticks(from, to, x)
	for _, r := range f.Restarts {
		tl.Restarts = append(tl.Restarts, vline{X: x(r), Label: "restart " + r.UTC().Format("2006-01-02")})
	}
	for _, lo := range f.LockOuts {
		end := to
		if lo.Until != nil {
			end = *lo.Until
		}
		x0, x1 := x(lo.At), x(end)
		if x1-x0 < 2 {
			x1 = x0 + 2
		}
		tl.LockOuts = append(tl.LockOuts, span{X: x0, W: x1 - x0, Label: "LOCK-OUT " + lo.At.UTC().Format("2006-01-02")})
	}
	if !f.Now.Before(from) && !f.Now.After(to) {
		tl.Today = &vline{X: x(f.Now), Label: "today " + f.Now.UTC().Format("2006-01-02")}
	}
	return tl
}

func ellipsis(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// portFixer rewrites the program's default supervisor port in messages
// to the node's own (--supervisor-port, or the port the report probed).
func portFixer(f report.Forecast, o HTMLOptions) func(string) string {
	def := k3s.DefaultPorts(k3s.Program(f.Node.Program)).Supervisor
	if f.Node.Program == "" {
		def = k3s.DefaultPorts(k3s.K3s).Supervisor
	}
	if o.SupervisorPort == 0 || o.SupervisorPort == def {
		return func(s string) string { return s }
	}
	from, to := ":"+strconv.Itoa(def), ":"+strconv.Itoa(o.SupervisorPort)
	return func(s string) string {
		var b strings.Builder
		for {
			i := strings.Index(s, from)
			if i < 0 {
				break
			}
			end := i + len(from)
			b.WriteString(s[:i])
			if end < len(s) && s[end] >= '0' && s[end] <= '9' {
				b.WriteString(from) // another number (:64430)
			} else {
				b.WriteString(to)
			}
			s = s[end:]
		}
		b.WriteString(s)
		return b.String()
	}
}

// futureTense turns the present-tense wording of the forecast's messages
// into the future for events that have not happened yet.
func futureTense(s string) string {
	r := strings.NewReplacer(
		" expired;", " will have expired;",
		" expired,", " will have expired,",
		" fails with", " will fail with",
		" fail with", " will fail with",
		"a restart does not help", "a restart will not help",
	)
	return r.Replace(s)
}

// caSummary names the CA expiries that lie beyond the view, earliest first.
func caSummary(f report.Forecast) string {
	type ca struct {
		name string
		at   time.Time
	}
	var beyond []ca
	for _, c := range f.Certificates {
		if c.Class != report.ClassCA || len(c.Validities) == 0 {
			continue
		}
		if at := c.Validities[len(c.Validities)-1].NotAfter; at.After(f.To) {
			beyond = append(beyond, ca{shortName(c.Name), at})
		}
	}
	if len(beyond) == 0 {
		return ""
	}
	sort.Slice(beyond, func(i, j int) bool {
		if !beyond[i].at.Equal(beyond[j].at) {
			return beyond[i].at.Before(beyond[j].at)
		}
		return beyond[i].name < beyond[j].name
	})
	first := beyond[0].at
	var same []string
	for _, c := range beyond {
		if c.at.Sub(first) < 24*time.Hour {
			same = append(same, c.name)
		}
	}
	s := fmt.Sprintf("CAs: %d of them expire after this view; the first on %s (%s, in %s). K3s never renews CAs: plan k3s certificate rotate-ca before then.",
		len(beyond), first.UTC().Format("2006-01-02"), strings.Join(same, ", "), strings.TrimPrefix(relDays(first, f), "in "))
	return s
}

// ticks chooses yearly, quarterly or monthly ticks for the span.
func ticks(from, to time.Time, x func(time.Time) float64) []tick {
	months := 1
	span := to.Sub(from)
	switch {
	case span > 4*365*24*time.Hour:
		months = 12
	case span > 18*30*24*time.Hour:
		months = 3
	}
	t := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	if months == 12 {
		t = time.Date(from.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	} else if months == 3 {
		t = time.Date(from.Year(), time.Month((int(from.Month())-1)/3*3+1), 1, 0, 0, 0, 0, time.UTC)
	}
	var out []tick
	for ; !t.After(to); t = t.AddDate(0, months, 0) {
		if t.Before(from) {
			continue
		}
		// Monthly: "Jan 2027" on January and on the first tick, else "Feb".
		label := t.Format("Jan")
		switch {
		case months == 12:
			label = t.Format("2006")
		case months == 3:
			label = t.Format("Jan 2006")
		case len(out) == 0 || t.Month() == time.January:
			label = t.Format("Jan 2006")
		}
		out = append(out, tick{X: x(t), Label: label})
	}
	return out
}

var funcs = template.FuncMap{
	"when":  when,
	"f1":    func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"name":  func(f report.Forecast, id string) string { return nameOf(f, id) },
	"upper": strings.ToUpper,
	"add":   func(a, b int) int { return a + b },
	// rel shortens paths inside the data dir, which the page names once.
	"rel": func(f report.Forecast, s string) string {
		if d := strings.TrimSuffix(f.Node.DataDir, "/"); d != "" {
			return strings.ReplaceAll(s, d+"/", "")
		}
		return s
	},
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))
