package k3s

// The release matrix: every behaviour change of K3s that matters for
// certificates, as rows named by the first release they describe. Each row
// cites the upstream code (repo@commit path) behind its facts; boundaries not
// confirmed from code are listed in Unconfirmed with the safe behaviour.
//
// RKE2: rke2 vX.Y.Z+rke2rN embeds K3s from the matching release branch
// (rancher/rke2 go.mod pins a k3s-io/k3s commit, e.g. rke2@6ce1a8019 →
// k3s@2a1e2e8cf41b), so RKE2 versions map to the same rows. On RKE2 the
// datastore is always embedded etcd, so listener renewal there always
// depends on ListenerMerge / RegenTrigger.

// Citations shared by several rows.
var (
	evDepsCurrent  = Evidence{"k3s-io/k3s@2a1e2e8cf41b pkg/daemons/control/deps/deps.go", "CreateRuntimeCertFiles, genClientCerts, genServerCerts, cleanupLegacyCerts, createClientCertKey (regen rule, key reuse when only the cert is missing)"}
	evTypes90      = Evidence{"k3s-io/k3s@005499a940 pkg/daemons/config/types.go", "CertificateRenewDays = 90"}
	evTypes120     = Evidence{"k3s-io/k3s@417bbe684 (release-1.33) / f7c7afe36 (1.32) / b39fd9300 (1.31)", "Update certification renew alert to 120 days: first in v1.33.1, v1.32.5, v1.31.9"}
	evKCMServing   = Evidence{"k3s-io/k3s@6f0a08828 (release-1.33) / 143456865 (1.32) / a2634b890 (1.31), PR #12285", "kube-scheduler and kube-controller-manager serving certs signed by server-ca; tls-cert-file for :10259/:10257 (k3s@53de96867 pkg/daemons/control/server.go)"}
	evLegacyRemove = Evidence{"k3s-io/k3s@40d5b9a52 (release-1.33) / a75661694 (1.32) / 9fd01a870 (1.31)", "fix: Remove unused legacy certificates: client-kube-proxy.crt and client-k3s-controller.crt removed at every start; first in v1.33.3, v1.32.7, v1.31.11"}
	evRename       = Evidence{"k3s-io/k3s@4b2ab8b51 (PR #3470, 2021-06-16); k3s-io/k3s@664a98919 (PR #3388, 2021-06-02)", "client-cloud-controller.crt renamed client-<p>-cloud-controller.crt, CN cloud-controller-manager → <p>-cloud-controller-manager; never removed by K3s"}
	evCN           = Evidence{"k3s-io/k3s@99851b0f8 (2022-04-04, v1.24.0)", "client-kube-apiserver CN kube-apiserver (no O) → system:apiserver, O system:masters"}
	evDL02         = Evidence{"rancher/dynamiclistener@v0.2.0", "no WrapExpiration: the listener never renews its certificate"}
	evDL02x        = Evidence{"rancher/dynamiclistener@v0.2.1 factory/gen.go Merge; k3s-io/k3s PR #2100 (2020-08, ExpirationDaysCheck = CertificateRenewDays)", "listener renews; merge = AddCN then fingerprints differ → additional (the secret) wins"}
	evDL033        = Evidence{"rancher/dynamiclistener@v0.3.3 factory/gen.go:86, storage/kubernetes/controller.go:77-90; k3s-io/k3s#4382 (closed 2021-12-13), #5591 (v0.3.3, 2022-05)", "RegenerateCerts trigger; Merge without IsExpired: the old secret overwrites a renewed dynamic-cert.json (k3s#5163)"}
	evDL034        = Evidence{"k3s-io/k3s@049004455 (PR #5896, 2022-07-21); rancher/dynamiclistener@v0.3.4 factory/gen.go:136-167", "Merge keeps the unexpired copy: first in v1.24.3, v1.23.9, v1.22.12"}
	evRegenTrigger = Evidence{"k3s-io/k3s@2a1e2e8cf41b pkg/cluster/https.go:151-161, pkg/cli/cert/cert.go:299-309", "dynamic-cert-regenerate trigger, k3s certificate rotate (December 2021 releases v1.21.8, v1.22.5)"}
	evStatic       = Evidence{"rancher/dynamiclistener@e4a1908 factory/gen.go:138-140,173-175,320-327", "listener.cattle.io/static: Merge returns the target, Renew returns ErrStaticCert"}
	ev12472        = Evidence{"k3s-io/k3s#12472 (backports #12474 1.32, #12475 1.31, #12476 1.30, validated 2025-06-16 on v1.31.9+/v1.30.13+ dev builds)", "expired listener certificate is renewed before the apiserver is up: first in the June 2025 releases v1.33.2, v1.32.6, v1.31.10, v1.30.14"}
	ev13006        = Evidence{"k3s-io/k3s#13006 (backports #13008-#13010 validated 2025-10-14), k3s@565d50a3b", "rotate-ca writes dynamic-cert-regenerate; release not confirmed"}
	ev12821        = Evidence{"k3s-io/k3s#12821 (open, seen on v1.32.7 with an external SQL datastore)", "k3s-serving secret flips between certificates across HA servers; no fix release"}
	evKCMSelf      = Evidence{"k3s-io/k3s#10176 (2024-05-24, maintainer: the cert-dir certificates are Rancher's, not signed by the cluster CA); rancher/rancher#41125; rancher/rke2#8305", "before the 2025 serving certs, kube-controller-manager/kube-scheduler serve self-signed 1-year certificates: in memory, or in server/tls/kube-*/ when Rancher passes --cert-dir; never renewed"}
)

