package forecast

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
)

// Date is how forecasts print a time.
const Date = "2006-01-02 15:04 MST"

func date(t time.Time) string { return t.UTC().Format(Date) }

func (s *sim) service() string {
	p := s.in.Node.Program
	if p == "" {
		p = string(k3s.K3s)
	}
	if s.in.Node.Role == string(k3s.RoleAgent) {
		return p + "-agent"
	}
	if p == string(k3s.RKE2) {
		return "rke2-server"
	}
	return p
}

func (s *sim) assumptions() []string {
	p := s.in.Profile
	a := []string{
		fmt.Sprintf("profile %s (%s): at a start K3s reissues every server/tls leaf with at most %d days left; a renewed certificate is valid for %d days from one hour before the start", p.Name, p.Versions, p.RenewDays, s.in.ValidityDays),
		"CAs are never renewed by K3s",
		"the node runs from " + date(s.in.From) + " to " + date(s.in.To) + " and restarts only at the planned restarts",
	}
	if s.in.Node.Role == string(k3s.RoleAgent) {
		a = append(a, "a planned restart is an agent restart after its server; the agent fetches fresh certificates on every start",
			"a server's listener seen from this agent (when check probed it) is renewed by that server as this profile says, never by an agent restart; after it expires this agent cannot start again")
	} else {
		a = append(a, "a planned restart of "+s.service()+" also restarts the embedded agent, which fetches fresh agent certificates",
			"K3s rewrites "+k3s.DefaultKubeconfig(program(s.in.Node))+" from client-admin on every start; copies of it are never updated")
	}
	if p.ListenerRenews {
		a = append(a, fmt.Sprintf("the running listener (dynamiclistener) renews its certificate %d days before expiry (checked every 6 hours), keeping its key; a start inside that window renews it too", p.RenewDays))
	} else {
		a = append(a, "the listener certificate (dynamic-cert.json, the serving secret, what :6443 serves) is never renewed on this version, not even by a restart (dynamiclistener v0.2.0)")
	}
	a = append(a, "the lock-out is the first moment a certificate the supervisor serves or a client holds has expired")
	return a
}

func (s *sim) renewal(t *track) string {
	switch t.c.Class {
	case report.ClassCA:
		return "never renewed by K3s (k3s certificate rotate-ca)"
	case report.ClassServerLeaf:
		return fmt.Sprintf("reissued at a start of %s with at most %d days left", s.service(), s.in.Profile.RenewDays)
	case report.ClassAgentLeaf:
		return "fetched fresh on every agent start"
	case report.ClassListener:
		if s.in.Profile.ListenerRenews {
			return fmt.Sprintf("renewed by the running listener %d days before expiry", s.in.Profile.RenewDays)
		}
		return "never renewed on " + s.in.Profile.Name + ", not even by a restart"
	case report.ClassAdminKubecfg:
		return "rewritten from client-admin on every start"
	case report.ClassKubeconfigCopy:
		return "a copy: never updated by K3s"
	case report.ClassFollower:
		return "picked up from its file at a restart"
	}
	return "not managed by K3s"
}

// requiredAction is what a user must do so that t does not expire.
func (s *sim) requiredAction(t *track) string {
	switch t.c.Class {
	case report.ClassServerLeaf, report.ClassAdminKubecfg:
		return report.ActionRestartServer
	case report.ClassAgentLeaf, report.ClassFollower:
		if s.in.Node.Role == string(k3s.RoleAgent) {
			return report.ActionRestartAgent
		}
		return report.ActionRestartServer
	case report.ClassListener:
		if s.in.Profile.ListenerRenews {
			return report.ActionAutomatic
		}
		return report.ActionRotateListener
	case report.ClassKubeconfigCopy:
		return report.ActionRefreshKubeconfig
	case report.ClassCA:
		return report.ActionRotateCA
	}
	return report.ActionInvestigate
}

// actionFor is the group of an event on validity v of t.
func (s *sim) actionFor(t *track, v report.Validity) string {
	if v.ReplacedAt != nil && !v.ReplacedAt.After(v.NotAfter) {
		if v.ReplacedBy == "listener" {
			return report.ActionAutomatic
		}
		return report.ActionPlannedRestart
	}
	return s.requiredAction(t)
}

type interval struct {
	start, end time.Time
	open       bool // lasts past To
	cert       string
}

