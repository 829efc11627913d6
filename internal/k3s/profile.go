package k3s

import (
	"fmt"
	"regexp"
	"strconv"
)

// Profile is the behaviour of one K3s version line that matters for
// certificates (facts §2.3, §3.3, §3.5).
type Profile struct {
	// Name is the profile's stable name: "v1.18", "v1.19+" or "current".
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
	// LegacyNames selects the v1.18 file names and CNs
	// (client-cloud-controller.crt, CN kube-apiserver without O, no
	// client-supervisor).
	LegacyNames bool
	// RotateCommand says whether `k3s certificate rotate` and the
	// dynamic-cert-regenerate trigger file exist (v1.20.13+/v1.21.8+/v1.22.5+).
	RotateCommand bool
}

// ListenerExpirationDays is the ExpirationDaysCheck value to give
// dynamiclistener for this profile. A profile whose listener never renews gets
// a value so negative that the check never fires (DESIGN.md, "The lab").
func (p Profile) ListenerExpirationDays() int {
	if !p.ListenerRenews {
		return -36500
	}
	return p.RenewDays
}

// CARenewWarnDays is how long before a CA expires K3s's cert monitor warns
// (facts §2.2). K3s never renews CAs.
const CARenewWarnDays = 365

// LeafValidityDays and CAValidityDays are what K3s signs (facts §1.1).
const (
	LeafValidityDays = 365
	CAValidityDays   = 3650
)

// The profiles, oldest first.
var (
	ProfileV118 = Profile{
		Name: "v1.18", Versions: "v0.10 – v1.18.x",
		RenewDays: 90, ListenerRenews: false, LegacyNames: true,
	}
	ProfileV119 = Profile{
		Name: "v1.19+", Versions: "v1.19.1 – v1.33.0 (and the patch lines before the 120-day change)",
		RenewDays: 90, ListenerRenews: true, RotateCommand: true,
	}
	ProfileCurrent = Profile{
		Name: "current", Versions: "v1.33.1+, v1.32.5+, v1.31.9+, v1.30.13+",
		RenewDays: 120, ListenerRenews: true, RotateCommand: true,
	}
)

// Profiles lists every profile, oldest first.
var Profiles = []Profile{ProfileV118, ProfileV119, ProfileCurrent}

// ProfileByName returns the profile with the given name.
func ProfileByName(name string) (Profile, error) {
	for _, p := range Profiles {
		if p.Name == name {
			return p, nil
		}
	}
	switch name {
	case "v1.19", "1.19", "v1.19+", "1.19+":
		return ProfileV119, nil
	case "1.18":
		return ProfileV118, nil
	}
	return Profile{}, fmt.Errorf("unknown profile %q (want v1.18, v1.19+ or current)", name)
}

var versionRE = regexp.MustCompile(`v?(\d+)\.(\d+)\.(\d+)`)

// ProfileForVersion maps a K3s or RKE2 version string such as
// "v1.18.6+k3s1" or "k3s version v1.32.5+k3s1 (abc)" to its profile.
func ProfileForVersion(v string) (Profile, error) {
	m := versionRE.FindStringSubmatch(v)
	if m == nil {
		return Profile{}, fmt.Errorf("no version number in %q", v)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	patch, _ := strconv.Atoi(m[3])
	if major != 1 {
		if major == 0 {
			return ProfileV118, nil
		}
		return ProfileCurrent, nil
	}
	if minor < 19 || (minor == 19 && patch < 1) {
		return ProfileV118, nil
	}
	// First patch releases with the 120-day threshold (k3s PR #12232).
	first120 := map[int]int{30: 13, 31: 9, 32: 5, 33: 1}
	switch {
	case minor >= 34:
		return ProfileCurrent, nil
	case minor >= 30 && patch >= first120[minor]:
		return ProfileCurrent, nil
	}
	return ProfileV119, nil
}
