package k3s_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
)

// TestMatrixRows checks that every row is complete, cites upstream code and
// round-trips through ProfileByName, and that the rows are ordered: a later
// row never loses a capability an earlier one had (except the CN/merge
// pairs that are per minor line).
func TestMatrixRows(t *testing.T) {
	merges := []string{k3s.MergeV02, k3s.MergeV030to3, k3s.MergeV034}
	for i, r := range k3s.Rows {
		t.Run(r.Name, func(t *testing.T) {
			if r.Versions == "" || r.RenewDays == 0 || r.DynamicListener == "" || r.KubeAPIServerCN == "" {
				t.Errorf("incomplete row %+v", r)
			}
			if !slices.Contains(merges, r.ListenerMerge) {
				t.Errorf("merge %q", r.ListenerMerge)
			}
			if len(r.Evidence) == 0 {
				t.Error("no evidence")
			}
			for _, e := range r.Evidence {
				if !strings.Contains(e.Ref, "@") && !strings.Contains(e.Ref, "#") {
					t.Errorf("evidence %q cites no commit or PR", e.Ref)
				}
			}
			got, err := k3s.ProfileByName(r.Name)
			if err != nil || got.Name != r.Name {
				t.Errorf("ProfileByName(%s) = %s, %v", r.Name, got.Name, err)
			}
			if r.Name != "v1.18" {
				if got, err := k3s.ProfileForVersion(r.Name); err != nil || got.Name != r.Name {
					t.Errorf("the row's own first version %s maps to %s, %v", r.Name, got.Name, err)
				}
			}
			if i > 0 {
				prev := k3s.Rows[i-1]
				if prev.RenewDays > r.RenewDays || (prev.ListenerRenews && !r.ListenerRenews) ||
					(prev.KCMSchedulerServing && !r.KCMSchedulerServing) || (prev.DeletesLegacyProxyCerts && !r.DeletesLegacyProxyCerts) ||
					(!prev.LegacyNames && r.LegacyNames) || (prev.RegenTrigger && !r.RegenTrigger) {
					t.Errorf("row %s loses a capability of %s", r.Name, prev.Name)
				}
			}
			if r.KCMSchedulerServing != (r.RenewDays == 120) {
				t.Error("the kube-* serving certs and the 120-day window shipped together (audit §0)")
			}
		})
	}
	if k3s.ProfileCurrent.Name != k3s.Rows[len(k3s.Rows)-1].Name || !k3s.ProfileCurrent.DeletesLegacyProxyCerts {
		t.Errorf("current = %s", k3s.ProfileCurrent.Name)
	}
	if k3s.ProfileV118.ListenerRenews || !k3s.ProfileV118.LegacyNames || k3s.ProfileV118.DynamicListener != "v0.2.0" {
		t.Errorf("v1.18 = %+v", k3s.ProfileV118)
	}
}

// TestMatrixGates pins the file set per row: what each release writes.
func TestMatrixGates(t *testing.T) {
	has := func(prof k3s.Profile, rel string) (k3s.Spec, bool) {
		for _, s := range k3s.Specs(k3s.K3s, prof) {
			if s.Cert == rel || s.Key == rel {
				return s, true
			}
		}
		return k3s.Spec{}, false
	}
	row := func(n string) k3s.Profile { p, _ := k3s.ProfileByName(n); return p }

	// Deleting rows keep the key, drop the certificate.
	for _, n := range []string{"v1.31.11"} {
		if s, ok := has(row(n), "server/tls/client-kube-proxy.key"); !ok || s.Cert != "" {
			t.Errorf("%s: client-kube-proxy = %+v, %v; want key only", n, s, ok)
		}
		if _, ok := has(row(n), "server/tls/client-kube-proxy.crt"); ok {
			t.Errorf("%s: client-kube-proxy.crt expected", n)
		}
	}
	if s, ok := has(row("v1.31.10"), "server/tls/client-k3s-controller.crt"); !ok || s.Signer != "client-ca" {
		t.Errorf("v1.31.10 still signs client-k3s-controller.crt: %+v", s)
	}
	// kube-* serving certs: CA-signed on 2025 rows, self-signed before.
	for _, r := range k3s.Rows {
		s, ok := has(r, "server/tls/kube-scheduler/kube-scheduler.crt")
		if !ok {
			t.Fatalf("%s: no kube-scheduler serving entry", r.Name)
		}
		if r.KCMSchedulerServing != (s.Signer == "server-ca" && !s.SelfSigned && !s.Optional) {
			t.Errorf("%s: kube-scheduler serving %+v", r.Name, s)
		}
		if s.Port != 10259 {
			t.Errorf("port %d", s.Port)
		}
	}
	// CN history of client-kube-apiserver.
	for n, cn := range map[string]string{"v1.18": "kube-apiserver", "v1.22.12": "kube-apiserver", "v1.24.0": "system:apiserver", "v1.31.11": "system:apiserver"} {
		s, _ := k3s.ByID(k3s.K3s, row(n), "client-kube-apiserver")
		if s.CN != cn {
			t.Errorf("%s: CN %q, want %q", n, s.CN, cn)
		}
	}
}

