package rotate

// LOCAL ADAPTER (w-rotfid): the release facts rotate needs from the node's
// matrix row. Until the w-model matrix (internal/k3s/matrix.go) is merged
// these are inferred from the three-profile fields; after the merge each
// reads the row's own field. Nothing here is a K3s fact of its own.

import "github.com/k3scert/k3scert/internal/k3s"

// rowRegenTrigger: the listener honours server/tls/dynamic-cert-regenerate.
func rowRegenTrigger(p k3s.Profile) bool { return p.RotateCommand && !p.LegacyNames }

// rowJSONOnlyListener: dynamiclistener keeps a renewed dynamic-cert.json
// over an older secret at start (v0.3.4+ merge).
func rowJSONOnlyListener(p k3s.Profile) bool { return p.ListenerRenews && !p.LegacyNames }

// rowRawAnnotationKeys: dynamiclistener before v0.3.1 keyed cn-*
// annotations by the raw name.
func rowRawAnnotationKeys(p k3s.Profile) bool { return p.LegacyNames }

// rowSpecSelfSigned: the table entry is a self-signed pair its component
// regenerates when missing (kube-* --cert-dir before the 2025 releases).
func rowSpecSelfSigned(s k3s.Spec) bool { return false }

// rowLeftovers lists the certificate files (relative) that other rows
// write but this row neither writes, renews nor needs.
func rowLeftovers(p k3s.Program, prof k3s.Profile) []string {
	mine := map[string]bool{}
	for _, s := range k3s.Specs(p, prof) {
		mine[s.Cert] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, other := range k3s.Profiles {
		for _, s := range k3s.Specs(p, other) {
			if s.Role != k3s.RoleServer || s.Cert == "" || s.CA || mine[s.Cert] || seen[s.Cert] {
				continue
			}
			seen[s.Cert] = true
			out = append(out, s.Cert)
		}
	}
	return out
}
