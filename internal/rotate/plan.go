// Package rotate plans and executes a complete certificate rotation of a
// K3s server node: stop, backup, renew every leaf from its own template
// with its CA (or remove it so K3s regenerates it), renew the listener
// certificate in both places (dynamic-cert.json and the serving secret),
// start, verify on the wire, and roll back from the backup on failure.
//
// The plan is a pure function of what was observed (plan.go); the executor
// (exec.go) runs exactly the plan's steps, journaling each one so that a
// crash at any point can be resumed or rolled back. CA keys are never
// written. Every write is atomic (temp file, fsync, rename, fsync dir).
package rotate

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
)

// Methods of renewing leaves.
const (
	MethodRenew      = "renew"      // reuse each certificate as its own template, fresh key (kubeadm-style)
	MethodRegenerate = "regenerate" // remove leaves so K3s regenerates them on start (`k3s certificate rotate`-style)
)

// Step names. The executor knows exactly these.
const (
	StepPreflight = "preflight"
	StepStop      = "stop"
	StepBackup    = "backup"
	StepLeaves    = "renew-leaves"
	StepListener  = "listener"
	StepStart     = "start"
	StepVerify    = "verify"
)

// FileState fingerprints a file the plan was built from (terraform's
// "saved plan is stale" check).
type FileState struct {
	Path    string    `json:"path"`
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
}

// Leaf is one certificate to renew.
type Leaf struct {
	ID     string `json:"id"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	Signer string `json:"signer"` // CA certificate path
	CAKey  string `json:"caKey"`  // CA key path (read, never written)
}

// Step is one action of the plan.
type Step struct {
	Index       int      `json:"index"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Writes      []string `json:"writes,omitempty"`
}

// Plan is everything a rotation will do. Apply runs only Steps.
type Plan struct {
	APIVersion   string      `json:"apiVersion"`
	Kind         string      `json:"kind"`
	CreatedAt    time.Time   `json:"createdAt"`
	Node         report.Node `json:"node"`
	Method       string      `json:"method"`
	Service      string      `json:"service"`
	Datastore    string      `json:"datastore"`
	ValidDays    int         `json:"validDays"`
	VerifyDays   int         `json:"verifyDays"`
	Leaves       []Leaf      `json:"leaves"`
	ListenerJSON string      `json:"listenerJSON"`
	SecretKey    string      `json:"secretKey"`
	// ForceRestart is RKE2's <data-dir>/force-restart, written before the
	// start so its static pods restart with the new files (facts §6.1).
	ForceRestart string      `json:"forceRestart,omitempty"`
	Kubeconfig   string      `json:"kubeconfig"`
	BackupDir    string      `json:"backupDir"`
	BackupRoots  []string    `json:"backupRoots"` // trees the backup holds, relative to the data dir
	Journal      string      `json:"journal"`
	Addresses    []string    `json:"addresses"` // finding codes and locations this rotation resolves
	Others       []string    `json:"others"`    // what must happen elsewhere (agents, other servers)
	Inputs       []FileState `json:"inputs"`
	Steps        []Step      `json:"steps"`
}

// Input is what a plan depends on.
type Input struct {
	Node       report.Node
	Program    k3s.Program
	Profile    k3s.Profile
	Method     string
	Service    string // e.g. "systemd unit k3s", "--restart-cmd"
	Datastore  string // e.g. "sqlite server/db/state.db (offline, K3s stopped)"
	Kubeconfig string // the admin kubeconfig K3s rewrites on start
	Now        time.Time
	ValidDays  int // leaf validity; default 365 (K3s)
	VerifyDays int // verify that served certificates are still valid this many days ahead; default 30
	// Present lists the leaf certificate files that exist (relative to the
	// data dir), so the plan only renews what is there.
	Present  map[string]bool
	Inputs   []FileState
	Findings []report.Finding
	// HA: other servers share the secret; the plan says what to do there.
	HA bool
	// NoOfflineSecret: the datastore cannot be reached with K3s stopped
	// (embedded etcd stops with it), so only dynamic-cert.json is written.
	NoOfflineSecret bool
}

// JournalName is the rotation journal under server/tls.
const JournalName = ".k3scert-rotate.journal"

// BackupDirName holds backups under server/.
const BackupDirName = ".k3scert-backups"

