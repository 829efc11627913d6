// Package forecast predicts what happens to a node's certificates over
// time: (certificates, version profile, from, to, planned restarts) ->
// dated events, the actions a user must take, and the lock-out, i.e. when
// the node stops answering its clients.
//
// It is pure: it must not import os or net, read the clock, do I/O or log.
// The rules it applies are K3s's (facts §2, §3.3, §3.5, §6.2), taken from the
// profile in internal/k3s:
//
//   - leaves under server/tls are reissued at a server start when they have at
//     most RenewDays left (or have expired): NotAfter = start − 1h + 365d;
//   - CAs are never renewed;
//   - agent leaves are fetched fresh on every agent start; a server restart
//     restarts the embedded agent;
//   - the supervisor listener certificate (dynamic-cert.json, the serving
//     secret, what :6443 serves) is never renewed on v1.18; on v1.19+ the
//     running dynamiclistener renews it RenewDays before expiry, and a start
//     inside the window renews it too;
//   - k3s.yaml is rewritten from client-admin on every server start, and the
//     processes behind :6444/:10250/etcd pick up their files at a restart;
//     kubeconfig copies are never updated.
package forecast

import (
	"sort"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
)

// Input is everything a forecast depends on.
type Input struct {
	Node    report.Node
	Profile k3s.Profile
	Certs   []Cert
	// Now is when the forecast is made (the "today" line); zero = From.
	Now      time.Time
	From, To time.Time
	// Restarts are planned server (or, on an agent node, agent) restarts.
	// Those outside [From, To] are ignored.
	Restarts []time.Time
	// ValidityDays of a renewed certificate; 0 = 365
	// (CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS changes it).
	ValidityDays int
	// Findings are the present findings, copied into the forecast.
	Findings []report.Finding
}

// listenerCheck is how often a running dynamiclistener checks expiry.
const listenerCheck = 6 * time.Hour

type track struct {
	c      Cert
	follow int // index of the followed certificate, -1 for none
	vals   []report.Validity
	next   time.Time // next listener expiry check
}

func (t *track) cur() *report.Validity { return &t.vals[len(t.vals)-1] }

type sim struct {
	in       Input
	renew    time.Duration
	validity time.Duration
	tracks   []*track
}

// windowDays is the renew window of a certificate: RenewDays, or for CAs the
// year in which K3s's cert monitor warns.
func windowDays(c Cert, p k3s.Profile) int {
	if c.IsCA || c.Class == report.ClassCA {
		return k3s.CARenewWarnDays
	}
	return p.RenewDays
}

// Run makes the forecast.
func Run(in Input) report.Forecast {
	if in.Now.IsZero() {
		in.Now = in.From
	}
	if in.ValidityDays == 0 {
		in.ValidityDays = k3s.LeafValidityDays
	}
	if in.Node.Profile == "" {
		in.Node.Profile = in.Profile.Name
	}
	in.Node.RenewDays = in.Profile.RenewDays
	s := &sim{in: in, renew: days(in.Profile.RenewDays), validity: days(in.ValidityDays)}
	certs := append([]Cert(nil), in.Certs...)
	sort.SliceStable(certs, func(i, j int) bool { return certs[i].ID < certs[j].ID })
	for _, c := range certs {
		ws := c.NotAfter.Add(-days(windowDays(c, in.Profile)))
		s.tracks = append(s.tracks, &track{c: c, follow: -1, next: in.From,
			vals: []report.Validity{{NotBefore: c.NotBefore, NotAfter: c.NotAfter, WindowStart: ws}}})
	}
	s.resolveFollows()
	restarts := s.restarts()
	points := append(append([]time.Time(nil), restarts...), in.To)
	cursor := in.From
	for i, p := range points {
		s.listenerRenewals(cursor, p)
		if i < len(restarts) {
			s.restart(p)
		}
		cursor = p
	}
	f := report.Forecast{
		APIVersion: report.APIVersion, Kind: "Forecast", Now: in.Now.UTC(), From: in.From.UTC(), To: in.To.UTC(),
		Node: in.Node, Restarts: restarts, Findings: in.Findings,
	}
	if f.Restarts == nil {
		f.Restarts = []time.Time{}
	}
	if f.Findings == nil {
		f.Findings = []report.Finding{}
	}
	f.Assumptions = s.assumptions()
	for _, t := range s.tracks {
		fc := report.ForecastCertificate{ID: t.c.ID, Name: t.c.Name, Source: t.c.Source, Location: t.c.Location,
			Subject: t.c.Subject, Class: t.c.Class, ClientFacing: clientFacing(t.c), Renewal: s.renewal(t),
			WindowDays: windowDays(t.c, in.Profile), Validities: t.vals}
		if t.follow >= 0 {
			fc.Follows = s.tracks[t.follow].c.ID
		}
		f.Certificates = append(f.Certificates, fc)
	}
	if f.Certificates == nil {
		f.Certificates = []report.ForecastCertificate{}
	}
	f.LockOuts = s.lockOuts()
	if len(f.LockOuts) > 0 {
		lo := f.LockOuts[0]
		f.LockOut = &lo
	}
	f.Events = s.events(f.LockOuts)
	f.Actions = s.actions(f.Events)
	return f
}

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// resolveFollows turns Follows paths into track indexes.
func (s *sim) resolveFollows() {
	for _, t := range s.tracks {
		if t.c.Follows == "" {
			continue
		}
		for j, u := range s.tracks {
			if u.c.Source == "file" && (u.c.Name == t.c.Follows || hasPathSuffix(u.c.Location, t.c.Follows)) {
				t.follow = j
				break
			}
		}
	}
}

