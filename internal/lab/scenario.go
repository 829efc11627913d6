package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
)

// Result is one replay of a reference scenario. The JSON names are fixed.
type Result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Scenario   string `json:"scenario"`
	Profile    string `json:"profile"`
	// Listener names the code the :6443 supervisor ran:
	// "dynamiclistener v0.2.0 (real)" — the binary built from that
	// release, as reported by the binary itself.
	Listener string `json:"listener"`
	Remedy   string `json:"remedy"`
	Steps    []Step `json:"steps"`
	// Reproduced: the reference failure happened (files renewed, listener
	// stale, kubectl failing with the x509 expiry error).
	Reproduced bool `json:"reproduced"`
	// Remedied: after the remedy kubectl works again (only with a remedy).
	Remedied *bool   `json:"remedied,omitempty"`
	Summary  string  `json:"summary"`
	DataDir  string  `json:"dataDir"`
	Seconds  float64 `json:"seconds"`
}

// Scenarios are the reference scenarios (shared/reference/README.md).
var Scenarios = []string{"scenario1", "scenario2"}

// Remedies are the fixes a replay can apply after the failure.
var Remedies = []string{"none", "seed", "secret-only", "json-only"}

// Reference day numbers: installs on 2020-07-26 / 2020-07-24, leaves valid
// 365 days; scenario 1 moves the clock to 2021-09-20 (day 421); scenario 2
// to 2021-07-20 (day 361, 4 days before expiry), then to 2021-09-20
// (day 423, past the old expiry).
const (
	s1PastExpiry   = 421
	s2InWindow     = 361
	s2PastOldExpry = 423
)

// RemedyFunc applies a remedy to a node that shows the failure and returns
// what it did; the replay observes the node afterwards. Extra remedies
// (k3scert rotate) register here.
type RemedyFunc func(ctx context.Context, n *Node) (note string, err error)

