package k3s

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Profile is one row of the release matrix (matrix.go): the behaviour of a
// range of K3s (and RKE2) releases that matters for certificates. The
// exported names ProfileV118, ProfileV119 and ProfileCurrent, and the
// profile names "v1.18", "v1.19+" and "current", stay as aliases of rows.
type Profile struct {
	// Name is the row's stable name, the first release it describes
	// ("v1.18" for everything up to v1.18.x). It round-trips through
	// ProfileByName.
	Name string
	// Versions says in words which K3s releases behave this way.
	Versions string
	// RenewDays is the restart renewal threshold: a leaf whose remaining
	// lifetime is at most this many days is reissued when K3s starts.
	RenewDays int
	// ListenerRenews says whether the supervisor listener (dynamiclistener)
	// renews its own certificate before it expires. False on v1.16–v1.18,
	// which vendored dynamiclistener v0.2.0 without an expiry check.
	ListenerRenews bool
	// LegacyNames selects the pre-v1.21.2 file names and CNs
	// (client-cloud-controller.crt with CN cloud-controller-manager).
	LegacyNames bool
	// RotateCommand says whether `k3s certificate rotate` exists.
	RotateCommand bool

	// RegenTrigger says whether the listener honours the
	// server/tls/dynamic-cert-regenerate trigger file at start (new key,
	// same names).
	RegenTrigger bool
	// ListenerMerge is dynamiclistener's merge of the datastore secret into
	// dynamic-cert.json at start: MergeV02, MergeV030to3 or MergeV034.
	ListenerMerge string
	// DynamicListener is the dynamiclistener release the line shipped
	// ("v0.2.0", "v0.2.x", "v0.3.3", "v0.3.4", "current"); the lab picks its
	// supervisor binary by it.
	DynamicListener string
	// KubeAPIServerCN is the CN of client-kube-apiserver.crt; KubeAPIServerOrgs its O.
	KubeAPIServerCN   string
	KubeAPIServerOrgs []string
	// KCMSchedulerServing: K3s signs kube-scheduler and
	// kube-controller-manager serving certificates with server-ca
	// (server/tls/kube-*/kube-*.crt). Before, those components serve a
	// self-signed certificate: in memory, or written to --cert-dir when
	// Rancher sets it (never renewed).
	KCMSchedulerServing bool
	// DeletesLegacyProxyCerts: K3s removes server/tls/client-kube-proxy.crt
	// and client-<p>-controller.crt on every start.
	DeletesLegacyProxyCerts bool
	// StaticListenerRespected: a secret annotated listener.cattle.io/static
	// is never changed by dynamiclistener.
	StaticListenerRespected bool
	// ExpiredListenerRenewedAtStart: an expired listener certificate is
	// renewed before the apiserver is up (k3s#12472). Before, a node whose
	// listener expired could stay stuck at start.
	ExpiredListenerRenewedAtStart bool
	// ListenerRegenAfterRotateCA: the listener is regenerated at the start
	// after `k3s certificate rotate-ca` (k3s#13006). Unconfirmed release:
	// false, the safe reading (rotate renews it itself).
	ListenerRegenAfterRotateCA bool
	// Unconfirmed lists this row's boundaries or facts not confirmed from
	// upstream code, with the safe behaviour chosen.
	Unconfirmed []string
	// Evidence cites the upstream change behind each fact of the row.
	Evidence []Evidence
}

// Evidence is one upstream citation: repo@commit path, and what it shows.
type Evidence struct {
	Ref  string
	What string
}

// Listener merge generations (dynamiclistener factory/gen.go Merge and the
// kubernetes storage's initial sync).
const (
	// MergeV02: DL v0.2.x — AddCN, then "fingerprints differ → the secret
	// wins": the datastore secret overwrites a renewed dynamic-cert.json.
	MergeV02 = "v0.2"
	// MergeV030to3: DL v0.3.0–v0.3.3 — Merge without the expiry test: with
	// equal names the secret still wins (k3s#5163).
	MergeV030to3 = "v0.3.0-3"
	// MergeV034: DL v0.3.4 and later — the incoming copy wins only if it has
	// every name and is outside the renew window; an unexpired renewed copy
	// is kept.
	MergeV034 = "v0.3.4+"
)