func hasPathSuffix(loc, rel string) bool {
	n := len(loc) - len(rel)
	return n > 0 && loc[n:] == rel && (loc[n-1] == '/' || loc[n-1] == '\\')
}

// restarts returns the planned restarts inside [From, To], sorted, unique.
func (s *sim) restarts() []time.Time {
	var out []time.Time
	for _, r := range s.in.Restarts {
		r = r.UTC()
		if r.Before(s.in.From) || r.After(s.in.To) {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	uniq := out[:0]
	for i, r := range out {
		if i == 0 || !r.Equal(out[i-1]) {
			uniq = append(uniq, r)
		}
	}
	return uniq
}

func (s *sim) reissue(t *track, at time.Time, by string) {
	cur := t.cur()
	a := at
	cur.ReplacedAt, cur.ReplacedBy = &a, by
	nb := at.Add(-time.Hour)
	na := nb.Add(s.validity)
	t.vals = append(t.vals, report.Validity{NotBefore: nb, NotAfter: na, WindowStart: na.Add(-days(windowDays(t.c, s.in.Profile)))})
}

// inWindow is K3s's IsCertExpired: at most RenewDays left, or expired.
func (s *sim) inWindow(t *track, at time.Time) bool {
	return !at.Add(s.renew).Before(t.cur().NotAfter)
}

// listenerRenewals applies the running dynamiclistener's own renewals in
// [from, until) on profiles whose listener renews.
func (s *sim) listenerRenewals(from, until time.Time) {
	if !s.in.Profile.ListenerRenews {
		return
	}
	for _, t := range s.tracks {
		if t.c.Class != report.ClassListener {
			continue
		}
		for i := 0; i < 100000; i++ {
			at := latest(from, t.cur().NotAfter.Add(-s.renew), t.next)
			if !at.Before(until) {
				break
			}
			s.reissue(t, at, "listener")
			t.next = at.Add(listenerCheck)
		}
	}
}

func latest(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// restart applies one K3s start at r.
func (s *sim) restart(r time.Time) {
	for _, t := range s.tracks {
		switch t.c.Class {
		case report.ClassServerLeaf:
			if s.in.Node.Role != string(k3s.RoleAgent) && s.inWindow(t, r) {
				s.reissue(t, r, "restart")
			}
		case report.ClassAgentLeaf:
			s.reissue(t, r, "restart")
		case report.ClassListener:
			// On an agent the listener is its server's: an agent
			// restart does not touch it.
			if s.in.Node.Role != string(k3s.RoleAgent) && s.in.Profile.ListenerRenews && s.inWindow(t, r) {
				s.reissue(t, r, "restart")
				t.next = r.Add(listenerCheck)
			}
		}
	}
	// Copies follow after their sources were renewed.
	for _, t := range s.tracks {
		if t.follow < 0 {
			continue
		}
		src := s.tracks[t.follow].cur()
		if src.NotAfter.Equal(t.cur().NotAfter) {
			continue
		}
		cur := t.cur()
		a := r
		cur.ReplacedAt, cur.ReplacedBy = &a, "restart"
		t.vals = append(t.vals, report.Validity{NotBefore: src.NotBefore, NotAfter: src.NotAfter,
			WindowStart: src.NotAfter.Add(-days(windowDays(t.c, s.in.Profile)))})
	}
}

// end is when validity k of t stops being the certificate in place.
func (s *sim) end(v report.Validity) time.Time {
	if v.ReplacedAt != nil {
		return *v.ReplacedAt
	}
	return s.in.To
}

// start is when validity k of t becomes the certificate in place.
func (s *sim) start(t *track, k int) time.Time {
	if k == 0 {
		return s.in.From
	}
	return *t.vals[k-1].ReplacedAt
}
