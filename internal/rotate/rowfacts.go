package rotate

// LOCAL ADAPTER (w-rotfid): the release facts rotate needs, read from the
// node's matrix row (internal/k3s matrix.go, w-model). Nothing here is a
// K3s fact of its own; each function only names the row field it reads.

import "github.com/k3scert/k3scert/internal/k3s"

// rowRegenTrigger: the listener honours server/tls/dynamic-cert-regenerate.
func rowRegenTrigger(p k3s.Profile) bool { return p.RegenTrigger }

// rowJSONOnlyListener: dynamiclistener keeps a renewed dynamic-cert.json
// over an older secret at start (v0.3.4+ merge).
func rowJSONOnlyListener(p k3s.Profile) bool { return p.JSONOnlyListenerRenewal() }

// rowRawAnnotationKeys: dynamiclistener v0.2.x (before v0.3.1) keyed cn-*
// annotations by the raw name.
func rowRawAnnotationKeys(p k3s.Profile) bool { return p.ListenerMerge == k3s.MergeV02 }

// rowSpecSelfSigned: the table entry is a self-signed pair its component
// regenerates when missing (kube-* --cert-dir before the 2025 releases).
func rowSpecSelfSigned(s k3s.Spec) bool { return s.SelfSigned }

// rowLeftovers lists the certificate files (relative) that other rows
// write but this row neither writes, renews nor needs.
func rowLeftovers(p k3s.Program, prof k3s.Profile) []string {
	var out []string
	for _, l := range k3s.Leftovers(p, prof) {
		out = append(out, l.Spec.Cert)
	}
	return out
}
