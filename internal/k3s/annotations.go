package k3s

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// ListenerCNPrefix prefixes dynamiclistener's per-name annotations.
const ListenerCNPrefix = "listener.cattle.io/cn-"

// ListenerStaticAnnotation marks a user-provided listener secret that
// dynamiclistener never changes (DL v0.2.0 factory/gen.go:22,125; current
// IsStatic).
const ListenerStaticAnnotation = "listener.cattle.io/static"

// Names dynamiclistener accepts, per generation (factory/gen.go cnRegexp).
var (
	cnRegexpV021 = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)           // v0.2.1–v0.2.x
	cnRegexpV03  = regexp.MustCompile(`^([A-Za-z0-9:][-A-Za-z0-9_.:]*)?[A-Za-z0-9:]$`)        // v0.3.x
	cnRegexpCur  = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9:][-A-Za-z0-9_.:]*)?[A-Za-z0-9:]$`) // current (v0.9.4)
)

// ListenerAnnotationKey returns the cn-* annotation key the row's
// dynamiclistener uses for a SAN, and false when that release drops the
// name (it is then never recorded, so DL never believes it present).
//
// v0.2.0: prefix+name, unchecked. v0.2.1–v0.2.x: prefix+name for names
// matching its regexp (no IPv6, no wildcard). v0.3.x: names with ':' or
// keys of 64+ characters are cut to 56 characters, ':' → '_', plus "-" and
// 6 hex of the sha256 of the full key (getAnnotationKey,
// dynamiclistener@v0.3.4 factory/gen.go:342-354). Current (v0.9.4
// factory/gen.go:435-448): the same, also for '*'.
func ListenerAnnotationKey(prof Profile, name string) (string, bool) {
	switch prof.DynamicListener {
	case "v0.2.0":
		return ListenerCNPrefix + name, true
	case "v0.2.x":
		return ListenerCNPrefix + name, cnRegexpV021.MatchString(name)
	case "v0.3.3", "v0.3.4":
		return hashedKey(name, false), cnRegexpV03.MatchString(name)
	}
	return hashedKey(name, true), cnRegexpCur.MatchString(name)
}

func hashedKey(name string, star bool) string {
	k := ListenerCNPrefix + name
	n := len(k)
	if n < 64 && !strings.ContainsRune(k, ':') && !(star && strings.ContainsRune(k, '*')) {
		return k
	}
	digest := sha256.Sum256([]byte(k))
	k = strings.ReplaceAll(k, ":", "_")
	if star {
		k = strings.ReplaceAll(k, "*", "_")
	}
	if n > 56 {
		n = 56
	}
	return k[:n] + "-" + hex.EncodeToString(digest[:])[:6]
}