// lockOuts merges the expired periods of every client-facing certificate.
func (s *sim) lockOuts() []report.LockOut {
	var ivs []interval
	for _, t := range s.tracks {
		if !clientFacing(t.c) {
			continue
		}
		for k, v := range t.vals {
			end, open := s.end(v), v.ReplacedAt == nil
			if open && v.NotAfter.After(s.in.To) || !open && !v.NotAfter.Before(end) {
				continue
			}
			st := latest(s.start(t, k), v.NotAfter)
			if !open && !st.Before(end) {
				continue
			}
			ivs = append(ivs, interval{start: st, end: end, open: open, cert: t.c.ID})
		}
	}
	sort.SliceStable(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
	var out []report.LockOut
	var cur *interval
	var causes []string
	flush := func() {
		if cur == nil {
			return
		}
		lo := report.LockOut{At: cur.start, Causes: causes}
		if !cur.open {
			u := cur.end
			lo.Until = &u
		}
		lo.Message = s.lockOutMessage(lo)
		out = append(out, lo)
	}
	for i := range ivs {
		iv := ivs[i]
		if cur != nil && !iv.start.After(cur.end) {
			if iv.end.After(cur.end) {
				cur.end = iv.end
			}
			cur.open = cur.open || iv.open
			// Causes are what expired when it began; what expires later
			// inside the same period is on the timeline.
			if iv.start.Sub(cur.start) < time.Minute && !contains(causes, iv.cert) {
				causes = append(causes, iv.cert)
			}
			continue
		}
		flush()
		c := iv
		cur, causes = &c, []string{iv.cert}
	}
	flush()
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *sim) byName(name string) *track {
	for _, t := range s.tracks {
		if t.c.Name == name {
			return t
		}
	}
	return nil
}

func (s *sim) byID(id string) *track {
	for _, t := range s.tracks {
		if t.c.ID == id {
			return t
		}
	}
	return nil
}

// lockOutMessage says who fails and why, in the words kubectl will use.
func (s *sim) lockOutMessage(lo report.LockOut) string {
	var parts []string
	listener := false
	for _, id := range lo.Causes {
		t := s.byID(id)
		switch t.c.Class {
		case report.ClassListener:
			listener = true
			parts = append(parts, "the listener certificate in "+t.c.Name)
		case report.ClassAdminKubecfg:
			parts = append(parts, "the client certificate in "+t.c.Name)
		case report.ClassKubeconfigCopy:
			parts = append(parts, "the client certificate in the copy "+t.c.Name)
		default:
			parts = append(parts, t.c.Name)
		}
	}
	who := "kubectl with those kubeconfigs fails"
	if len(lo.Causes) == 1 {
		who = "kubectl with that kubeconfig fails"
	}
	if listener && s.in.Node.Role == string(k3s.RoleAgent) {
		who = "this agent cannot start again (its start fails with \"https://<server>/cacerts is not trusted: … x509: certificate has expired\"); renew the server's listener before restarting the agent"
	} else if listener {
		who = "every client of :" + fmt.Sprint(k3s.DefaultPorts(program(s.in.Node)).Supervisor) + " (kubectl, agents, k3s itself) fails"
	}
	msg := fmt.Sprintf("%s expired; %s with \"x509: certificate has expired or is not yet valid\"", strings.Join(parts, ", "), who)
	if listener && !s.in.Profile.ListenerRenews {
		msg += "; K3s " + s.in.Profile.Versions + " never renews the listener certificate, so a restart does not help"
	}
	if lo.Until != nil {
		msg += "; a planned restart ends it " + date(*lo.Until)
	}
	return msg
}

func ptr(t time.Time) *time.Time { return &t }

// events lists everything that happens, in time order.
func (s *sim) events(los []report.LockOut) []report.ForecastEvent {
	var ev []report.ForecastEvent
	add := func(e report.ForecastEvent) { ev = append(ev, e) }
	restartsLeft := map[int64][]string{}
	restartsKept := map[int64][]string{}
	for _, t := range s.tracks {
		for k, v := range t.vals {
			st, end := s.start(t, k), s.end(v)
			act := s.actionFor(t, v)
			what := "expires"
			if t.c.Class == report.ClassCA {
				what = "CA expires"
			}
			switch {
			case k == 0 && !v.NotAfter.After(s.in.From):
				add(report.ForecastEvent{At: s.in.From, Type: report.EventAlreadyExpired, Cert: t.c.ID, Action: act, NotAfter: ptr(v.NotAfter),
					Message: fmt.Sprintf("%s expired %s (%s)", t.c.Name, date(v.NotAfter), t.c.Subject)})
			case k == 0 && !v.WindowStart.After(s.in.From):
				add(report.ForecastEvent{At: s.in.From, Type: report.EventInWindow, Cert: t.c.ID, Action: act, NotAfter: ptr(v.NotAfter),
					Message: fmt.Sprintf("%s %s %s, in %d days: inside its %d-day window", t.c.Name, what, date(v.NotAfter), int(v.NotAfter.Sub(s.in.From).Hours()/24), windowDays(t.c, s.in.Profile))})
			}
			if v.WindowStart.After(st) && v.WindowStart.Before(end) {
				msg := fmt.Sprintf("%s enters its %d-day renew window (%s %s)", t.c.Name, windowDays(t.c, s.in.Profile), what, date(v.NotAfter))
				if t.c.Class == report.ClassCA {
					msg = fmt.Sprintf("%s: CA enters its last year (expires %s); K3s never renews CAs", t.c.Name, date(v.NotAfter))
				}
				add(report.ForecastEvent{At: v.WindowStart, Type: report.EventEntersWindow, Cert: t.c.ID, Action: act, NotAfter: ptr(v.NotAfter), Message: msg})
			}
			if v.NotAfter.After(st) && (v.ReplacedAt == nil && !v.NotAfter.After(s.in.To) || v.ReplacedAt != nil && v.NotAfter.Before(*v.ReplacedAt)) {
				add(report.ForecastEvent{At: v.NotAfter, Type: report.EventExpires, Cert: t.c.ID, Action: act, NotAfter: ptr(v.NotAfter),
					Message: fmt.Sprintf("%s %s (%s); %s", t.c.Name, what, t.c.Subject, t.c.renewalHint(s))})
			}
			if v.ReplacedAt != nil {
				nv := t.vals[k+1]
				by := "at the restart"
				if v.ReplacedBy == "listener" {
					by = "by the running listener"
				}
				add(report.ForecastEvent{At: *v.ReplacedAt, Type: report.EventRenewed, Cert: t.c.ID, Action: act, NotAfter: ptr(nv.NotAfter),
					Message: fmt.Sprintf("%s renewed %s; now expires %s", t.c.Name, by, date(nv.NotAfter))})
				if v.ReplacedBy == "restart" {
					restartsLeft[v.ReplacedAt.Unix()] = append(restartsLeft[v.ReplacedAt.Unix()], t.c.Name)
				}
			}
		}
	}
	for _, r := range s.restarts() {
		var kept []string
		for _, t := range s.tracks {
			if t.c.Class != report.ClassListener && t.c.Class != report.ClassKubeconfigCopy {
				continue
			}
			renewed := false
			for _, v := range t.vals {
				if v.ReplacedAt != nil && v.ReplacedAt.Equal(r) {
					renewed = true
				}
			}
			if !renewed && s.activeAt(t, r).WindowStart.Before(r.Add(time.Nanosecond)) {
				kept = append(kept, t.c.Name)
			}
		}
		restartsKept[r.Unix()] = kept
		msg := fmt.Sprintf("planned restart of %s: renews %s", s.service(), plural(len(restartsLeft[r.Unix()]), "certificate"))
		if len(kept) > 0 {
			msg += "; does NOT renew " + strings.Join(kept, ", ")
			var why []string
			for _, name := range kept {
				t := s.byName(name)
				switch {
				case t.c.Class == report.ClassListener && !contains(why, "listener"):
					why = append(why, "listener")
				case t.c.Class == report.ClassKubeconfigCopy && !contains(why, "copy"):
					why = append(why, "copy")
				}
			}
			var words []string
			for _, w := range why {
				if w == "listener" && s.in.Node.Role == string(k3s.RoleAgent) {
					words = append(words, "an agent restart never renews its server's listener")
				} else if w == "listener" {
					words = append(words, s.in.Profile.Name+" never renews the listener certificate")
				} else {
					words = append(words, "K3s never updates kubeconfig copies")
				}
			}
			msg += " (" + strings.Join(words, "; ") + ")"
		}
		add(report.ForecastEvent{At: r, Type: report.EventRestart, Action: report.ActionPlannedRestart, Message: msg})
	}
	for _, lo := range los {
		act := s.requiredAction(s.byID(lo.Causes[0]))
		add(report.ForecastEvent{At: lo.At, Type: report.EventLockOut, Cert: lo.Causes[0], Action: act, Message: "LOCK-OUT: " + lo.Message})
		if lo.Until != nil {
			add(report.ForecastEvent{At: *lo.Until, Type: report.EventLockOutEnds, Action: report.ActionPlannedRestart, Message: "lock-out ends: the planned restart renews what had expired"})
		}
	}
	sort.SliceStable(ev, func(i, j int) bool {
		a, b := ev[i], ev[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if eventOrder(a.Type) != eventOrder(b.Type) {
			return eventOrder(a.Type) < eventOrder(b.Type)
		}
		return a.Cert < b.Cert
	})
	return ev
}

func eventOrder(t string) int {
	for i, x := range []string{report.EventAlreadyExpired, report.EventInWindow, report.EventRestart, report.EventRenewed,
		report.EventLockOutEnds, report.EventEntersWindow, report.EventExpires, report.EventLockOut} {
		if x == t {
			return i
		}
	}
	return 99
}

// activeAt is the validity of t in place at r (before a renewal at r).
func (s *sim) activeAt(t *track, r time.Time) report.Validity {
	for k, v := range t.vals {
		if !r.Before(s.start(t, k)) && (v.ReplacedAt == nil || !r.After(*v.ReplacedAt)) {
			return v
		}
	}
	return t.vals[len(t.vals)-1]
}

func (c Cert) renewalHint(s *sim) string {
	switch s.requiredAction(&track{c: c}) {
	case report.ActionRestartServer:
		return "no planned restart inside its window renews it"
	case report.ActionRestartAgent:
		return "no planned agent restart renews it"
	case report.ActionRotateListener:
		return "K3s " + s.in.Profile.Name + " never renews it"
	case report.ActionRefreshKubeconfig:
		return "K3s never updates copies"
	case report.ActionRotateCA:
		return "K3s never renews CAs"
	}
	return "nothing renews it"
}
