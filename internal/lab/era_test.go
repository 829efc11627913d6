package lab_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
	"github.com/k3scert/k3scert/internal/rotate"
)

// Every era's supervisor binary says it is built from its dynamiclistener
// release (read from the binary's build information, not configured) and
// has exactly the era's options.
func TestSupervisorBinariesAreTheirEra(t *testing.T) {
	requireLab(t)
	bins, err := lab.FindBins()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lab.Listeners {
		d, err := lab.DescribeSupervisor(bins.Supervisors[l.Binary()], l)
		if err != nil {
			t.Errorf("%s: %v", l.Release, err)
			continue
		}
		if d.Version != l.Release || d.Label() != "dynamiclistener "+l.Release+" (real)" {
			t.Errorf("%s: binary reports %s, label %q", l.Release, d.Version, d.Label())
		}
		t.Logf("%s: %+v (%s)", l.Binary(), d.Features, d.Go)
	}
	// Describe refuses a binary that is not the era it is asked for.
	if _, err := lab.DescribeSupervisor(bins.Supervisors[lab.ListenerV020.Binary()], lab.ListenerV034); err == nil {
		t.Error("the v0.2.0 binary passed as v0.3.4")
	}
}

// Every row of the release matrix runs the listener of its era, and the
// lines of `lab run all` cover every era once.
func TestProfileEras(t *testing.T) {
	want := map[string]string{"v0.2.0": "v0.2.0", "v0.2.x": "v0.2.1", "v0.3.3": "v0.3.3", "v0.3.4": "v0.3.4", "current": "v0.9.4"}
	for _, p := range k3s.Rows {
		l, err := lab.ListenerFor(p)
		if err != nil {
			t.Errorf("row %s: %v", p.Name, err)
			continue
		}
		if l.Release != want[p.DynamicListener] {
			t.Errorf("row %s (dynamiclistener %s): listener %s, want %s", p.Name, p.DynamicListener, l.Release, want[p.DynamicListener])
		}
		if p.RegenTrigger && !l.RegenerateCerts {
			t.Errorf("row %s has the regenerate trigger, its listener %s no hook", p.Name, l.Release)
		}
		if p.ListenerRenews != l.ExpirationDaysCheck {
			t.Errorf("row %s: ListenerRenews %v, listener %s ExpirationDaysCheck %v", p.Name, p.ListenerRenews, l.Release, l.ExpirationDaysCheck)
		}
	}
	lines, err := lab.Lines()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l.Listener.Release] {
			t.Errorf("era %s replayed by two lines", l.Listener.Release)
		}
		seen[l.Listener.Release] = true
	}
	if len(seen) != len(lab.Listeners) {
		t.Errorf("lines cover %d of %d eras", len(seen), len(lab.Listeners))
	}
	if _, err := lab.ListenerByRelease("v0.1.0"); err == nil {
		t.Error("an unbuilt release was accepted")
	}
	if _, err := lab.ListenerFor(k3s.Profile{Name: "x", DynamicListener: "v0.4.0"}); err == nil {
		t.Error("a row naming an unbuilt release was accepted")
	}
}

// The reference scenarios on the release lines between v1.18 and today,
// each with the dynamiclistener release it shipped. The replays report
// what the real code of each era does.
func TestScenariosPerEra(t *testing.T) {
	requireLab(t)
	lines, err := lab.Lines()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		switch l.Listener.Release {
		case "v0.2.0", "v0.9.4":
			continue // TestScenario1V118Seed, TestScenario2V118, TestScenariosCurrent
		}
		l := l
		t.Run(l.Profile.Name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range lab.Scenarios {
				r := run(t, lab.RunOptions{Scenario: sc, Profile: l.Profile})
				if want := "dynamiclistener " + l.Listener.Release + " (real)"; r.Listener != want {
					t.Errorf("%s: listener %q, want %q", sc, r.Listener, want)
				}
				checkEra(t, l, sc, r)
			}
		})
	}
}

func checkEra(t *testing.T, l lab.Line, sc string, r lab.Result) {
	t.Helper()
	for _, s := range r.Steps {
		if s.ListenerEvent != "" {
			t.Logf("%s %s: %s", sc, s.Name, s.ListenerEvent)
		}
	}
	last := r.Steps[len(r.Steps)-1]
	// The step at which the listener first starts with a certificate
	// inside its window after a K3s restart or a clock move.
	renewing := map[string]string{"scenario1": "restart", "scenario2": "in-renew-window"}[sc]
	ev := stepByName(t, r, renewing).ListenerEvent
	switch l.Listener.Release {
	case "v0.2.1", "v0.3.4":
		// The listener renews itself near expiry and the renewal
		// survives the secret: the reference failure does not happen.
		if r.Reproduced {
			t.Errorf("%s on %s: reproduced, want not: %s", sc, l.Profile.Name, r.Summary)
		}
		assertWorks(t, last)
		// The renewal comes at the first start with a certificate
		// inside the window; after a clock move the listener may
		// already renew at that step (v0.3.4 checks as soon as it
		// loads), before the restart — either is the real code.
		renewed := strings.Contains(ev, "renewed the certificate it started with (")
		for _, s := range r.Steps {
			if s.Name == renewing {
				break
			}
			renewed = renewed || strings.Contains(s.ListenerEvent, "renewed the certificate it started with (")
		}
		if !renewed {
			t.Errorf("%s on %s: no renewal by the listener up to %s (event there %q)", sc, l.Profile.Name, renewing, ev)
		}
	case "v0.3.3":
		// Merge without the expiry test (factory/gen.go@v0.3.3): the
		// renewal made before the secret storage starts is replaced by
		// the secret's copy when the storage starts (k3s #5163). That is
		// the order on K3s, where the listener starts before the
		// apiserver; should the storage win the race here, the renewal
		// is kept and the node works.
		if r.Reproduced {
			if !strings.Contains(r.Summary, "; dynamiclistener v0.3.3 ") {
				t.Errorf("%s on %s: reproduced without a listener event: %s", sc, l.Profile.Name, r.Summary)
			}
			t.Logf("%s on %s: the secret replaced the renewed certificate (k3s #5163)", sc, l.Profile.Name)
		} else {
			assertWorks(t, last)
			t.Logf("%s on %s: the renewal won this time: %s", sc, l.Profile.Name, ev)
		}
	default:
		t.Fatalf("no expectation for %s", l.Listener.Release)
	}
}

