package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/cluster"
	"github.com/k3scert/k3scert/internal/k3s"
)

// HA scenarios: the seed's failure and its remedy on a whole cluster.
var HAScenarios = []string{"ha-expired", "ha-preventive"}

// HARemedies are the remedies of ha-expired.
var HARemedies = []string{"none", "rotate"}

// HAStep is one node's observation at one step. The JSON names of
// issue #13 are fixed: node, role, name, virtualDate, servedNotAfter (an
// agent: its kubelet serving certificate), kubectlOK, kubectlError.
type HAStep struct {
	Node        string    `json:"node"`
	Role        string    `json:"role"`
	Name        string    `json:"name"`
	Day         int       `json:"day"`
	VirtualDate time.Time `json:"virtualDate"`
	// ServedNotAfter: a server's :6443 listener certificate; an agent's
	// kubelet serving certificate; null when nothing is served.
	ServedNotAfter *time.Time `json:"servedNotAfter"`
	// KubectlOK/KubectlError: a server: the real kubectl with its
	// k3s.yaml; an agent: an API call through its server with its
	// client-kubelet certificate (or the error of its start).
	KubectlOK    bool   `json:"kubectlOK"`
	KubectlError string `json:"kubectlError"`
	// Servers: the listener certificate in the shared secret and in this
	// server's dynamic-cert.json.
	SecretNotAfter      *time.Time `json:"secretNotAfter,omitempty"`
	DynamicCertNotAfter *time.Time `json:"dynamicCertNotAfter,omitempty"`
	// Agents: the client-kubelet certificate it holds, and the error of
	// its last start (the fetch), if any.
	ClientKubeletNotAfter *time.Time `json:"clientKubeletNotAfter,omitempty"`
	AgentError            string     `json:"agentError,omitempty"`
}

// NodeTiming is one node's part of the cluster rotation.
type NodeTiming struct {
	Node            string  `json:"node"`
	Role            string  `json:"role"`
	Listener        string  `json:"listener,omitempty"`
	Seconds         float64 `json:"seconds"`
	DowntimeSeconds float64 `json:"downtimeSeconds"`
	Outcome         string  `json:"outcome"`
}

// HAResult is one HA scenario run. The JSON names of issue #13 are fixed:
// scenario, profile, remedy, reproduced, apiFailures, steps.
type HAResult struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Scenario   string `json:"scenario"`
	Profile    string `json:"profile"`
	Listener   string `json:"listener"`
	Remedy     string `json:"remedy"`
	Servers    int    `json:"servers"`
	Agents     int    `json:"agents"`
	// Reproduced (ha-expired): the seed's failure shows on the cluster
	// after the restart: some server serves an expired :6443 certificate,
	// kubectl fails, or an agent cannot fetch.
	Reproduced bool `json:"reproduced"`
	// Remedied: after the rotation every server serves a valid
	// certificate, kubectl works through each, every agent holds and
	// serves renewed certificates.
	Remedied *bool `json:"remedied,omitempty"`
	// APIFailures: client requests that failed while the cluster rotated
	// (the client of Client: any server, failover on dial errors).
	APIFailures int          `json:"apiFailures"`
	Client      *ClientStats `json:"client,omitempty"`
	Steps       []HAStep     `json:"steps"`
	// Rotation: each node's part, in order; RotationSeconds the cluster's
	// total.
	Rotation        []NodeTiming `json:"rotation,omitempty"`
	RotationSeconds float64      `json:"rotationSeconds,omitempty"`
	// ClusterSeconds is the cluster rotation's total time (cluster.Run),
	// DowntimeSeconds the sum of the nodes' downtimes (one at a time).
	ClusterSeconds  float64 `json:"clusterSeconds,omitempty"`
	DowntimeSeconds float64 `json:"downtimeSeconds,omitempty"`
	// ListenerRenewals is how many times the shared secret's certificate
	// was replaced during the rotation: 1 when the first server renewed it
	// and the others adopted it.
	ListenerRenewals int `json:"listenerRenewals"`
	// SharedCopiesDiffer lists shared files whose copies are not the same
	// bytes at the end (each CA and key on every server, in the bootstrap
	// data, the agents' CA files); empty when all agree.
	SharedCopiesDiffer []string `json:"sharedCopiesDiffer"`
	// ClockUntouched: time travel was done by re-signing; the system
	// clock was never written.
	ClockUntouched bool    `json:"clockUntouched"`
	Summary        string  `json:"summary"`
	Root           string  `json:"root"`
	Seconds        float64 `json:"seconds"`
}

