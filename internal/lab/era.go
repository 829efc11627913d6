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

// The eras. Evidence: k3s go.mod history (rancher/k3s, k3s-io/k3s) and
// the dynamiclistener tags; ../shared/k3s-facts.md §3.5.
var (
	ListenerV020 = Listener{Release: "v0.2.0",
		Lines: "K3s v1.16–v1.18.x (every v1.16–v1.18 tag and release-1.18 pin dynamiclistener v0.2.0)"}
	ListenerV021 = Listener{Release: "v0.2.1", ExpirationDaysCheck: true, FirstCheck: 30 * time.Second,
		Lines: "K3s v1.19.1 – v1.20.x (k3s PR #2100; go.mod of the v1.19.0-k3s1 bump pins v0.2.1; v0.2.2/v0.2.3 of 2021-03 only changed etcd-only nodes)"}
	ListenerV033 = Listener{Release: "v0.3.3", ExpirationDaysCheck: true, RegenerateCerts: true,
		Lines: "K3s v1.21.8 / v1.22.5 – v1.24.2 (v0.3.1–v0.3.3: `k3s certificate rotate`, Merge without the expiry test)"}
	ListenerV034 = Listener{Release: "v0.3.4", ExpirationDaysCheck: true, RegenerateCerts: true,
		Lines: "K3s v1.24.3 / v1.23.9 / v1.22.12 and later (k3s PR #5896: an expired secret no longer replaces a renewed certificate)"}
	ListenerV094 = Listener{Release: "v0.9.4", ExpirationDaysCheck: true, RegenerateCerts: true,
		Lines: "current K3s (k3s 2a1e2e8 pins v0.9.1-0.20260710234258-e4a1908, same semantics as v0.9.4)"}
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

// ===== PROFILE -> LISTENER ERA =====
// The one place that maps a version profile to the listener of its era,
// until internal/k3s's version matrix names the dynamiclistener release of
// each row. The "v1.19+" profile spans v1.19.1 – v1.33.0; its default is
// the v0.3.4 behaviour, which the longest part of that range (mid-2022 on)
// has. The other eras of that range are reached through the Lines below
// (or Options.Listener).
func ListenerFor(p k3s.Profile) Listener {
	switch p.Name {
	case k3s.ProfileV118.Name:
		return ListenerV020
	case k3s.ProfileV119.Name:
		return ListenerV034
	}
	return ListenerV094
}

// Line is a K3s release line as the lab replays it: a version profile (file
// names, renewal window) with the listener of its era.
type Line struct {
	Name     string
	Profile  k3s.Profile
	Listener Listener
}

// Lines are the release lines `lab run` replays, oldest first.
var Lines = []Line{
	{Name: "v1.18", Profile: k3s.ProfileV118, Listener: ListenerV020},
	{Name: "v1.19-v1.20", Profile: k3s.ProfileV119, Listener: ListenerV021},
	{Name: "v1.21.8-v1.24.2", Profile: k3s.ProfileV119, Listener: ListenerV033},
	{Name: "v1.24.3-v1.33.0", Profile: k3s.ProfileV119, Listener: ListenerV034},
	{Name: "current", Profile: k3s.ProfileCurrent, Listener: ListenerV094},
}

// ===== END PROFILE -> LISTENER ERA =====

// LineByName returns a release line.
func LineByName(name string) (Line, error) {
	for _, l := range Lines {
		if l.Name == name {
			return l, nil
		}
	}
	var names []string
	for _, l := range Lines {
		names = append(names, l.Name)
	}
	return Line{}, fmt.Errorf("unknown release line %q (want one of %s)", name, strings.Join(names, ", "))
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