var remedyFuncs = map[string]RemedyFunc{
	"seed": func(ctx context.Context, n *Node) (string, error) {
		n.Stop()
		if err := n.WithKine(ctx, func() error { return n.DeleteSecret(ctx) }); err != nil {
			return "", err
		}
		if err := os.Remove(n.jsonPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		_, err := n.Start(ctx)
		return "deleted secret " + n.SecretKey() + " and dynamic-cert.json, started k3s", err
	},
	"secret-only": func(ctx context.Context, n *Node) (string, error) {
		n.Stop()
		if err := n.WithKine(ctx, func() error { return n.DeleteSecret(ctx) }); err != nil {
			return "", err
		}
		_, err := n.Start(ctx)
		return "deleted secret " + n.SecretKey() + " only, started k3s", err
	},
	"json-only": func(ctx context.Context, n *Node) (string, error) {
		n.Stop()
		if err := os.Remove(n.jsonPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		_, err := n.Start(ctx)
		return "deleted dynamic-cert.json only, started k3s", err
	},
}

// RegisterRemedy adds a named remedy (used by `rotate`).
func RegisterRemedy(name string, f RemedyFunc) {
	remedyFuncs[name] = f
	for _, r := range Remedies {
		if r == name {
			return
		}
	}
	Remedies = append(Remedies, name)
}

func (n *Node) jsonPath() string {
	return filepath.Join(n.dataDir, filepath.FromSlash(k3s.ListenerSpec(n.o.Program).JSONPath))
}

// RunOptions select a replay.
type RunOptions struct {
	Scenario string
	Profile  k3s.Profile
	// Listener is the dynamiclistener release of the supervisor; empty:
	// the one Profile names (ListenerFor).
	Listener string
	Remedy   string
	// DatastoreStopsWithK3s: see Options.DatastoreStopsWithK3s.
	DatastoreStopsWithK3s bool
	Root                  string // the node's root; must be empty or absent
	Log                   func(format string, args ...any)
	// Inspect, when set, is called after every step with the running node
	// (tests run `k3scert check` against it there).
	Inspect func(ctx context.Context, n *Node, s Step)
	// Keep leaves the node running when the replay ends; the caller must
	// Close it (returned in Result via the second value of Run).
	Keep bool
}

// Run replays a scenario on a fresh node and stops it at the end (unless
// Keep). Every process it starts is stopped, also on error.
func Run(ctx context.Context, o RunOptions) (Result, *Node, error) {
	start := time.Now()
	if o.Remedy == "" {
		o.Remedy = "none"
	}
	r := Result{APIVersion: "k3scert/v1alpha1", Kind: "LabRun", Scenario: o.Scenario, Profile: o.Profile.Name, Remedy: o.Remedy}
	if o.Remedy != "none" && remedyFuncs[o.Remedy] == nil {
		return r, nil, fmt.Errorf("unknown remedy %q (want one of %s)", o.Remedy, strings.Join(Remedies, ", "))
	}
	if o.Scenario != "scenario1" && o.Scenario != "scenario2" {
		return r, nil, fmt.Errorf("unknown scenario %q (want scenario1, scenario2 or all)", o.Scenario)
	}
	n, err := New(Options{Root: o.Root, Profile: o.Profile, Listener: o.Listener, DatastoreStopsWithK3s: o.DatastoreStopsWithK3s, Log: o.Log})
	if err != nil {
		return r, nil, err
	}
	r.DataDir = n.DataDir()
	r.Listener = n.ListenerLabel()
	keep := false
	defer func() {
		if !keep {
			n.Close()
		}
	}()
	day := 0
	step := func(name, action string, renewed []string) Step {
		s := n.Observe(ctx, name, action, day)
		s.Renewed = renewed
		if o.Log != nil {
			o.Log("%-22s day %3d  kubectl ok=%v %s", name, day, s.KubectlOK, s.KubectlError)
		}
		if o.Inspect != nil {
			o.Inspect(ctx, n, s)
		}
		r.Steps = append(r.Steps, s)
		return s
	}
	res, err := n.Start(ctx)
	if err != nil {
		return r, nil, err
	}
	step("install", "start k3s on a fresh node", nil)
	r.Steps[0].Created = res.Created

	var failed Step
	switch o.Scenario {
	case "scenario1":
		if err := n.Advance(ctx, s1PastExpiry); err != nil {
			return r, nil, err
		}
		day += s1PastExpiry
		step("past-expiry", fmt.Sprintf("clock moves %d days: past the leaves' expiry", s1PastExpiry), nil)
		res, err := n.Restart(ctx)
		if err != nil {
			return r, nil, err
		}
		failed = step("restart", "systemctl restart k3s", res.Renewed)
	case "scenario2":
		if err := n.Advance(ctx, s2InWindow); err != nil {
			return r, nil, err
		}
		day += s2InWindow
		step("in-renew-window", fmt.Sprintf("clock moves %d days: 4 days before expiry, inside the renew window", s2InWindow), nil)
		res, err := n.Restart(ctx)
		if err != nil {
			return r, nil, err
		}
		step("restart", "systemctl restart k3s", res.Renewed)
		if err := n.Advance(ctx, s2PastOldExpry-s2InWindow); err != nil {
			return r, nil, err
		}
		day = s2PastOldExpry
		failed = step("past-old-expiry", fmt.Sprintf("clock moves %d more days: past the old expiry, well before the renewed one", s2PastOldExpry-s2InWindow), nil)
	}
	r.Reproduced = reproduced(failed)
	if o.Remedy != "none" {
		note, err := remedyFuncs[o.Remedy](ctx, n)
		if err != nil {
			return r, nil, fmt.Errorf("remedy %s: %w", o.Remedy, err)
		}
		s := step("remedy-"+o.Remedy, note, nil)
		ok := s.KubectlOK
		r.Remedied = &ok
		if o.Remedy == "json-only" {
			r.Steps[len(r.Steps)-1].Note = jsonOnlyNote(failed, s)
		}
	}
	r.Summary = summarize(r, failed)
	r.Seconds = time.Since(start).Seconds()
	if o.Keep {
		keep = true
		return r, n, nil
	}
	return r, nil, nil
}

// reproduced: the reference failure is visible in a step.
func reproduced(s Step) bool {
	if s.KubectlOK || !strings.Contains(s.KubectlError, X509Expired) {
		return false
	}
	fa, ok := s.FilesNotAfter["client-admin"]
	if !ok || !fa.After(s.VirtualDate) || s.ServedNotAfter == nil {
		return false
	}
	return s.ServedNotAfter.Before(s.VirtualDate)
}

// jsonOnlyNote says which certificate won the race between the freshly
// signed one and the secret watch (DESIGN.md: either may win).
func jsonOnlyNote(before, after Step) string {
	switch {
	case after.ServedSHA256 == "":
		return "nothing served"
	case after.ServedSHA256 == before.ServedSHA256:
		return "the old certificate won: the secret watch re-seeded it over the freshly signed one"
	case after.KubectlOK:
		return "a new certificate won: dynamiclistener signed one at start and it was written to the secret"
	}
	return "the race was still running: the listener served the new certificate to one connection and the expired one to kubectl moments later"
}

func summarize(r Result, failed Step) string {
	var b strings.Builder
	if r.Reproduced {
		fmt.Fprintf(&b, "reproduced: files renewed, the :6443 listener kept its expired certificate, kubectl failed with %q", X509Expired)
	} else {
		b.WriteString("not reproduced: kubectl worked after the clock moved past the old expiry")
		if len(r.Steps) > 0 {
			last := r.Steps[len(r.Steps)-1]
			if !last.KubectlOK {
				b.Reset()
				fmt.Fprintf(&b, "not reproduced as in the reference: kubectl failed with %q", last.KubectlError)
			}
		}
	}
	if r.Reproduced && failed.ListenerEvent != "" {
		b.WriteString("; " + failed.ListenerEvent)
	}
	if r.Remedied != nil {
		if *r.Remedied {
			fmt.Fprintf(&b, "; remedy %s: kubectl works again", r.Remedy)
		} else {
			fmt.Fprintf(&b, "; remedy %s did NOT help: kubectl still fails", r.Remedy)
		}
		if n := r.Steps[len(r.Steps)-1].Note; n != "" {
			b.WriteString(" (" + n + ")")
		}
	}
	return b.String()
}
