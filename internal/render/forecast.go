package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/report"
)

// ForecastFormats lists the -o values of `k3scert forecast`.
var ForecastFormats = []string{"text", "json", "yaml", "html"}

// Forecast renders a forecast as text (the default), json, yaml or html.
func Forecast(w io.Writer, f report.Forecast, format string, o Options) error {
	switch format {
	case "text", "table", "":
		return forecastText(w, f, o)
	case "json":
		return JSON(w, f)
	case "yaml":
		return YAML(w, f)
	case "html":
		return ForecastHTMLWith(w, f, HTMLOptions{SupervisorPort: o.SupervisorPort})
	}
	return fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(ForecastFormats, ", "))
}

// when prints a time the forecast way.
func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }

// relDays says how far t is from the start of the forecast: "in 23 days"
// when the forecast starts now, "23 days after --from" otherwise.
func relDays(t time.Time, f report.Forecast) string {
	if d := f.From.Sub(f.Now); d > time.Minute || d < -time.Minute {
		n := int(t.Sub(f.From).Hours() / 24)
		if n == 0 {
			return "at --from"
		}
		return fmt.Sprintf("%d days after --from", n)
	}
	d := t.Sub(f.Now)
	n := int(d.Hours() / 24)
	switch {
	case d >= 0 && n == 0:
		return "today"
	case d < 0 && n == 0:
		return "earlier today"
	case d > 0:
		return fmt.Sprintf("in %d days", n)
	}
	return fmt.Sprintf("%d days ago", -n)
}

// shortName trims the data-dir prefix everyone knows.
func shortName(n string) string { return strings.TrimPrefix(n, "server/tls/") }

// eventGroup is the events of one kind at one moment, with one action.
type eventGroup struct {
	At       time.Time
	Type     string
	Action   string
	Names    []string
	Classes  []string // parallel to Names
	NotAfter *time.Time
	Message  string // for groups of one event, or restarts and lock-outs
}

var eventLabels = map[string]string{
	report.EventAlreadyExpired: "EXPIRED",
	report.EventInWindow:       "IN WINDOW",
	report.EventEntersWindow:   "window opens",
	report.EventExpires:        "EXPIRES",
	report.EventRenewed:        "renewed",
	report.EventRestart:        "RESTART",
	report.EventLockOut:        "LOCK-OUT",
	report.EventLockOutEnds:    "lock-out ends",
}

// groupEvents folds events of the same moment, type, action and resulting
// expiry into one line.
func groupEvents(f report.Forecast) []eventGroup {
	names, classes := map[string]string{}, map[string]string{}
	for _, c := range f.Certificates {
		names[c.ID] = shortName(c.Name)
		classes[c.ID] = c.Class
	}
	var out []eventGroup
	idx := map[string]int{}
	for _, e := range f.Events {
		if e.Type == report.EventRestart || e.Type == report.EventLockOut || e.Type == report.EventLockOutEnds || e.Cert == "" {
			out = append(out, eventGroup{At: e.At, Type: e.Type, Action: e.Action, Message: e.Message, NotAfter: e.NotAfter})
			continue
		}
		na := ""
		if e.NotAfter != nil {
			na = e.NotAfter.UTC().Format("2006-01-02")
		}
		key := e.At.UTC().Format(time.RFC3339) + "|" + e.Type + "|" + e.Action + "|" + na
		if i, ok := idx[key]; ok {
			out[i].Names = append(out[i].Names, names[e.Cert])
			out[i].Classes = append(out[i].Classes, classes[e.Cert])
			out[i].Message = ""
			continue
		}
		idx[key] = len(out)
		out = append(out, eventGroup{At: e.At, Type: e.Type, Action: e.Action, Names: []string{names[e.Cert]}, Classes: []string{classes[e.Cert]}, NotAfter: e.NotAfter, Message: e.Message})
	}
	return out
}

// text is the human line of a group.
func (g eventGroup) text() string {
	if len(g.Names) == 0 {
		if g.Type == report.EventLockOut {
			// The headline has the whole story.
			m, _, _ := strings.Cut(strings.TrimPrefix(g.Message, "LOCK-OUT: "), "; ")
			return m
		}
		return g.Message
	}
	list := g.list()
	if g.NotAfter == nil {
		return list
	}
	switch g.Type {
	case report.EventRenewed:
		if len(g.Names) == 1 {
			return list + " → now expires " + when(*g.NotAfter)
		}
		return list + " → now expire " + when(*g.NotAfter)
	case report.EventAlreadyExpired:
		return list + " (expired " + when(*g.NotAfter) + ")"
	case report.EventInWindow, report.EventEntersWindow:
		if len(g.Names) == 1 {
			return list + " (expires " + when(*g.NotAfter) + ")"
		}
		return list + " (expire " + when(*g.NotAfter) + ")"
	}
	return list
}

// classWords names a class of certificates counted together.
var classWords = map[string][2]string{
	report.ClassServerLeaf: {"server/tls leaf", "server/tls leaves"},
	report.ClassAgentLeaf:  {"agent leaf", "agent leaves"},
	report.ClassFollower:   {"served copy", "served copies"},
	report.ClassCA:         {"CA", "CAs"},
	report.ClassOther:      {"other certificate", "other certificates"},
}

// list names the group's certificates; long lists count the leaves by
// class and name only what clients see (listener, kubeconfigs).
func (g eventGroup) list() string {
	if len(g.Names) <= 4 {
		return strings.Join(g.Names, ", ")
	}
	count := map[string]int{}
	var named []string
	for i, n := range g.Names {
		if _, ok := classWords[g.Classes[i]]; ok {
			count[g.Classes[i]]++
		} else {
			named = append(named, n)
		}
	}
	var parts []string
	for _, cl := range []string{report.ClassServerLeaf, report.ClassAgentLeaf, report.ClassFollower, report.ClassCA, report.ClassOther} {
		switch n := count[cl]; {
		case n == 1:
			parts = append(parts, "1 "+classWords[cl][0])
		case n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", n, classWords[cl][1]))
		}
	}
	return strings.Join(append(parts, named...), ", ")
}