// ListenerExpirationDays is the ExpirationDaysCheck value to give
// dynamiclistener for this profile. A profile whose listener never renews gets
// a value so negative that the check never fires (DESIGN.md, "The lab").
func (p Profile) ListenerExpirationDays() int {
	if !p.ListenerRenews {
		return -36500
	}
	return p.RenewDays
}

// JSONOnlyListenerRenewal reports whether renewing the listener by writing
// dynamic-cert.json alone (the datastore is not writable offline) survives
// the next start: only with the v0.3.4+ merge.
func (p Profile) JSONOnlyListenerRenewal() bool { return p.ListenerMerge == MergeV034 }

// ServesSelfSignedKCMScheduler reports whether kube-controller-manager and
// kube-scheduler serve self-signed certificates on this row.
func (p Profile) ServesSelfSignedKCMScheduler() bool { return !p.KCMSchedulerServing }

// CARenewWarnDays is how long before a CA expires K3s's cert monitor warns
// (facts §2.2). K3s never renews CAs.
const CARenewWarnDays = 365

// LeafValidityDays and CAValidityDays are what K3s signs (facts §1.1).
const (
	LeafValidityDays = 365
	CAValidityDays   = 3650
)

// SelfSignedServingValidityDays is the validity of the self-signed serving
// certificate kube-controller-manager and kube-scheduler make for themselves
// (client-go certutil GenerateSelfSignedCertKeyWithFixtures: 1 year).
const SelfSignedServingValidityDays = 365

// The aliases kept from the three-profile model.
var (
	ProfileV118    = mustRow("v1.18")
	ProfileV119    = mustRow("v1.24.3")
	ProfileCurrent = mustRow(Rows[len(Rows)-1].Name)
)

// Profiles lists every row, oldest first.
var Profiles = Rows

// aliases maps the old profile names to rows.
var aliases = map[string]string{
	"1.18":    "v1.18",
	"v1.19+":  "v1.24.3",
	"1.19+":   "v1.24.3",
	"v1.19":   "v1.24.3",
	"1.19":    "v1.24.3",
	"current": "",
	"latest":  "",
}

func mustRow(name string) Profile {
	for _, r := range Rows {
		if r.Name == name {
			return r
		}
	}
	panic("k3s: no matrix row " + name)
}

// ProfileByName returns the row with the given name, an alias ("v1.18",
// "v1.19+", "current"), or the row of a version string ("v1.32.5+k3s1").
func ProfileByName(name string) (Profile, error) {
	for _, p := range Rows {
		if p.Name == name {
			return p, nil
		}
	}
	if a, ok := aliases[name]; ok {
		if a == "" {
			return ProfileCurrent, nil
		}
		return mustRow(a), nil
	}
	if versionRE.MatchString(name) {
		return ProfileForVersion(name)
	}
	names := make([]string, 0, len(Rows))
	for _, r := range Rows {
		names = append(names, r.Name)
	}
	return Profile{}, fmt.Errorf("unknown profile %q (want v1.18, v1.19+, current, a K3s version such as v1.32.5+k3s1, or a matrix row: %s)", name, strings.Join(names, ", "))
}

var versionRE = regexp.MustCompile(`v?(\d+)\.(\d+)\.(\d+)`)

// ParseVersion returns major, minor and patch of a K3s or RKE2 version
// string such as "v1.18.6+k3s1", "v1.32.5+rke2r1" or "k3s version
// v1.32.5+k3s1 (abc)".
func ParseVersion(v string) (major, minor, patch int, err error) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("no version number in %q", v)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	patch, _ = strconv.Atoi(m[3])
	return major, minor, patch, nil
}

// ProfileForVersion maps a K3s or RKE2 version string to its matrix row.
// RKE2 vX.Y.Z+rke2rN embeds the K3s of the same X.Y.Z line (rke2 go.mod
// pins a k3s commit of the matching release branch), so the same row
// applies.
func ProfileForVersion(v string) (Profile, error) {
	major, minor, patch, err := ParseVersion(v)
	if err != nil {
		return Profile{}, err
	}
	return mustRow(rowFor(major, minor, patch)), nil
}

// RowForVersion is ProfileForVersion's row name.
func RowForVersion(v string) (string, error) {
	p, err := ProfileForVersion(v)
	return p.Name, err
}
