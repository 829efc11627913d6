package diagnose

import (
	"sort"

	"github.com/k3scert/k3scert/internal/report"
)

// Codes of the release-matrix work (issue 10), kept out of codes.go so that
// codes added elsewhere merge cleanly.
var (
	Leftover          = Code{"K3C005", "leftover-certificate", report.Info, "a certificate file of an older K3s generation that nothing uses; safe to remove"}
	SelfSignedServing = Code{"K3C006", "self-signed-serving-cert-expiring", report.Warning, "kube-controller-manager or kube-scheduler serves a self-signed certificate that nothing renews and that expires soon or has expired"}
)

func init() {
	All = append(All, Leftover, SelfSignedServing)
	sort.SliceStable(All, func(i, j int) bool { return All[i].ID < All[j].ID })
}
