package forecast

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	"github.com/k3scert/k3scert/internal/source"
)

// actions groups the events by what a user must do: required actions by
// deadline, then the planned restarts, then what K3s does by itself.
func (s *sim) actions(ev []report.ForecastEvent) []report.ForecastAction {
	groups := map[string]*report.ForecastAction{}
	var order []string
	for _, e := range ev {
		if e.Action == "" {
			continue
		}
		g := groups[e.Action]
		if g == nil {
			g = &report.ForecastAction{Action: e.Action, Certificates: []string{}}
			groups[e.Action] = g
			order = append(order, e.Action)
		}
		g.Events++
		if e.Cert != "" && !contains(g.Certificates, e.Cert) {
			g.Certificates = append(g.Certificates, e.Cert)
		}
		required := e.Action != report.ActionPlannedRestart && e.Action != report.ActionAutomatic
		if !required || e.NotAfter == nil {
			continue
		}
		switch e.Type {
		case report.EventAlreadyExpired, report.EventInWindow, report.EventEntersWindow, report.EventExpires:
		default:
			continue
		}
		g.Required = true
		if g.Deadline == nil || e.NotAfter.Before(*g.Deadline) {
			g.Deadline = ptr(*e.NotAfter)
			t := s.byID(e.Cert)
			g.ActFrom = ptr(e.NotAfter.Add(-days(windowDays(t.c, s.in.Profile))))
		}
	}
	var out []report.ForecastAction
	for _, a := range order {
		g := groups[a]
		sort.Strings(g.Certificates)
		g.Title, g.Remedy = s.describeAction(g)
		out = append(out, *g)
	}
	rank := func(a report.ForecastAction) int {
		switch {
		case a.Required:
			return 0
		case a.Action == report.ActionPlannedRestart:
			return 1
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		if a.Deadline != nil && b.Deadline != nil && !a.Deadline.Equal(*b.Deadline) {
			return a.Deadline.Before(*b.Deadline)
		}
		return a.Action < b.Action
	})
	if out == nil {
		out = []report.ForecastAction{}
	}
	return out
}

func (s *sim) names(ids []string) []string {
	var out []string
	for _, id := range ids {
		if t := s.byID(id); t != nil {
			out = append(out, t.c.Name)
		}
	}
	return out
}

func (s *sim) describeAction(a *report.ForecastAction) (title, remedy string) {
	svc := s.service()
	between := ""
	if a.ActFrom != nil && a.Deadline != nil {
		from := *a.ActFrom
		if from.Before(s.in.From) {
			from = s.in.From
		}
		if a.Deadline.After(s.in.From) {
			between = " between " + date(from) + " and " + date(*a.Deadline)
		} else {
			between = " now (overdue since " + date(*a.Deadline) + ")"
		}
	}
	n := len(a.Certificates)
	switch a.Action {
	case report.ActionRestartServer:
		title = fmt.Sprintf("restart %s%s", svc, between)
		remedy = fmt.Sprintf("systemctl restart %s inside the renew window: K3s reissues the server/tls leaves with at most %d days left, rewrites %s, and the embedded agent fetches fresh certificates",
			svc, s.in.Profile.RenewDays, k3s.DefaultKubeconfig(program(s.in.Node)))
		if !s.in.Profile.ListenerRenews {
			remedy += "; on " + s.in.Profile.Name + " this does NOT renew the listener certificate"
		}
	case report.ActionRestartAgent:
		title = fmt.Sprintf("restart %s after its server%s", svc, between)
		remedy = "systemctl restart " + svc + " after restarting its server: agents fetch fresh certificates on every start"
	case report.ActionRotateListener:
		if s.in.Node.Role == string(k3s.RoleAgent) {
			title = "renew its server's listener certificate" + between
			remedy = "on the server: k3scert rotate (K3s " + s.in.Profile.Versions + " never renews the listener); only then restart " + svc + ": after the listener expired this agent cannot start again"
			break
		}
		title = "renew the :6443 listener certificate" + between
		remedy = "run k3scert rotate: it renews the listener certificate in both the serving secret and dynamic-cert.json and restarts " + svc +
			" (by hand: delete both, then restart); K3s " + s.in.Profile.Versions + " never renews it, not even at a restart; upgrading to v1.19.1+ makes it renew itself"
	case report.ActionRefreshKubeconfig:
		title = "refresh the kubeconfig copies" + between
		remedy = "for each copy: k3scert kubeconfig refresh PATH (K3s rewrites only " + k3s.DefaultKubeconfig(program(s.in.Node)) + "; copies keep the old client certificate)"
	case report.ActionRotateCA:
		title = "rotate the CAs" + between
		remedy = "K3s never renews CAs: prepare cross-signed CAs and run k3s certificate rotate-ca --path DIR (docs/runbooks/ca-rotation.md)"
	case report.ActionInvestigate:
		title = "find the owner of certificates K3s does not manage" + between
		remedy = "these certificates are not in k3scert's K3s table; whoever created them must renew them"
	case report.ActionPlannedRestart:
		title = "the planned restarts (" + s.restartList() + ")"
		remedy = fmt.Sprintf("do them: they renew %s as shown; a restart not made is a renewal not made", plural(n, "certificate"))
	case report.ActionAutomatic:
		title = "nothing to do: K3s renews these by itself while running"
		remedy = fmt.Sprintf("the listener (dynamiclistener) renews its certificate %d days before expiry; check that it did with k3scert check", s.in.Profile.RenewDays)
	}
	if a.Required {
		title += fmt.Sprintf(" (%s)", plural(n, "certificate"))
	}
	return title, remedy
}