func (g eventGroup) severity() string {
	switch g.Type {
	case report.EventAlreadyExpired, report.EventExpires, report.EventLockOut:
		if g.Action == report.ActionPlannedRestart || g.Action == report.ActionAutomatic {
			return "warning"
		}
		return "critical"
	case report.EventInWindow, report.EventEntersWindow:
		return "warning"
	case report.EventRenewed, report.EventLockOutEnds:
		return "ok"
	}
	return "info"
}

// wrap breaks s into lines of at most width runes after indent.
func wrap(s string, width int, indent string) string {
	words := strings.Fields(s)
	var b strings.Builder
	n := 0
	for i, w := range words {
		l := len([]rune(w))
		if i > 0 && n+1+l > width {
			b.WriteString("\n" + indent)
			n = 0
		} else if i > 0 {
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += l
	}
	return b.String()
}

func forecastText(w io.Writer, f report.Forecast, o Options) error {
	f = safeCopy(f) // names, subjects and messages come from the node
	ew := &errWriter{w: w}
	p := func(format string, a ...any) { fmt.Fprintf(ew, format, a...) }
	p("k3scert forecast: %s %s at %s, profile %s (renew window %d days)\n", f.Node.Program, f.Node.Role, f.Node.DataDir, f.Node.Profile, f.Node.RenewDays)
	restarts := "none"
	if len(f.Restarts) > 0 {
		var rs []string
		for _, r := range f.Restarts {
			rs = append(rs, when(r))
		}
		restarts = strings.Join(rs, ", ")
	}
	p("from %s to %s; planned restarts: %s\n\n", when(f.From), when(f.To), restarts)

	if len(f.Unknown) > 0 {
		// Blind: never an OK about what could not be read.
		p("%s  could not read what decides the lock-out; a lock-out cannot be ruled out\n", paint("UNKNOWN", o))
		for _, u := range f.Unknown {
			p("  - %s\n", wrap(u, 94, "    "))
		}
		if f.LockOut == nil {
			p("  no lock-out found among what could be read between %s and %s\n", when(f.From), when(f.To))
		}
	}
	if f.LockOut != nil {
		lo := f.LockOut
		lasts := "lasts past " + when(f.To)
		if lo.Until != nil {
			lasts = "until " + when(*lo.Until)
		}
		p("%s  %s (%s; %s)\n", red("LOCK-OUT", o), when(lo.At), relDays(lo.At, f), lasts)
		p("  %s\n", wrap(lo.Message, 96, "  "))
		if len(f.LockOuts) > 1 {
			p("  then %d more lock-out period(s); see the timeline\n", len(f.LockOuts)-1)
		}
	} else if len(f.Unknown) == 0 {
		p("%s  no lock-out between %s and %s\n", paint("OK", o), when(f.From), when(f.To))
	}

	p("\nWHAT TO DO\n")
	n := 0
	for _, a := range f.Actions {
		if !a.Required {
			continue
		}
		n++
		p("%2d. %s\n", n, wrap(a.Title, 92, "    "))
		p("    %s\n", wrap(a.Remedy, 92, "    "))
		g := eventGroup{}
		for _, id := range a.Certificates {
			for _, c := range f.Certificates {
				if c.ID == id {
					g.Names, g.Classes = append(g.Names, shortName(c.Name)), append(g.Classes, c.Class)
				}
			}
		}
		p("    %s\n", wrap("certificates: "+g.list(), 92, "    "))
	}
	if n == 0 {
		p("    nothing required between %s and %s\n", when(f.From), when(f.To))
	}
	for _, a := range f.Actions {
		if a.Required {
			continue
		}
		label := "planned:  "
		if a.Action == report.ActionAutomatic {
			label = "automatic:"
		}
		p("    %s %s\n", label, wrap(a.Title+" — "+a.Remedy, 84, "               "))
	}

	p("\nTIMELINE (UTC)\n")
	for _, g := range groupEvents(f) {
		label := eventLabels[g.Type]
		label = padRight(label, 13)
		if g.severity() == "critical" {
			label = red(label, o)
		}
		p("  %s  %s  %s\n", g.At.UTC().Format("2006-01-02 15:04"), label, wrap(g.text()+actionTag(g.Action), 72, strings.Repeat(" ", 35)))
	}
	if len(f.Findings) > 0 {
		var crit []report.Finding
		for _, x := range f.Findings {
			if x.Severity == report.Critical {
				crit = append(crit, x)
			}
		}
		p("\nFINDINGS AT %s: %d (%d critical); k3scert check --at %s shows them all\n",
			when(f.From), len(f.Findings), len(crit), f.From.UTC().Format(time.RFC3339))
		if len(crit) > 0 {
			Findings(ew, crit, o)
		}
	}
	p("\nASSUMPTIONS\n")
	for _, a := range f.Assumptions {
		p("  - %s\n", wrap(a, 94, "    "))
	}
	return ew.err
}

func actionTag(a string) string {
	if a == "" {
		return ""
	}
	return "  [" + a + "]"
}

func nameOf(f report.Forecast, id string) string {
	for _, c := range f.Certificates {
		if c.ID == id {
			return shortName(c.Name)
		}
	}
	return id
}

func padRight(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}

// red colours s when colour is on.
func red(s string, o Options) string {
	if !o.Color {
		return s
	}
	return "\x1b[31m" + s + "\x1b[0m"
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