var cnOld = "kube-apiserver"
var cnNew = "system:apiserver"

// Rows is the matrix, oldest first.
var Rows = []Profile{
	{
		Name: "v1.18", Versions: "v0.10 – v1.18.x (RKE2 v1.18.x)",
		RenewDays: 90, ListenerRenews: false, LegacyNames: true,
		ListenerMerge: MergeV02, DynamicListener: "v0.2.0",
		KubeAPIServerCN: cnOld, StaticListenerRespected: true,
		Evidence: []Evidence{{"k3s-io/k3s@9977f0e65e pkg/daemons/config/types.go", "CertificateRenewDays = 90 (2020)"}, evDL02, evRename, evCN, evKCMSelf,
			{"rancher/dynamiclistener@v0.2.0 factory/gen.go:22,125", "listener.cattle.io/static honoured already"}},
	},
	{
		Name: "v1.19.1", Versions: "v1.19.1 – v1.21.1 (all v1.19.x and v1.20.x)",
		RenewDays: 90, ListenerRenews: true, LegacyNames: true,
		ListenerMerge: MergeV02, DynamicListener: "v0.2.x",
		KubeAPIServerCN: cnOld, StaticListenerRespected: true,
		Unconfirmed: []string{
			"whether the 2021-06 cloud-controller rename was backported to late v1.19.x/v1.20.x: without a version the files decide the names",
			"whether late v1.20.x (v1.20.13+) got `k3s certificate rotate` and the regenerate trigger: assumed not (safe: rotate does not rely on the trigger)",
		},
		Evidence: []Evidence{evTypes90, evDL02x, evRename, evCN, evKCMSelf},
	},
	{
		Name: "v1.21.2", Versions: "v1.21.2 – v1.21.7, v1.22.0 – v1.22.4",
		RenewDays: 90, ListenerRenews: true,
		ListenerMerge: MergeV02, DynamicListener: "v0.2.x",
		KubeAPIServerCN: cnOld, StaticListenerRespected: true,
		Evidence: []Evidence{evTypes90, evRename, evDL02x, evCN, evKCMSelf},
	},
	{
		Name: "v1.21.8", Versions: "v1.21.8+, v1.22.5 – v1.22.11, v1.23.0 – v1.23.8",
		RenewDays: 90, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV030to3, DynamicListener: "v0.3.3",
		KubeAPIServerCN: cnOld, StaticListenerRespected: true,
		Unconfirmed: []string{"the DL of Dec 2021 – May 2022 was v0.3.1, then v0.3.3 (k3s#5591): same merge semantics, the lab runs v0.3.3"},
		Evidence:    []Evidence{evTypes90, evRegenTrigger, evDL033, evCN, evKCMSelf},
	},
	{
		Name: "v1.22.12", Versions: "v1.22.12+, v1.23.9+",
		RenewDays: 90, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV034, DynamicListener: "v0.3.4",
		KubeAPIServerCN: cnOld, StaticListenerRespected: true,
		Evidence: []Evidence{evTypes90, evRegenTrigger, evDL034, evCN, evKCMSelf},
	},
	{
		Name: "v1.24.0", Versions: "v1.24.0 – v1.24.2",
		RenewDays: 90, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV030to3, DynamicListener: "v0.3.3",
		KubeAPIServerCN: cnNew, KubeAPIServerOrgs: []string{masters}, StaticListenerRespected: true,
		Evidence: []Evidence{evTypes90, evRegenTrigger, evDL033, evCN, evKCMSelf},
	},
	{
		Name: "v1.24.3", Versions: "v1.24.3 – v1.29.x, v1.30.0 – v1.30.12, v1.31.0 – v1.31.8, v1.32.0 – v1.32.4, v1.33.0",
		RenewDays: 90, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV034, DynamicListener: "v0.3.4",
		KubeAPIServerCN: cnNew, KubeAPIServerOrgs: []string{masters}, StaticListenerRespected: true,
		Evidence: []Evidence{evTypes90, evRegenTrigger, evDL034, evCN, evStatic, evKCMSelf, {"k3s-io/k3s@09ac65a68f11 pkg/daemons/control/deps/deps.go", "pre-May-2025 file set: client-kube-proxy.crt and client-k3s-controller.crt still signed; no kube-* serving certs"}},
	},
	{
		Name: "v1.31.9", Versions: "v1.33.1, v1.32.5, v1.31.9 (v1.30.13 unconfirmed)",
		RenewDays: 120, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV034, DynamicListener: "current",
		KubeAPIServerCN: cnNew, KubeAPIServerOrgs: []string{masters}, StaticListenerRespected: true,
		KCMSchedulerServing: true,
		Unconfirmed:         []string{"v1.30.13: no release-1.30 branch was read; mapped here because the 120-day change is documented for it"},
		Evidence:            []Evidence{evTypes120, evKCMServing, evDL034, evStatic},
	},
	{
		Name: "v1.31.10", Versions: "v1.33.2, v1.32.6, v1.31.10 (v1.30.14 unconfirmed)",
		RenewDays: 120, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV034, DynamicListener: "current",
		KubeAPIServerCN: cnNew, KubeAPIServerOrgs: []string{masters}, StaticListenerRespected: true,
		KCMSchedulerServing: true, ExpiredListenerRenewedAtStart: true,
		Unconfirmed: []string{"the #12472 release is inferred from the backport validations of 2025-06-16 on post-v1.31.9/v1.30.13 builds"},
		Evidence:    []Evidence{evTypes120, evKCMServing, ev12472, evDL034, evStatic},
	},
	{
		Name: "v1.31.11", Versions: "v1.33.3+, v1.32.7+, v1.31.11+, v1.34+ (and later lines)",
		RenewDays: 120, ListenerRenews: true, RotateCommand: true, RegenTrigger: true,
		ListenerMerge: MergeV034, DynamicListener: "current",
		KubeAPIServerCN: cnNew, KubeAPIServerOrgs: []string{masters}, StaticListenerRespected: true,
		KCMSchedulerServing: true, ExpiredListenerRenewedAtStart: true, DeletesLegacyProxyCerts: true,
		Unconfirmed: []string{
			"k3s#13006 (listener regenerated at the start after rotate-ca): fixed on the release branches in October 2025, first release not confirmed; treated as absent (rotate renews the listener itself)",
			"k3s#12821 (k3s-serving flips between HA servers on SQL datastores) is open: K3C102 on such clusters may come and go",
		},
		Evidence: []Evidence{evDepsCurrent, evTypes120, evKCMServing, evLegacyRemove, ev12472, ev13006, ev12821, evDL034, evStatic},
	},
}

