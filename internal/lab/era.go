package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
)

// Listener is one era of the :6443 supervisor: the rancher/dynamiclistener
// release a K3s line shipped, run as its own binary built from that release
// (tools/labbin/dynamiclistener-<release>), so that the lab's listener
// behaviour is the code of that era, not a configuration of today's code.
type Listener struct {
	// Release is the dynamiclistener tag the binary is built from.
	Release string
	// Lines says which K3s releases shipped it (or one with the same
	// listener behaviour), with the evidence.
	Lines string
	// ExpirationDaysCheck: the release renews its certificate near expiry
	// (WrapExpiration). False only for v0.2.0.
	ExpirationDaysCheck bool
	// RegenerateCerts: the release has the hook K3s wires to the
	// dynamic-cert-regenerate trigger (v0.3.1+).
	RegenerateCerts bool
	// FirstCheck is how long after the listener starts its first expiry
	// check runs: v0.2.1's WrapExpiration sleeps 30 s first
	// (listener.go@v0.2.1:155); from v0.3.1 it runs as soon as the first
	// certificate is loaded.
	FirstCheck time.Duration
}

// Binary is the file name of the era's supervisor binary.
func (l Listener) Binary() string { return "dynamiclistener-" + l.Release }

// The eras, named by the rows of internal/k3s's release matrix
// (Profile.DynamicListener). Evidence: k3s go.mod history (rancher/k3s,
// k3s-io/k3s), the dynamiclistener tags, ../shared/k3s-facts.md §3.5.
var (
	ListenerV020 = Listener{Release: "v0.2.0",
		Lines: "K3s v1.16 – v1.18.x, matrix row v1.18 (every v1.16–v1.18 tag and release-1.18 pin dynamiclistener v0.2.0)"}
	ListenerV021 = Listener{Release: "v0.2.1", ExpirationDaysCheck: true, FirstCheck: 30 * time.Second,
		Lines: "K3s v1.19.1 – v1.22.4, matrix rows v1.19.1 and v1.21.2 (\"v0.2.x\"): k3s PR #2100 and the go.mod of the v1.19.0-k3s1 bump pin v0.2.1; v0.2.2 – v0.2.7 (2021) keep its merge and only changed etcd-only nodes and IPv6 names"}
	ListenerV033 = Listener{Release: "v0.3.3", ExpirationDaysCheck: true, RegenerateCerts: true,
		Lines: "K3s v1.21.8 / v1.22.5 – v1.22.11, v1.23.0 – v1.23.8, v1.24.0 – v1.24.2, matrix rows v1.21.8 and v1.24.0 (v0.3.1 – v0.3.3: the regenerate hook, Merge without the expiry test)"}
	ListenerV034 = Listener{Release: "v0.3.4", ExpirationDaysCheck: true, RegenerateCerts: true,
		Lines: "K3s v1.22.12+, v1.23.9+, v1.24.3 – v1.33.0, matrix rows v1.22.12 and v1.24.3 (k3s PR #5896: an expired secret no longer replaces a renewed certificate)"}
	ListenerV094 = Listener{Release: "v0.9.4", ExpirationDaysCheck: true, RegenerateCerts: true,
		Lines: "the 2025 lines (v1.31.9+, v1.32.5+, v1.33.1+) and today, matrix rows v1.31.9 – v1.31.11 (\"current\": k3s 2a1e2e8 pins v0.9.1-0.20260710234258-e4a1908, same semantics as v0.9.4)"}
)

// Listeners lists every era, oldest first.
var Listeners = []Listener{ListenerV020, ListenerV021, ListenerV033, ListenerV034, ListenerV094}

// ListenerByRelease returns the era built from a dynamiclistener release.
func ListenerByRelease(release string) (Listener, error) {
	r := "v" + strings.TrimPrefix(release, "v")
	for _, l := range Listeners {
		if l.Release == r {
			return l, nil
		}
	}
	var names []string
	for _, l := range Listeners {
		names = append(names, l.Release)
	}
	return Listener{}, fmt.Errorf("no lab supervisor built from dynamiclistener %q (have %s)", release, strings.Join(names, ", "))
}

