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
	"net"
	"path/filepath"
	"sort"
	"strconv"
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
	// Days is the validity of the renewed certificate; 0 = the plan's
	// ValidDays, else the certificate's own span.
	Days int `json:"days,omitempty"`
	// Why says why a leaf is removed rather than renewed (Plan.Removes).
	Why string `json:"why,omitempty"`
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
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	CreatedAt  time.Time   `json:"createdAt"`
	Node       report.Node `json:"node"`
	Method     string      `json:"method"`
	Service    string      `json:"service"`
	Datastore  string      `json:"datastore"`
	// ValidDays is the validity of renewed certificates: K3s's
	// CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS from the unit's environment
	// (ValiditySource says where), or 0: each keeps its own span.
	ValidDays      int    `json:"validDays"`
	ValiditySource string `json:"validitySource,omitempty"`
	VerifyDays     int    `json:"verifyDays"`
	Leaves         []Leaf `json:"leaves"`
	// Removes are pairs removed (with any method) so that their owner
	// makes a new one on start: the self-signed kube-controller-manager
	// and kube-scheduler serving certificates in their --cert-dir.
	Removes []Leaf `json:"removes,omitempty"`
	// Leftovers are files of an older K3s generation that this node's
	// release neither renews nor uses: never touched, never verified.
	Leftovers []string `json:"leftovers,omitempty"`
	// Listener is how the listener step treats the :6443 certificate:
	// ListenerBoth, ListenerJSON, ListenerTrigger or ListenerStatic.
	Listener string `json:"listener,omitempty"`
	// ListenerRawKeys: dynamiclistener before v0.3.1 keys cn-*
	// annotations by the raw name (see ListenerAnnotationKey).
	ListenerRawKeys bool `json:"listenerRawKeys,omitempty"`
	// ListenerDays is the renewed listener certificate's validity; 0 = its
	// own span.
	ListenerDays int    `json:"listenerDays,omitempty"`
	Trigger      string `json:"trigger,omitempty"` // server/tls/dynamic-cert-regenerate
	// Ports are the node's ports (the API for ListenerOnline).
	Ports        *k3s.Ports `json:"ports,omitempty"`
	ListenerJSON string     `json:"listenerJSON"`
	SecretKey    string     `json:"secretKey"`
	// ForceRestart is RKE2's <data-dir>/force-restart, written before the
	// start so its static pods restart with the new files (facts §6.1).
	ForceRestart string   `json:"forceRestart,omitempty"`
	Kubeconfig   string   `json:"kubeconfig"`
	BackupDir    string   `json:"backupDir"`
	BackupRoots  []string `json:"backupRoots"` // trees the backup holds, relative to the data dir
	Journal      string   `json:"journal"`
	// ClusterListener is the server's part in a cluster rotation
	// (ClusterRenew or ClusterAdopt); "" = a single-node rotation.
	ClusterListener string `json:"clusterListener,omitempty"`
	// ExternalDatastore: the secret lives in an external etcd-API datastore
	// (datastore-endpoint) that keeps running while K3s is stopped.
	ExternalDatastore bool        `json:"externalDatastore,omitempty"`
	Addresses         []string    `json:"addresses"` // finding codes and locations this rotation resolves
	Others            []string    `json:"others"`    // what must happen elsewhere (agents, other servers)
	Inputs            []FileState `json:"inputs"`
	Steps             []Step      `json:"steps"`
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
	// ValidDays forces the validity of renewed certificates; 0 = K3s's
	// CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS (ExpirationDays), else each
	// certificate's own span.
	ValidDays int
	// ExpirationDays is CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS from the
	// unit's environment (0: unset), ExpirationSource the file.
	ExpirationDays   int
	ExpirationSource string
	VerifyDays       int // verify that served certificates are still valid this many days ahead; default 30
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
	// StaticListener: a copy of the listener certificate carries
	// listener.cattle.io/static: "true" (user-managed).
	StaticListener bool
	// SelfSigned lists present leaf certificates (relative to the data
	// dir) not signed by the node's CA that their owner regenerates when
	// missing (kube-controller-manager/kube-scheduler --cert-dir pairs).
	SelfSigned map[string]bool
	// Leftovers are present files (relative) of an older generation.
	Leftovers []string
	// Ports are the node's ports; nil = the program's defaults.
	Ports *k3s.Ports
	// ClusterListener is the server's part in a cluster rotation:
	// ClusterRenew (renew the shared secret, as a single node does) or
	// ClusterAdopt (an earlier server renewed it: serve that certificate,
	// never re-sign it); "" = a single-node rotation.
	ClusterListener string
	// ExternalDatastore: datastore-endpoint names an etcd-API datastore
	// (kine or etcd) that keeps running while K3s is stopped.
	ExternalDatastore bool
}

