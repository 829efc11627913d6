package diagnose

import (
	"sort"

	"github.com/k3scert/k3scert/internal/report"
)

// Codes of an agent-only node's view of its servers (issue 13 item 4),
// kept out of codes.go so that codes added elsewhere merge cleanly.
var (
	AgentServerExpired   = Code{"K3C401", "agent-server-serves-expired-cert", report.Critical, "a server this agent fetches its certificates from serves an expired certificate: the agent cannot start again"}
	AgentCADiffers       = Code{"K3C402", "agent-ca-differs-from-server", report.Warning, "a server this agent points at serves a certificate that does not chain to the agent's copy of the server CA"}
	AgentServerUnchecked = Code{"K3C403", "agent-server-not-checked", report.Info, "no server of this agent is configured or none answered: its server side was not judged"}
)

func init() {
	All = append(All, AgentServerExpired, AgentCADiffers, AgentServerUnchecked)
	sort.SliceStable(All, func(i, j int) bool { return All[i].ID < All[j].ID })
}
