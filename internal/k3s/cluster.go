package k3s

// AdoptMergeEvidence is why a server of an HA cluster whose shared
// <program>-serving secret was already renewed by another server serves
// that renewed certificate after a plain restart with its old
// dynamic-cert.json, on the v0.3.0-v0.3.3 and v0.3.4+ merges: when the
// Kubernetes storage starts, the secret from the datastore is pushed
// through storage.Update -> saveInK8s, which merges it into the backing
// copy (dynamic-cert.json) with Merge(target=backing, additional=secret);
// the additional copy wins when it holds every cn-* name (v0.3.4+: and is
// not inside the renew window, IsExpired). rancher/dynamiclistener@v0.3.4
// factory/gen.go:89-111 (Merge) and storage/kubernetes/controller.go:77-90,
// 150-168 (OnChange -> Update -> saveInK8s -> Merge with the backing
// copy); v0.3.3 factory/gen.go:86-104 (the same Merge without the expiry
// test). If the secret lacks one of this server's names, Merge signs a new
// certificate with the union of names (dynamiclistener itself, still
// valid): the served certificate is then not byte-equal to the secret read
// before the start, but equal to the secret after it.
const AdoptMergeEvidence = "rancher/dynamiclistener@v0.3.4 factory/gen.go:89-111 and storage/kubernetes/controller.go:77-90,150-168; v0.3.3 factory/gen.go:86-104"

// DefaultKubectl is the kubectl command on a server node: K3s's own
// `k3s kubectl` (the k3s binary embeds kubectl; install.sh puts k3s on the
// PATH and only symlinks kubectl when no other kubectl exists: k3s-io/k3s
// install.sh create_symlinks); RKE2 extracts kubectl to
// /var/lib/rancher/rke2/bin, which is not on the PATH
// (docs.rke2.io/reference/cli_tools).
func DefaultKubectl(p Program) []string {
	if p == RKE2 {
		return []string{"/var/lib/rancher/rke2/bin/kubectl"}
	}
	return []string{string(p), "kubectl"}
}