// NewPlan computes the rotation plan. It is pure.
func NewPlan(in Input) (Plan, error) {
	if in.Node.Role == string(k3s.RoleAgent) {
		return agentPlan(in)
	}
	if in.Method == "" {
		in.Method = MethodRenew
	}
	if in.Method != MethodRenew && in.Method != MethodRegenerate {
		return Plan{}, fmt.Errorf("unknown method %q (want renew or regenerate)", in.Method)
	}
	if in.ValidDays == 0 {
		in.ValidDays = k3s.LeafValidityDays
	}
	if in.VerifyDays == 0 {
		in.VerifyDays = 30
	}
	dd := in.Node.DataDir
	abs := func(rel string) string { return filepath.Join(dd, filepath.FromSlash(rel)) }
	l := k3s.ListenerSpec(in.Program)
	p := Plan{APIVersion: report.APIVersion, Kind: "Plan", CreatedAt: in.Now.UTC(), Node: in.Node, Method: in.Method,
		Service: in.Service, Datastore: in.Datastore, ValidDays: in.ValidDays, VerifyDays: in.VerifyDays,
		ListenerJSON: abs(l.JSONPath), SecretKey: l.SecretKey(), Kubeconfig: in.Kubeconfig,
		BackupDir: abs("server/" + BackupDirName), BackupRoots: []string{"server/tls", "server/cred"},
		Journal: abs("server/tls/" + JournalName), Inputs: in.Inputs}
	if in.Program == k3s.RKE2 {
		p.ForceRestart = abs("force-restart")
	}
	byID := map[string]k3s.Spec{}
	for _, s := range k3s.Specs(in.Program, in.Profile) {
		byID[s.ID] = s
	}
	for _, s := range k3s.Specs(in.Program, in.Profile) {
		if s.Role != k3s.RoleServer || !s.Renewable() || !in.Present[s.Cert] {
			continue
		}
		ca := byID[s.Signer]
		p.Leaves = append(p.Leaves, Leaf{ID: s.ID, Cert: abs(s.Cert), Key: abs(s.Key), Signer: abs(ca.Cert), CAKey: abs(ca.Key)})
	}
	sort.Slice(p.Leaves, func(i, j int) bool { return p.Leaves[i].ID < p.Leaves[j].ID })
	for _, f := range in.Findings {
		switch f.Code {
		case "K3C001", "K3C002", "K3C101", "K3C102", "K3C103", "K3C301", "K3C302":
			p.Addresses = append(p.Addresses, f.Code+" "+f.Location)
		}
	}
	sort.Strings(p.Addresses)
	p.Others = append(p.Others, fmt.Sprintf("agents: restart every agent after this server (systemctl restart %s-agent); they fetch fresh certificates on start", in.Program))
	p.Others = append(p.Others, "copied kubeconfigs: refresh each copy afterwards (k3scert kubeconfig refresh PATH)")
	if in.HA {
		p.Others = append(p.Others, fmt.Sprintf("other servers: the %s secret is shared and now renewed; on every other server run k3scert rotate too (its own leaves and its own dynamic-cert.json), one server at a time", l.SecretName))
	} else {
		p.Others = append(p.Others, fmt.Sprintf("if the cluster has other servers: they share the %s secret (now renewed) but keep their own leaves and dynamic-cert.json: run k3scert rotate on each, one at a time (docs/runbooks/ha.md)", l.SecretName))
	}

	var leafFiles []string
	for _, lf := range p.Leaves {
		leafFiles = append(leafFiles, lf.Cert, lf.Key)
	}
	add := func(name, desc string, writes ...string) {
		p.Steps = append(p.Steps, Step{Index: len(p.Steps), Name: name, Description: desc, Writes: writes})
	}
	add(StepPreflight, "check CA certificates and keys (present, matching, valid), that every entry to back up can be put back exactly (no FIFO, socket or device where K3s keeps a file), that there is room for the backup, a rollback reservation and the new files, and that the backup directory and the datastore holding the serving secret can be read and written; nothing is stopped before this passes")
	add(StepStop, "stop "+in.Service+" so nothing holds the old certificates or the datastore")
	add(StepBackup, "stream one tar.gz (0600) of the files the K3s table names (server/tls incl. etcd/, kube-scheduler/ and kube-controller-manager/, the server/cred kubeconfigs, dynamic-cert.json), "+in.Kubeconfig+" and the serving secret as JSON, with a manifest of each entry's type, mode, owner and symlink target, into "+p.BackupDir+"; read it back and reserve room for a rollback")
	switch in.Method {
	case MethodRenew:
		add(StepLeaves, fmt.Sprintf("renew %d leaf certificates from their own templates with their CAs and fresh ECDSA P-256 keys, valid %d days; CA keys are read, never written", len(p.Leaves), in.ValidDays), leafFiles...)
	case MethodRegenerate:
		add(StepLeaves, fmt.Sprintf("remove %d leaf certificates and keys so that K3s regenerates them on start", len(p.Leaves)), leafFiles...)
	}
	if in.NoOfflineSecret {
		add(StepListener, "renew the listener certificate (same names and key, new validity) in dynamic-cert.json only: the secret lives in embedded etcd, which stops with K3s; on start dynamiclistener (v0.3.4+) keeps the unexpired copy and writes it back to the secret", p.ListenerJSON)
		p.SecretKey = ""
	} else {
		add(StepListener, "renew the listener certificate (same names and key, new validity) and write the SAME certificate to dynamic-cert.json and to the secret "+l.Namespace+"/"+l.SecretName+" in the datastore, so neither copy can re-seed the old one", p.ListenerJSON, "datastore "+p.SecretKey)
	}
	startWrites := []string{}
	if p.ForceRestart != "" {
		startWrites = append(startWrites, p.ForceRestart)
	}
	add(StepStart, "start "+in.Service+" (verify then waits up to 90 s for the API)", startWrites...)
	add(StepVerify, fmt.Sprintf("verify on the wire: every endpoint serves a certificate valid now and in %d days, the renewed admin credentials reach the API, check has no critical finding; on failure roll back from the backup", in.VerifyDays))
	return p, nil
}