func (s *sim) restartList() string {
	var out []string
	for _, r := range s.restarts() {
		out = append(out, r.UTC().Format("2006-01-02 15:04"))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// Find returns the forecast of the certificate with the given ID.
func Find(f report.Forecast, id string) (report.ForecastCertificate, bool) {
	for _, c := range f.Certificates {
		if c.ID == id {
			return c, true
		}
	}
	return report.ForecastCertificate{}, false
}

// Renewals returns when the certificate id is predicted to be renewed.
func Renewals(f report.Forecast, id string) []time.Time {
	c, _ := Find(f, id)
	var out []time.Time
	for _, v := range c.Validities {
		if v.ReplacedAt != nil {
			out = append(out, *v.ReplacedAt)
		}
	}
	return out
}

// ValidityAt returns the predicted certificate id has in place at t (after
// any renewal at exactly t). ok is false for an unknown id.
func ValidityAt(f report.Forecast, id string, t time.Time) (report.Validity, bool) {
	c, ok := Find(f, id)
	if !ok || len(c.Validities) == 0 {
		return report.Validity{}, false
	}
	for _, v := range c.Validities {
		if v.ReplacedAt == nil || t.Before(*v.ReplacedAt) {
			return v, true
		}
	}
	return c.Validities[len(c.Validities)-1], true
}

// Predict is Run over an inventory, with no findings: for each certificate
// when it enters its window, expires and is renewed (Renewals, ValidityAt),
// and the lock-out (LockOut, LockOuts). It is what the lab comparison asks
// before the first step of a scenario.
func Predict(inv *source.Inventory, node report.Node, p k3s.Profile, from, to time.Time, restarts []time.Time) report.Forecast {
	return Run(Input{Node: node, Profile: p, Certs: FromInventory(inv, node), From: from, To: to, Restarts: restarts})
}

// ForReport is the forecast of a check report for the present: from its
// judgement time to the latest CA expiry, without planned restarts, with its
// findings. `k3scert check -o html` renders it.
func ForReport(r report.Report) report.Forecast {
	prof, err := k3s.ProfileByName(r.Node.Profile)
	if err != nil {
		prof = k3s.ProfileCurrent
	}
	certs := FromReport(r)
	return Run(Input{Node: r.Node, Profile: prof, Certs: certs, Now: r.At, From: r.At, To: DefaultTo(certs, r.At), Findings: r.Findings})
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