// ListenerFor returns the era of a release-matrix row: the supervisor built
// from the dynamiclistener release the row names (k3s.Profile.DynamicListener).
// "v0.2.x" (the v0.2.1 – v0.2.7 of the 2020–21 lines, one merge behaviour)
// runs v0.2.1, the release K3s v1.19.1 shipped; "current" runs v0.9.4.
func ListenerFor(p k3s.Profile) (Listener, error) {
	switch p.DynamicListener {
	case "v0.2.x":
		return ListenerV021, nil
	case "current":
		return ListenerV094, nil
	case "":
		return Listener{}, fmt.Errorf("profile %s names no dynamiclistener release", p.Name)
	}
	l, err := ListenerByRelease(p.DynamicListener)
	if err != nil {
		return l, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	return l, nil
}

// Line is a K3s release line as `lab run all` replays it: a row of the
// release matrix and the listener of its era.
type Line struct {
	Profile  k3s.Profile
	Listener Listener
}

// lineRows are the rows `lab run all` replays: one per listener era (every
// row can be replayed with its name as the profile).
var lineRows = []string{"v1.18", "v1.19.1", "v1.21.8", "v1.24.3", k3s.ProfileCurrent.Name}

// Lines returns one release line per listener era, oldest first.
func Lines() ([]Line, error) {
	var out []Line
	for _, name := range lineRows {
		p, err := k3s.ProfileByName(name)
		if err != nil {
			return nil, err
		}
		l, err := ListenerFor(p)
		if err != nil {
			return nil, err
		}
		out = append(out, Line{Profile: p, Listener: l})
	}
	return out, nil
}

// supervisorProtocol is the command-line protocol of the supervisor
// binaries (tools/labbin/supervisorkit).
const supervisorProtocol = 1

// SupervisorDescription is what a supervisor binary says about itself
// (--describe): the dynamiclistener module really compiled in, read from
// the binary's build information.
type SupervisorDescription struct {
	Protocol int    `json:"protocol"`
	Module   string `json:"module"`
	Version  string `json:"version"`
	Features struct {
		ExpirationDaysCheck bool   `json:"expirationDaysCheck"`
		RegenerateCerts     bool   `json:"regenerateCerts"`
		Chain               bool   `json:"chain"`
		Wiring              string `json:"wiring"`
	} `json:"features"`
	Go string `json:"go"`
	// AgentServer: the binary serves the agent endpoints
	// (supervisorkit/agent.go); binaries built before them do not.
	AgentServer bool `json:"agentServer"`
}

var describeCache sync.Map // binary path -> SupervisorDescription

// DescribeSupervisor runs `<bin> --describe` and checks that the binary is
// what the era says: the same dynamiclistener release, the same features.
func DescribeSupervisor(bin string, l Listener) (SupervisorDescription, error) {
	var d SupervisorDescription
	if v, ok := describeCache.Load(bin); ok {
		d = v.(SupervisorDescription)
	} else {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, "--describe")
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return d, fmt.Errorf("%s --describe: %v: %s", bin, err, strings.TrimSpace(errb.String()))
		}
		if err := json.Unmarshal(out.Bytes(), &d); err != nil {
			return d, fmt.Errorf("%s --describe: %w", bin, err)
		}
		describeCache.Store(bin, d)
	}
	switch {
	case d.Protocol != supervisorProtocol:
		return d, fmt.Errorf("%s speaks supervisor protocol %d, want %d: rebuild it with `make lab-bin`", bin, d.Protocol, supervisorProtocol)
	case d.Module != "github.com/rancher/dynamiclistener" || d.Version != l.Release:
		return d, fmt.Errorf("%s is built from %s %s, want dynamiclistener %s: rebuild it with `make lab-bin`", bin, d.Module, d.Version, l.Release)
	case d.Features.ExpirationDaysCheck != l.ExpirationDaysCheck || d.Features.RegenerateCerts != l.RegenerateCerts:
		return d, fmt.Errorf("%s features %+v disagree with the lab's era table for %s", bin, d.Features, l.Release)
	}
	return d, nil
}

// Label is how the lab's output names the listener a node runs.
func (d SupervisorDescription) Label() string {
	return "dynamiclistener " + d.Version + " (real)"
}