// Cluster listener modes (k3scert rotate --cluster-listener).
const (
	ClusterRenew = "renew"
	ClusterAdopt = "adopt"
)

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
	switch in.ClusterListener {
	case "", ClusterRenew:
	case ClusterAdopt:
		if in.Method == MethodRegenerate {
			return Plan{}, fmt.Errorf("--cluster-listener adopt keeps the shared listener certificate; --method regenerate would make this server sign a new one: use --method renew")
		}
	default:
		return Plan{}, fmt.Errorf("unknown cluster listener mode %q (want renew or adopt)", in.ClusterListener)
	}
	validity := "each certificate keeps its own validity span (" + ExpirationDaysEnv + " is not set for the unit)"
	switch {
	case in.ValidDays > 0:
		validity = fmt.Sprintf("%d days (forced)", in.ValidDays)
	case in.ExpirationDays > 0:
		in.ValidDays = in.ExpirationDays
		validity = fmt.Sprintf("%d days, as K3s signs them: %s=%d in %s", in.ValidDays, ExpirationDaysEnv, in.ExpirationDays, in.ExpirationSource)
	}
	if in.VerifyDays == 0 {
		in.VerifyDays = 30
	}
	dd := in.Node.DataDir
	abs := func(rel string) string { return filepath.Join(dd, filepath.FromSlash(rel)) }
	l := k3s.ListenerSpec(in.Program)
	p := Plan{APIVersion: report.APIVersion, Kind: "Plan", CreatedAt: in.Now.UTC(), Node: in.Node, Method: in.Method,
		Service: in.Service, Datastore: in.Datastore, ValidDays: in.ValidDays, ValiditySource: validity, VerifyDays: in.VerifyDays,
		ListenerJSON: abs(l.JSONPath), SecretKey: l.SecretKey(), Kubeconfig: in.Kubeconfig,
		BackupDir: abs("server/" + BackupDirName), BackupRoots: []string{"server/tls", "server/cred"},
		Journal: abs("server/tls/" + JournalName), Inputs: in.Inputs, ListenerDays: in.ValidDays,
		ClusterListener: in.ClusterListener, ExternalDatastore: in.ExternalDatastore,
		ListenerRawKeys: in.Profile.ListenerMerge == k3s.MergeV02}
	if in.Program == k3s.RKE2 {
		p.ForceRestart = abs("force-restart")
	}
	leftover := map[string]bool{}
	for _, rel := range in.Leftovers {
		leftover[rel] = true
		p.Leftovers = append(p.Leftovers, abs(rel))
	}
	sort.Strings(p.Leftovers)
	byID := map[string]k3s.Spec{}
	for _, s := range k3s.Specs(in.Program, in.Profile) {
		byID[s.ID] = s
	}
	for _, s := range k3s.Specs(in.Program, in.Profile) {
		if s.Role != k3s.RoleServer || s.CA || s.Cert == "" || !in.Present[s.Cert] || leftover[s.Cert] {
			continue
		}
		if s.SelfSigned || in.SelfSigned[s.Cert] {
			p.Removes = append(p.Removes, Leaf{ID: s.ID, Cert: abs(s.Cert), Key: abs(s.Key),
				Why: "self-signed by the component (its --cert-dir), never renewed by anyone: removed so it signs a new one on start (as Rancher does, rancher/rancher#41125)"})
			continue
		}
		ca, ok := byID[s.Signer]
		if !ok || ca.Cert == "" || ca.Key == "" {
			continue
		}
		p.Leaves = append(p.Leaves, Leaf{ID: s.ID, Cert: abs(s.Cert), Key: abs(s.Key), Signer: abs(ca.Cert), CAKey: abs(ca.Key)})
	}
	sort.Slice(p.Leaves, func(i, j int) bool { return p.Leaves[i].ID < p.Leaves[j].ID })
	sort.Slice(p.Removes, func(i, j int) bool { return p.Removes[i].ID < p.Removes[j].ID })

	// The listener: how it can be renewed on this node's release line.
	switch {
	case in.StaticListener:
		p.Listener = ListenerStatic
	case in.ClusterListener == ClusterAdopt && !in.NoOfflineSecret:
		p.Listener = ListenerAdopt
	case in.ClusterListener == ClusterAdopt && (in.Profile.ListenerMerge == k3s.MergeV034 || in.Profile.ListenerMerge == k3s.MergeV030to3):
		p.Listener = ListenerAdoptRestart
	case in.ClusterListener == ClusterAdopt:
		return Plan{}, fmt.Errorf("cannot adopt the renewed listener certificate on this server: the shared secret lives in %s, which k3scert cannot read with %s stopped, "+
			"and release line %s (dynamiclistener %s) is not known to let the renewed secret replace an old dynamic-cert.json at start "+
			"(only the v0.3.0-v0.3.3 and v0.3.4+ merges are: %s). Rotate this server alone with k3scert rotate (it renews the secret through the API), or delete %s on it and restart %s",
			in.Datastore, in.Program, in.Profile.Name, in.Profile.DynamicListener, k3s.AdoptMergeEvidence, abs(l.JSONPath), in.Program)
	case !in.NoOfflineSecret:
		p.Listener = ListenerBoth
	case in.Profile.RegenTrigger && in.Profile.JSONOnlyListenerRenewal():
		// The trigger alone is enough only where the regenerated
		// certificate survives the secret's merge at start (v0.3.4+). On
		// the v0.3.0–v0.3.3 rows the lab, running the real v0.3.3, saw the
		// storage's initial sync write the old secret back over it
		// (k3s-io/k3s#5163, docs/lab.md): those rows renew the secret
		// through the API while K3s runs (ListenerOnline below).
		p.Listener = ListenerTrigger
		p.Trigger = abs(l.Trigger)
	case in.Profile.JSONOnlyListenerRenewal() && in.Method == MethodRenew:
		p.Listener = ListenerJSON
	case in.Method == MethodRenew:
		// No trigger, and the old secret would overwrite a renewed
		// dynamic-cert.json at start (k3s-io/k3s#5163): renew the secret
		// through the API while K3s still runs.
		p.Listener = ListenerOnline
		p.Ports = in.Ports
	default:
		return Plan{}, fmt.Errorf("cannot regenerate the listener certificate on this node: its serving secret lives in a datastore that stops with %s (%s), "+
			"and release line %s has no dynamic-cert-regenerate trigger (v1.21.8/v1.22.5 and later), while its dynamiclistener lets the old secret "+
			"overwrite a new dynamic-cert.json at start (k3s-io/k3s#5163). Use --method renew (it renews the secret through the API while %s runs), "+
			"or, with %s running, delete the secret (kubectl -n %s delete secret %s), remove %s and restart %s",
			in.Program, in.Datastore, in.Profile.Name, in.Program, in.Program, l.Namespace, l.SecretName, abs(l.JSONPath), in.Program)
	}
	if p.Listener != ListenerBoth && p.Listener != ListenerAdopt {
		p.SecretKey = ""
	}

	// What this plan resolves: only findings about what it renews.
	supervisor := in.supervisorAddr()
	for _, f := range in.Findings {
		switch f.Code {
		case "K3C001", "K3C002", "K3C101", "K3C102", "K3C103", "K3C301", "K3C302":
			if p.Covers(f, in.Program, supervisor) {
				p.Addresses = append(p.Addresses, f.Code+" "+f.Location)
			}
		}
	}
	sort.Strings(p.Addresses)
	p.Others = append(p.Others, fmt.Sprintf("agents: restart every agent after this server (systemctl restart %s-agent); they fetch fresh certificates on start", in.Program))
	p.Others = append(p.Others, "copied kubeconfigs: refresh each copy afterwards (k3scert kubeconfig refresh PATH)")
	switch {
	case in.ClusterListener == ClusterRenew:
		p.Others = append(p.Others, fmt.Sprintf("cluster rotation: this server renews the shared %s secret once; every later server adopts it (--cluster-listener adopt), then the agents", l.SecretName))
	case in.ClusterListener == ClusterAdopt:
		p.Others = append(p.Others, fmt.Sprintf("cluster rotation: this server takes the %s secret an earlier server renewed; the next server, then the agents", l.SecretName))
	case in.HA:
		p.Others = append(p.Others, fmt.Sprintf("other servers: the %s secret is shared and now renewed; on every other server run k3scert rotate too (its own leaves and its own dynamic-cert.json), one server at a time", l.SecretName))
	default:
		p.Others = append(p.Others, fmt.Sprintf("if the cluster has other servers: they share the %s secret (now renewed) but keep their own leaves and dynamic-cert.json: run k3scert rotate on each, one at a time (docs/runbooks/ha.md)", l.SecretName))
	}
	if p.Listener == ListenerStatic {
		p.Others = append(p.Others, fmt.Sprintf("the listener certificate is user-managed (listener.cattle.io/static: \"true\"): neither dynamiclistener nor k3scert re-signs it; replace it yourself in %s/%s (keep the annotation) and in %s when it nears expiry", l.Namespace, l.SecretName, abs(l.JSONPath)))
	}
	for _, lo := range p.Leftovers {
		p.Others = append(p.Others, "leftover, not renewed and not needed by this release (safe to remove): "+lo)
	}

	var leafFiles, removeFiles []string
	for _, lf := range p.Leaves {
		leafFiles = append(leafFiles, lf.Cert, lf.Key)
	}
	for _, lf := range p.Removes {
		removeFiles = append(removeFiles, lf.Cert, lf.Key)
	}
	add := func(name, desc string, writes ...string) {
		p.Steps = append(p.Steps, Step{Index: len(p.Steps), Name: name, Description: desc, Writes: writes})
	}
	add(StepPreflight, "check CA certificates and keys (present, matching, valid), that every entry to back up can be put back exactly (no FIFO, socket or device where K3s keeps a file), that there is room for the backup, a rollback reservation and the new files, and that the backup directory and the datastore holding the serving secret can be read and written; nothing is stopped before this passes")
	if p.Listener == ListenerOnline {
		add(StepListenerOnline, "while "+string(in.Program)+" still runs, renew the listener certificate through the API (temporary admin certificate from client-ca): same names and key, new validity, cn-* annotations rebuilt from its SANs; "+
			"write it to the secret "+l.Namespace+"/"+l.SecretName+" and to dynamic-cert.json, and keep the secret as it was in "+p.BackupDir+". Release line "+in.Profile.Name+
			" has no regenerate trigger and its dynamiclistener lets the secret win at start (k3s-io/k3s#5163), and the secret's datastore stops with "+string(in.Program)+
			". A rollback restores the files but keeps this renewed secret (same CA, names and key)", p.ListenerJSON, "API secret "+l.Namespace+"/"+l.SecretName)
	}
	add(StepStop, "stop "+in.Service+" so nothing holds the old certificates or the datastore")
	add(StepBackup, "stream one tar.gz (0600) of the files the K3s table names (server/tls incl. etcd/, kube-scheduler/ and kube-controller-manager/, the server/cred kubeconfigs, dynamic-cert.json), "+in.Kubeconfig+" and the serving secret as JSON, with a manifest of each entry's type, mode, owner and symlink target, into "+p.BackupDir+"; read it back and reserve room for a rollback")
	removal := ""
	if len(p.Removes) > 0 {
		removal = fmt.Sprintf("; remove %d self-signed serving pairs (kube-controller-manager/kube-scheduler --cert-dir) so each component signs a new one on start", len(p.Removes))
	}
	switch in.Method {
	case MethodRenew:
		add(StepLeaves, fmt.Sprintf("renew %d leaf certificates from their own templates with their CAs and fresh ECDSA P-256 keys, validity: %s; CA keys are read, never written%s", len(p.Leaves), validity, removal), append(leafFiles, removeFiles...)...)
	case MethodRegenerate:
		add(StepLeaves, fmt.Sprintf("remove %d leaf certificates and keys so that K3s regenerates them on start%s", len(p.Leaves), removal), append(leafFiles, removeFiles...)...)
	}
	switch p.Listener {
	case ListenerAdopt:
		add(StepListener, "adopt the shared listener certificate an earlier server renewed: read the secret "+l.Namespace+"/"+l.SecretName+" from "+in.Datastore+
			" (it must be signed by server-ca and valid now and for the verify window), write it as is to dynamic-cert.json; the secret is not re-signed or written", p.ListenerJSON)
	case ListenerAdoptRestart:
		add(StepListener, "nothing to write for the listener: the shared secret, renewed by an earlier server, lives in "+in.Datastore+", which k3scert cannot read with "+string(in.Program)+
			" stopped; on start this release line's dynamiclistener ("+in.Profile.ListenerMerge+" merge) takes the renewed secret over the old dynamic-cert.json ("+k3s.AdoptMergeEvidence+"); verify proves the served certificate")
	case ListenerOnline:
		add(StepListener, "nothing more for the listener: it was renewed through the API before the stop (step "+StepListenerOnline+")")
	case ListenerStatic:
		add(StepListener, "leave the listener certificate alone: it is user-managed (listener.cattle.io/static), never re-signed by dynamiclistener or by k3scert")
	case ListenerTrigger:
		add(StepListener, "write the empty trigger "+p.Trigger+", as `"+string(in.Program)+" certificate rotate` does: the secret lives in a datastore that stops with "+string(in.Program)+", so on start the listener signs a new certificate itself (new key, same names, the validity "+string(in.Program)+" gives) and writes it to dynamic-cert.json and the secret", p.Trigger)
	case ListenerJSON:
		add(StepListener, "renew the listener certificate (same names and key, new validity, cn-* annotations rebuilt from its SANs) in dynamic-cert.json only: the secret lives in a datastore that stops with "+string(in.Program)+"; on start dynamiclistener (v0.3.4+) keeps the unexpired copy and writes it back to the secret", p.ListenerJSON)
	default:
		verb := "renew the listener certificate (same names and key, new validity, cn-* annotations rebuilt from its SANs)"
		if in.Method == MethodRegenerate {
			verb = "remove the listener certificate from both copies so the listener signs a new one on start:"
		}
		add(StepListener, verb+" and write the SAME certificate to dynamic-cert.json and to the secret "+l.Namespace+"/"+l.SecretName+" in the datastore, so neither copy can re-seed the old one", p.ListenerJSON, "datastore "+p.SecretKey)
	}
	startWrites := []string{}
	if p.ForceRestart != "" {
		startWrites = append(startWrites, p.ForceRestart)
	}
	add(StepStart, "start "+in.Service+" (verify then waits up to 90 s for the API)", startWrites...)
	add(StepVerify, fmt.Sprintf("verify on the wire: every endpoint serves a certificate valid now and in %d days, the renewed admin credentials reach the API, every renewed file is valid, check has no critical finding about what the plan renews; on failure roll back from the backup", in.VerifyDays))
	return p, nil
}