// HAOptions select an HA run.
type HAOptions struct {
	Scenario string
	Profile  k3s.Profile
	Listener string
	Remedy   string // ha-expired: none or rotate; ha-preventive always rotates
	Servers  int    // default 3
	Agents   int    // default 2
	Root     string
	Log      func(format string, args ...any)
	// ClientInterval is the client's pause between requests (default 50 ms).
	ClientInterval time.Duration
}

// The preventive run's clock: 361 days after install, 4 days before the
// leaves expire, inside every release line's renew window (90/120 days).
const haInWindow = s2InWindow

// RunHA runs an HA scenario on a fresh cluster and stops it at the end.
func RunHA(ctx context.Context, o HAOptions) (HAResult, error) {
	start := time.Now()
	if o.Remedy == "" {
		o.Remedy = "none"
		if o.Scenario == "ha-preventive" {
			o.Remedy = "rotate"
		}
	}
	r := HAResult{APIVersion: "k3scert/v1alpha1", Kind: "LabHARun", Scenario: o.Scenario, Profile: o.Profile.Name, Remedy: o.Remedy,
		Root: o.Root, ClockUntouched: true}
	switch {
	case o.Scenario != "ha-expired" && o.Scenario != "ha-preventive":
		return r, fmt.Errorf("unknown HA scenario %q (want %s)", o.Scenario, strings.Join(HAScenarios, " or "))
	case o.Remedy != "none" && o.Remedy != "rotate":
		return r, fmt.Errorf("unknown remedy %q for %s (want none or rotate)", o.Remedy, o.Scenario)
	case o.Scenario == "ha-preventive" && o.Remedy != "rotate":
		return r, fmt.Errorf("ha-preventive always rotates (remedy rotate)")
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c, err := NewCluster(ClusterOptions{Root: o.Root, Profile: o.Profile, Listener: o.Listener, Servers: o.Servers, Agents: o.Agents,
		NoAgents: o.Agents < 0, Log: logf})
	if err != nil {
		return r, err
	}
	defer c.Close()
	r.Servers, r.Agents = len(c.Servers), len(c.Agents)
	r.Listener = c.Servers[0].ListenerLabel()
	day := 0
	observe := func(name string) []HAStep {
		steps := c.Observe(ctx, name, day)
		for _, s := range steps {
			logf("%-14s %-9s day %3d served %s kubectl ok=%v %s", name, s.Node, day, fmtTime(s.ServedNotAfter), s.KubectlOK, s.KubectlError)
		}
		r.Steps = append(r.Steps, steps...)
		return steps
	}
	if _, err := c.Start(ctx); err != nil {
		return r, err
	}
	observe("install")
	switch o.Scenario {
	case "ha-expired":
		if err := c.Advance(ctx, s1PastExpiry); err != nil {
			return r, err
		}
		day = s1PastExpiry
		observe("past-expiry")
		// systemctl restart k3s on every server, one after the other,
		// then every agent: what an operator does first.
		for _, n := range c.Servers {
			if _, err := n.Restart(ctx); err != nil {
				return r, fmt.Errorf("%s: %w", n.Name(), err)
			}
		}
		for _, a := range c.Agents {
			_ = a.Restart(ctx) // a failing agent start is the observation
		}
		r.Reproduced = haReproduced(observe("restart"))
	case "ha-preventive":
		if err := c.Advance(ctx, haInWindow); err != nil {
			return r, err
		}
		day = haInWindow
		observe("in-renew-window")
	}
	if o.Remedy == "rotate" {
		cl, err := c.NewClient()
		if err != nil {
			return r, err
		}
		if o.ClientInterval > 0 {
			cl.Interval = o.ClientInterval
		}
		cl.Start(ctx)
		rs := time.Now()
		rep, timings, renewals, err := RotateCluster(ctx, c, logf)
		stats := cl.Stop()
		r.Client, r.APIFailures = &stats, stats.Failed
		r.Rotation, r.RotationSeconds = timings, time.Since(rs).Seconds()
		r.ClusterSeconds, r.DowntimeSeconds, r.ListenerRenewals = rep.Duration.Seconds(), rep.Downtime.Seconds(), renewals
		if err != nil {
			return r, fmt.Errorf("cluster rotation: %w", err)
		}
		steps := observe("rotated")
		ok := true
		for _, s := range steps {
			ok = ok && s.KubectlOK && s.ServedNotAfter != nil && s.ServedNotAfter.After(s.VirtualDate)
		}
		r.Remedied = &ok
	}
	r.SharedCopiesDiffer = c.SharedCopiesIdentical(ctx)
	if r.SharedCopiesDiffer == nil {
		r.SharedCopiesDiffer = []string{}
	}
	r.Summary = haSummary(r)
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// RotateCluster rotates the lab cluster with the cluster rotation
// (internal/cluster: NewPlan orders servers one at a time — the first renews
// the shared listener secret, the others adopt it — then agents; Run
// journals every node and verifies each and then the cluster) through
// ClusterRunner. It returns the cluster's report and each node's timing,
// and how many times the shared secret's certificate changed.
func RotateCluster(ctx context.Context, c *Cluster, logf func(string, ...any)) (cluster.Report, []NodeTiming, int, error) {
	run := &ClusterRunner{C: c, Log: logf}
	plan, err := cluster.NewPlan(cluster.Inventory{Program: c.o.Program, Nodes: c.Inventory()})
	if err != nil {
		return cluster.Report{}, nil, 0, err
	}
	rep, err := cluster.Run(ctx, plan, run, filepath.Join(c.o.Root, "cluster-rotation.journal"), time.Now)
	renewals := run.secretChanges
	var out []NodeTiming
	for _, n := range rep.Nodes {
		t := NodeTiming{Node: n.Node, Role: string(n.Role), Listener: n.Listener, Seconds: n.Duration.Seconds(), Outcome: n.State}
		if n.Result != nil {
			t.DowntimeSeconds = n.Result.Downtime.Seconds()
			t.Outcome = n.Result.Outcome
		}
		out = append(out, t)
	}
	return rep, out, renewals, err
}

// Observe records every node's state now.
func (c *Cluster) Observe(ctx context.Context, name string, day int) []HAStep {
	var out []HAStep
	for _, n := range c.Servers {
		st := n.Observe(ctx, name, "", day)
		out = append(out, HAStep{Node: n.Name(), Role: "server", Name: name, Day: day, VirtualDate: st.VirtualDate,
			ServedNotAfter: st.ServedNotAfter, KubectlOK: st.KubectlOK, KubectlError: st.KubectlError,
			SecretNotAfter: st.SecretNotAfter, DynamicCertNotAfter: st.DynamicCertNotAfter})
	}
	for _, a := range c.Agents {
		s := HAStep{Node: a.Name(), Role: "agent", Name: name, Day: day, VirtualDate: c.Now(), AgentError: a.LastError}
		if crt := a.ServedKubelet(); crt != nil {
			t := a.Virtual(crt.NotAfter)
			s.ServedNotAfter = &t
		}
		if crt := readFirstCert(a.path("client-kubelet.crt")); crt != nil {
			t := a.Virtual(crt.NotAfter)
			s.ClientKubeletNotAfter = &t
		}
		switch {
		case !a.Running():
			s.KubectlError = "agent not running: " + a.LastError
		default:
			if err := a.APICall(ctx); err != nil {
				s.KubectlError = err.Error()
			} else {
				s.KubectlOK = true
			}
		}
		out = append(out, s)
	}
	return out
}

// haReproduced: the seed's failure shows on the cluster.
func haReproduced(steps []HAStep) bool {
	for _, s := range steps {
		if s.Role == "server" && !s.KubectlOK && strings.Contains(s.KubectlError, X509Expired) &&
			s.ServedNotAfter != nil && s.ServedNotAfter.Before(s.VirtualDate) {
			return true
		}
		if s.Role == "agent" && strings.Contains(s.AgentError, X509Expired) {
			return true
		}
	}
	return false
}

func haSummary(r HAResult) string {
	var b strings.Builder
	switch r.Scenario {
	case "ha-expired":
		if r.Reproduced {
			who := "kubectl fails"
			if r.Agents > 0 {
				who = "kubectl and agent starts fail"
			}
			fmt.Fprintf(&b, "reproduced on %d servers and %d agents: after the restart the listener kept its expired certificate (%s with %q)", r.Servers, r.Agents, who, X509Expired)
		} else {
			fmt.Fprintf(&b, "not reproduced on %d servers and %d agents: the restart left the cluster working", r.Servers, r.Agents)
		}
	case "ha-preventive":
		fmt.Fprintf(&b, "%d servers and %d agents inside the renew window", r.Servers, r.Agents)
	}
	if r.Remedied != nil {
		if *r.Remedied {
			fmt.Fprintf(&b, "; cluster rotation in %.0fs: every server serves a valid certificate and kubectl works through each, every agent renewed", r.RotationSeconds)
		} else {
			b.WriteString("; the cluster rotation did NOT leave every node working")
		}
		if r.Client != nil {
			fmt.Fprintf(&b, "; client: %d requests, %d failed, longest gap %.1fs", r.Client.Sent, r.Client.Failed, r.Client.LongestGapSeconds)
		}
	}
	return b.String()
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format("2006-01-02")
}