// first patch release of a row on each minor line, newest row first.
type boundary struct {
	row   string
	first map[int]int // minor → first patch
	all   int         // every minor ≥ all (0: none)
}

var boundaries = []boundary{
	{"v1.31.11", map[int]int{31: 11, 32: 7, 33: 3}, 34},
	{"v1.31.10", map[int]int{30: 14, 31: 10, 32: 6, 33: 2}, 0},
	{"v1.31.9", map[int]int{30: 13, 31: 9, 32: 5, 33: 1}, 0},
	{"v1.24.3", map[int]int{24: 3}, 25},
	{"v1.24.0", map[int]int{24: 0}, 0},
	{"v1.22.12", map[int]int{22: 12, 23: 9}, 0},
	{"v1.21.8", map[int]int{21: 8, 22: 5, 23: 0}, 0},
	{"v1.21.2", map[int]int{21: 2, 22: 0}, 0},
	{"v1.19.1", map[int]int{19: 1, 20: 0, 21: 0}, 0},
}

func rowFor(major, minor, patch int) string {
	switch {
	case major == 0:
		return "v1.18"
	case major > 1:
		return Rows[len(Rows)-1].Name
	}
	for _, b := range boundaries {
		if b.all > 0 && minor >= b.all {
			return b.row
		}
		if p, ok := b.first[minor]; ok && patch >= p {
			return b.row
		}
	}
	return "v1.18"
}