// supervisorAddr is the listener's loopback address on this node.
func (in Input) supervisorAddr() string {
	ports := k3s.DefaultPorts(in.Program)
	if in.Ports != nil {
		ports = *in.Ports
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.Supervisor))
}

// Covers reports whether a finding is about something this plan renews or
// removes: a planned leaf, a file the (embedded) agent fetches again on
// start, the listener copies and its endpoint (unless user-managed), or
// another endpoint the restart makes serve renewed files. Leftovers, files
// outside the table (containerd, images, backups) and kubeconfig copies
// are not. supervisor is the listener's address (host:port).
func (p Plan) Covers(f report.Finding, program k3s.Program, supervisor string) bool {
	loc := f.Location
	for _, lf := range p.Leaves {
		if loc == lf.Cert || loc == lf.Key {
			return true
		}
	}
	for _, lf := range p.Removes {
		if loc == lf.Cert || loc == lf.Key {
			return true
		}
	}
	for _, lo := range p.Leftovers {
		if loc == lo {
			return false
		}
	}
	l := k3s.ListenerSpec(program)
	listener := f.Code == "K3C101" || f.Code == "K3C102" || loc == p.ListenerJSON ||
		strings.Contains(loc, l.SecretName) || loc == supervisor
	if listener {
		return p.Listener != ListenerStatic
	}
	// K3s rewrites the admin kubeconfig with the renewed client-admin on
	// every server start; server/cred kubeconfigs name renewed files by path.
	if p.Kubeconfig != "" && (loc == p.Kubeconfig || strings.HasPrefix(loc, p.Kubeconfig+" ")) {
		return p.Node.Role != string(k3s.RoleAgent)
	}
	if strings.HasPrefix(loc, filepath.Join(p.Node.DataDir, "server", "cred")+string(filepath.Separator)) {
		return true
	}
	if filepath.IsAbs(loc) {
		// A file: only the agent's table files, which every start fetches.
		for _, s := range k3s.Specs(program, k3s.ProfileCurrent) {
			if s.Role == k3s.RoleAgent && s.Cert != "" && !s.CA && (loc == filepath.Join(p.Node.DataDir, filepath.FromSlash(s.Cert))) {
				return true
			}
		}
		return false
	}
	// Kubeconfig locations hold a path plus a user; endpoints are host:port.
	if _, _, err := net.SplitHostPort(loc); err == nil {
		return true
	}
	return false
}

// Summary is a human description of the plan.
func (p Plan) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rotation plan for %s (%s, profile %s, method %s)\n", p.Node.DataDir, p.Node.Program, p.Node.Profile, p.Method)
	if p.Datastore != "" {
		fmt.Fprintf(&b, "datastore: %s\n", p.Datastore)
	}
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
	// Only the agent's own table files (and its endpoints): never
	// containerd's image snapshots, registry certificates or backups.
	supervisor := in.supervisorAddr()
	for _, f := range in.Findings {
		switch f.Code {
		case "K3C001", "K3C002", "K3C301", "K3C302":
			if p.Covers(f, in.Program, supervisor) {
				p.Addresses = append(p.Addresses, f.Code+" "+f.Location)
			}
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