// The dynamic-cert-regenerate trigger (`k3s certificate rotate`) makes the
// listener sign a new certificate with a new key at start and is removed,
// on the eras that have the hook.
func TestRegenerateTrigger(t *testing.T) {
	requireLab(t)
	t.Parallel()
	ctx := context.Background()
	n, err := lab.New(lab.Options{Root: t.TempDir(), Profile: k3s.ProfileCurrent, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before := n.Observe(ctx, "before", "", 0)
	trigger := filepath.Join(n.DataDir(), filepath.FromSlash(k3s.ListenerSpec(n.Program()).Trigger))
	if err := os.WriteFile(trigger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	after := n.Observe(ctx, "after", "", 0)
	assertWorks(t, after)
	if _, err := os.Stat(trigger); !os.IsNotExist(err) {
		t.Errorf("trigger still present after start: %v", err)
	}
	if after.ServedSHA256 == before.ServedSHA256 {
		// Real dynamiclistener v0.9.4 behaviour, not a lab fault: the
		// regenerated certificate is queued for the initial sync, but the
		// secret watch's first event (the existing, unexpired secret)
		// can replace the queued one before it is processed
		// (storage/kubernetes/controller.go init + update); Merge then
		// keeps the old secret, which has every name and is outside the
		// renew window, and writes it back to dynamic-cert.json. Seen
		// under load in CI. Inside the renew window (the case rotate
		// exists for) the old copy loses the merge and the trigger
		// renews (TestRotateDatastoreStopsWithK3s); outside it the old
		// listener may stay, still valid beyond the window, and rotate's
		// verify judges what is served (docs/runbooks/listener.md).
		t.Logf("the secret's unexpired copy won the race with the regenerated certificate (dynamiclistener's initial sync vs. its watch)")
	}
}

// `k3scert rotate`, as it is, on a node whose datastore stops with K3s (it
// cannot write the serving secret offline), after the reference scenario 1
// on the eras with the regenerate trigger: v0.3.3, where the secret's copy
// wins the merge at start, and v0.3.4, where an unexpired renewed copy is
// kept. Whatever method rotate picks, the node must end up either renewed
// and working, or rolled back / refused and running as before: never
// damaged or stuck.
func TestRotateDatastoreStopsWithK3s(t *testing.T) {
	requireLab(t)
	for _, row := range []string{"v1.21.8", "v1.24.3"} {
		t.Run(row, func(t *testing.T) {
			t.Parallel()
			prof, err := k3s.ProfileByName(row)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			n, err := lab.New(lab.Options{Root: t.TempDir(), Profile: prof, DatastoreStopsWithK3s: true, Log: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if _, err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := n.Advance(ctx, 421); err != nil {
				t.Fatal(err)
			}
			if _, err := n.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			before := n.Observe(ctx, "before", "", 421)
			t.Logf("%s before rotate: served %s kubectl=%v %s; %s", row, d(before.ServedNotAfter), before.KubectlOK, before.KubectlError, before.ListenerEvent)
			e, err := n.RotateExecutor(ctx, rotate.MethodRenew, &lab.Service{N: n})
			if err != nil {
				t.Logf("%s: rotate refused to plan: %v", row, err)
				assertSame(t, before, n.Observe(ctx, "refused", "", 421))
				return
			}
			t.Logf("%s: plan listener method %q, datastore %q", row, e.Plan.Listener, e.Plan.Datastore)
			applyErr := e.Apply(ctx)
			after := n.Observe(ctx, "after", "", 421)
			if applyErr == nil {
				t.Logf("%s: rotate succeeded: served %s kubectl=%v", row, d(after.ServedNotAfter), after.KubectlOK)
				assertWorks(t, after)
				if after.ServedNotAfter == nil || !after.ServedNotAfter.After(after.VirtualDate.Add(300*24*time.Hour)) {
					t.Errorf("%s: served notAfter %v after rotate, want renewed", row, d(after.ServedNotAfter))
				}
				return
			}
			t.Logf("%s: rotate failed: %v", row, applyErr)
			if !strings.Contains(applyErr.Error(), "rolled back") && !strings.Contains(applyErr.Error(), "refus") {
				t.Errorf("%s: rotate failed without a rollback or a refusal: %v", row, applyErr)
			}
			assertSame(t, before, after)
		})
	}
}

// assertSame: the node runs and serves what it served before.
func assertSame(t *testing.T, before, after lab.Step) {
	t.Helper()
	if after.Note == "node stopped" || after.ServedSHA256 == "" {
		t.Fatalf("%s: the node is not running", after.Name)
	}
	if after.ServedSHA256 != before.ServedSHA256 || after.KubectlOK != before.KubectlOK {
		t.Errorf("%s: served %s kubectl=%v, before %s kubectl=%v", after.Name, after.ServedSHA256[:12], after.KubectlOK, before.ServedSHA256[:12], before.KubectlOK)
	}
}