func TestLeftovers(t *testing.T) {
	cur := k3s.Leftovers(k3s.K3s, k3s.ProfileCurrent)
	var got []string
	for _, l := range cur {
		got = append(got, l.Spec.Cert)
		if l.Why == "" {
			t.Errorf("%s: no reason", l.Spec.Cert)
		}
	}
	want := []string{"server/tls/client-cloud-controller.crt", "server/tls/client-k3s-controller.crt", "server/tls/client-kube-proxy.crt"}
	if !slices.Equal(got, want) {
		t.Errorf("current leftovers %v, want %v", got, want)
	}
	for _, l := range cur {
		if l.RemovedAtStart != (l.Spec.ID != "client-cloud-controller") {
			t.Errorf("%s RemovedAtStart = %v", l.Spec.Cert, l.RemovedAtStart)
		}
	}
	if l := k3s.Leftovers(k3s.K3s, k3s.ProfileV118); len(l) != 0 {
		t.Errorf("v1.18 has leftovers %+v", l)
	}
	p, _ := k3s.ProfileByName("v1.24.3")
	if l := k3s.Leftovers(k3s.RKE2, p); len(l) != 1 || l[0].Spec.Cert != "server/tls/client-cloud-controller.crt" {
		t.Errorf("rke2 v1.24.3 leftovers %+v", l)
	}
}

func TestNodeFiles(t *testing.T) {
	srv := k3s.NodeFiles(k3s.K3s, k3s.ProfileCurrent, k3s.RoleServer)
	agent := k3s.NodeFiles(k3s.K3s, k3s.ProfileCurrent, k3s.RoleAgent)
	for _, want := range []string{"server/tls/server-ca.crt", "server/tls/dynamic-cert.json", "server/cred/admin.kubeconfig",
		"server/tls/kube-scheduler/kube-scheduler.crt", "server/tls/client-kube-proxy.key", "agent/client-kubelet.crt", "agent/kubelet.kubeconfig"} {
		if !slices.Contains(srv, want) {
			t.Errorf("server files lack %s", want)
		}
	}
	for _, not := range []string{"server/tls/client-kube-proxy.crt", "server/tls/client-cloud-controller.crt"} {
		if slices.Contains(srv, not) {
			t.Errorf("server files contain %s", not)
		}
	}
	for _, f := range agent {
		if !strings.HasPrefix(f, "agent/") || strings.Count(f, "/") != 1 {
			t.Errorf("agent file %s is not a top-level agent/ file", f)
		}
	}
	if len(agent) == 0 || !slices.IsSorted(srv) {
		t.Errorf("agent %v", agent)
	}
	all := k3s.AllFiles(k3s.K3s)
	for _, f := range append(srv, "server/tls/client-cloud-controller.crt") {
		if strings.HasSuffix(f, ".crt") || strings.HasSuffix(f, ".key") {
			if !slices.Contains(all, f) {
				t.Errorf("AllFiles lacks %s", f)
			}
		}
	}
	for _, d := range []string{"tls-1700000000"} {
		if !k3s.IsRotateBackupDir(d) {
			t.Errorf("%s not a backup dir", d)
		}
	}
	for _, d := range []string{"tls", "tls-", "tls-abc", "temporary-certs"} {
		if k3s.IsRotateBackupDir(d) {
			t.Errorf("%s is a backup dir", d)
		}
	}
}