// Summary is a human description of the plan.
func (p Plan) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotation plan for %s (%s, profile %s, method %s)\n", p.Node.DataDir, p.Node.Program, p.Node.Profile, p.Method)
	for _, s := range p.Steps {
		fmt.Fprintf(&b, "  %d. %-13s %s\n", s.Index+1, s.Name, s.Description)
		for _, w := range s.Writes {
			fmt.Fprintf(&b, "       writes %s\n", w)
		}
	}
	if len(p.Addresses) > 0 {
		fmt.Fprintf(&b, "resolves:\n")
		for _, a := range p.Addresses {
			fmt.Fprintf(&b, "  %s\n", a)
		}
	}
	fmt.Fprintf(&b, "afterwards, elsewhere:\n")
	for _, o := range p.Others {
		fmt.Fprintf(&b, "  - %s\n", o)
	}
	fmt.Fprintf(&b, "journal: %s\n", p.Journal)
	return b.String()
}

// agentPlan rotates an agent: agents have no renewal of their own; every
// agent start fetches fresh certificates from a server (facts §6.2). So the
// plan backs up agent/, restarts the agent and verifies that what it
// fetched is fresh. Run it after every server has been rotated.
func agentPlan(in Input) (Plan, error) {
	if in.ValidDays == 0 {
		in.ValidDays = k3s.LeafValidityDays
	}
	if in.VerifyDays == 0 {
		in.VerifyDays = 30
	}
	dd := in.Node.DataDir
	abs := func(rel string) string { return filepath.Join(dd, filepath.FromSlash(rel)) }
	p := Plan{APIVersion: report.APIVersion, Kind: "Plan", CreatedAt: in.Now.UTC(), Node: in.Node, Method: "restart-agent",
		Service: in.Service, ValidDays: in.ValidDays, VerifyDays: in.VerifyDays,
		BackupDir: abs("agent/" + BackupDirName), BackupRoots: []string{"agent"}, Journal: abs("agent/" + JournalName), Inputs: in.Inputs}
	for _, f := range in.Findings {
		switch f.Code {
		case "K3C001", "K3C002", "K3C301", "K3C302":
			p.Addresses = append(p.Addresses, f.Code+" "+f.Location)
		}
	}
	sort.Strings(p.Addresses)
	p.Others = append(p.Others, "run this only after every server has been rotated: the agent fetches its certificates from a server, signed by that server's CAs")
	add := func(name, desc string, writes ...string) {
		p.Steps = append(p.Steps, Step{Index: len(p.Steps), Name: name, Description: desc, Writes: writes})
	}
	add(StepPreflight, "check that the agent's CA copies (agent/server-ca.crt, agent/client-ca.crt) are present and valid")
	add(StepStop, "stop "+in.Service)
	add(StepBackup, "stream one tar.gz (0600) of the agent's own certificates, keys and kubeconfigs (agent/*.crt, *.key, *.kubeconfig; never containerd, images, kubelet state or pod manifests), with a manifest of each entry's type, mode and owner, into "+p.BackupDir)
	add(StepStart, "start "+in.Service+": the agent fetches fresh client-kubelet, serving-kubelet, kube-proxy and controller certificates from its server", abs("agent"))
	add(StepVerify, fmt.Sprintf("verify: every agent certificate is valid now and in %d days, check finds nothing critical; on failure roll back from the backup", in.VerifyDays))
	return p, nil
}

// JournalPath is where the rotation journal of a node lives.
func JournalPath(dataDir string, role k3s.Role) string {
	if role == k3s.RoleAgent {
		return filepath.Join(dataDir, "agent", JournalName)
	}
	return filepath.Join(dataDir, "server", "tls", JournalName)
}
