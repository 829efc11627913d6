package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/k3scert/k3scert/internal/k3s"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Node labels and taints of K3s/RKE2 servers the plans select and
// tolerate (facts with citations in internal/k3s/nodelabels.go).
const (
	LabelControlPlane = k3s.LabelControlPlane
	LabelMaster       = k3s.LabelMaster
	LabelEtcd         = k3s.LabelEtcd
	TaintCriticalOnly = k3s.TaintCriticalAddonsOnly
)

// ImageBinary is where the k3scert image holds the static binary
// (tools/image: BinaryPath); the image has no shell.
const ImageBinary = "/usr/local/bin/k3scert"

// DefaultHostBinary is where the job installs k3scert on the node, so that
// the node's journal can be resumed or rolled back by hand with the same
// binary if the job dies mid-rotation.
const DefaultHostBinary = "/usr/local/bin/k3scert"

// PlansOptions describe the generated Plans.
type PlansOptions struct {
	Namespace      string // default system-upgrade
	ServiceAccount string // default k3scert-rotate
	// Image is the k3scert image, with a tag or digest (a tagless image
	// would get the run id as its tag from the controller).
	Image string
	// RunID is the plans' spec.version: a new id re-runs both plans.
	RunID   string
	Program k3s.Program // k3s (default) or rke2
	// ServerPlan, AgentPlan name the plans (default k3scert-server,
	// k3scert-agent).
	ServerPlan, AgentPlan string
	// AgentConcurrency: how many agents rotate at once (default 1).
	AgentConcurrency int64
	// JobDeadline is each job's jobActiveDeadlineSecs in seconds (0:
	// 3600, as an agent's job includes waiting for every server; -1: no
	// deadline, upstream's 0).
	JobDeadline int64
	// HostBinary is where the job installs k3scert on the node.
	HostBinary string
	// RotateArgs are extra `k3scert rotate` flags for every node.
	RotateArgs []string
	// ImagePullSecrets name Secrets in Namespace for pulling Image.
	ImagePullSecrets []string
}

// Defaults of PlansOptions.
const (
	DefaultSUCNamespace     = "system-upgrade"
	DefaultSUCAccount       = "k3scert-rotate"
	DefaultServerPlan       = "k3scert-server"
	DefaultAgentPlan        = "k3scert-agent"
	DefaultJobDeadline      = 3600
	DefaultAgentConcurrency = 1
)

func (o *PlansOptions) defaults() error {
	if o.Namespace == "" {
		o.Namespace = DefaultSUCNamespace
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = DefaultSUCAccount
	}
	if o.ServerPlan == "" {
		o.ServerPlan = DefaultServerPlan
	}
	if o.AgentPlan == "" {
		o.AgentPlan = DefaultAgentPlan
	}
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.AgentConcurrency == 0 {
		o.AgentConcurrency = DefaultAgentConcurrency
	}
	if o.JobDeadline == 0 {
		o.JobDeadline = DefaultJobDeadline
	}
	if o.HostBinary == "" {
		o.HostBinary = DefaultHostBinary
	}
	switch {
	case o.Program != k3s.K3s && o.Program != k3s.RKE2:
		return fmt.Errorf("program %q: want k3s or rke2", o.Program)
	case !dnsLabel.MatchString(o.Namespace):
		return fmt.Errorf("namespace %q is not a DNS label", o.Namespace)
	case !dnsSubdomain.MatchString(o.ServiceAccount):
		return fmt.Errorf("service account %q is not a DNS subdomain name", o.ServiceAccount)
	case !dnsLabel.MatchString(o.ServerPlan) || !dnsLabel.MatchString(o.AgentPlan) || o.ServerPlan == o.AgentPlan:
		return fmt.Errorf("plan names %q and %q: want two different DNS labels (they become label keys)", o.ServerPlan, o.AgentPlan)
	case o.AgentConcurrency < 1:
		return fmt.Errorf("agent concurrency %d: want at least 1", o.AgentConcurrency)
	case o.JobDeadline < -1:
		return fmt.Errorf("job deadline %d: want -1 (none) or seconds", o.JobDeadline)
	case !strings.HasPrefix(o.HostBinary, "/"):
		return fmt.Errorf("host binary %q: want an absolute path on the node", o.HostBinary)
	case !validNames(o.ImagePullSecrets):
		return fmt.Errorf("image pull secrets %q: want DNS subdomain names", o.ImagePullSecrets)
	case !labelValue.MatchString(o.RunID) || o.RunID == "":
		return fmt.Errorf("run id %q: want 1-63 characters [A-Za-z0-9._-], starting and ending alphanumeric (it becomes a label value)", o.RunID)
	}
	return checkImage(o.Image)
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	labelValue   = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
)

func validNames(names []string) bool {
	for _, n := range names {
		if !dnsSubdomain.MatchString(n) {
			return false
		}
	}
	return true
}

// checkImage wants repository:tag or repository@digest: the controller
// gives a tagless image the plan's status.latestVersion as its tag
// (pkg/upgrade/container/container.go WithLatestTag), which here is the run
// id, not a k3scert release.
func checkImage(image string) error {
	if image == "" {
		return errors.New("no image: pass the k3scert image, e.g. ghcr.io/k3scert/k3scert:v0.2.0")
	}
	if strings.ContainsAny(image, " \t\n") {
		return fmt.Errorf("image %q contains white space", image)
	}
	if strings.Contains(image, "@") {
		return nil
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if !strings.Contains(last, ":") {
		return fmt.Errorf("image %q has no tag: the controller would use the run id as its tag; name a k3scert release, e.g. %s:v0.2.0", image, image)
	}
	return nil
}

// units are the service units rotate restarts: the names `k3scert rotate`
// defaults to (cmd/k3scert/rotate.go rotateService), passed explicitly so
// the job does not depend on detecting the role.
func units(p k3s.Program) (server, agent string) {
	if p == k3s.RKE2 {
		return "rke2-server", "rke2-agent"
	}
	return "k3s", "k3s-agent"
}

// JobRotateArgs are the `k3scert` arguments the job runs on the node
// (inside the node's root), for the server or the agent plan.
func (o PlansOptions) JobRotateArgs(role Role) []string {
	su, au := units(o.Program)
	unit := su
	if role == RoleAgent {
		unit = au
	}
	a := []string{"rotate", "--yes", "--program=" + string(o.Program), "--unit=" + unit}
	return append(a, o.RotateArgs...)
}

// HostRotateArgs are the upgrade container's arguments: install the
// image's k3scert on the node, on a server decide its listener part from
// the server plan's progress, then run JobRotateArgs chrooted into the
// node's root (see `k3scert cluster host-rotate`).
func (o PlansOptions) HostRotateArgs(role Role) []string {
	a := []string{"cluster", "host-rotate", "--host-root=" + SUCHostRoot, "--host-binary=" + o.HostBinary}
	if role == RoleServer {
		// renew the shared listener secret on the run's first server,
		// adopt it on the others (ListenerModeFor)
		a = append(a, "--listener-from-plan="+o.ServerPlan)
	}
	a = append(a, "--")
	return append(a, o.JobRotateArgs(role)...)
}

// SUCPlans generates the server and the agent Plan.
func SUCPlans(o PlansOptions) (server, agent SUCPlan, err error) {
	if err := o.defaults(); err != nil {
		return server, agent, err
	}
	deadline := max(o.JobDeadline, 0) // -1: upstream's 0, no deadline
	meta := func(name, role string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: map[string]string{
			"app.kubernetes.io/name": "k3scert", "app.kubernetes.io/component": "rotate-" + role}}
	}
	var pull []corev1.LocalObjectReference
	for _, n := range o.ImagePullSecrets {
		pull = append(pull, corev1.LocalObjectReference{Name: n})
	}
	upgrade := func(role Role) *SUCContainerSpec {
		return &SUCContainerSpec{Image: o.Image, Command: []string{ImageBinary}, Args: o.HostRotateArgs(role)}
	}
	server = SUCPlan{
		TypeMeta:   metav1.TypeMeta{APIVersion: PlanAPIVersion, Kind: PlanKind},
		ObjectMeta: meta(o.ServerPlan, "server"),
		Spec: SUCPlanSpec{
			Concurrency: 1, // one server at a time: quorum and the API stay up
			Version:     o.RunID,
			NodeSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: LabelControlPlane, Operator: metav1.LabelSelectorOpIn, Values: []string{k3s.LabelRoleValue}}}},
			ServiceAccountName:    o.ServiceAccount,
			JobActiveDeadlineSecs: &deadline,
			Tolerations: []corev1.Toleration{
				{Key: TaintCriticalOnly, Operator: corev1.TolerationOpExists},
				{Key: LabelControlPlane, Operator: corev1.TolerationOpExists},
				{Key: LabelMaster, Operator: corev1.TolerationOpExists},
				{Key: LabelEtcd, Operator: corev1.TolerationOpExists},
			},
			ImagePullSecrets: pull,
			Upgrade:          upgrade(RoleServer),
		},
	}
	agent = SUCPlan{
		TypeMeta:   metav1.TypeMeta{APIVersion: PlanAPIVersion, Kind: PlanKind},
		ObjectMeta: meta(o.AgentPlan, "agent"),
		Spec: SUCPlanSpec{
			Concurrency: o.AgentConcurrency,
			Version:     o.RunID,
			NodeSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: LabelControlPlane, Operator: metav1.LabelSelectorOpDoesNotExist}}},
			ServiceAccountName:    o.ServiceAccount,
			JobActiveDeadlineSecs: &deadline,
			// Every agent holds certificates that expire: a tainted agent
			// (GPU, dedicated pools) must not be left out silently, so the
			// agent job tolerates every taint, as node-level DaemonSets do.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Prepare: &SUCContainerSpec{Image: o.Image, Command: []string{ImageBinary},
				Args: []string{"cluster", "wait-plan", o.ServerPlan}},
			ImagePullSecrets: pull,
			Upgrade:          upgrade(RoleAgent),
		},
	}
	return server, agent, nil
}

// Namespace/RBAC names.
func rbacName(o PlansOptions) string { return o.ServiceAccount }

// RBAC is what the plans' jobs need from the API, nothing more: the
// ServiceAccount the jobs run as; a Role to get plans in the namespace
// (wait-plan reads the server plan's selector and latestHash); a
// ClusterRole to get and list nodes (wait-plan lists the nodes the server
// plan selects and reads their plan label). The rotation itself talks to
// the node's own apiserver with the node's admin credentials, not with
// this account. The controller's own RBAC ships with the controller.
func RBAC(o PlansOptions) ([]any, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	name := rbacName(o)
	labels := map[string]string{"app.kubernetes.io/name": "k3scert"}
	sa := corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels}}
	role := rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{PlanGroup}, Resources: []string{PlanResource}, Verbs: []string{"get"}}}}
	subj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: o.Namespace}}
	rb := rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}, Subjects: subj}
	cname := "k3scert-rotate-" + o.Namespace + "-nodes"
	cr := rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: cname, Labels: labels},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}}}}
	crb := rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: cname, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cname}, Subjects: subj}
	return []any{sa, role, rb, cr, crb}, nil
}

// Manifest is everything `k3scert cluster plans` prints: RBAC, then the
// server and the agent plan.
func Manifest(o PlansOptions) ([]any, error) {
	objs, err := RBAC(o)
	if err != nil {
		return nil, err
	}
	s, a, err := SUCPlans(o)
	if err != nil {
		return nil, err
	}
	return append(objs, planManifest{s.TypeMeta, s.ObjectMeta, s.Spec}, planManifest{a.TypeMeta, a.ObjectMeta, a.Spec}), nil
}

// planManifest is a Plan without its status (the controller's to write;
// the apiserver ignores it on create through the status subresource).
type planManifest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SUCPlanSpec `json:"spec"`
}

// RenderYAML writes objects as a multi-document YAML stream.
func RenderYAML(objs []any) ([]byte, error) {
	var b bytes.Buffer
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// RenderJSON writes objects as a v1 List (what kubectl apply -f takes).
func RenderJSON(objs []any) ([]byte, error) {
	raw := make([]json.RawMessage, 0, len(objs))
	for _, o := range objs {
		j, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		raw = append(raw, j)
	}
	return json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": raw}, "", "  ")
}

// DecodePlansStrict decodes the Plans of a YAML stream into the mirrored
// upstream structs with unknown fields disallowed; other kinds are
// skipped. A field the Plan API does not have is an error.
func DecodePlansStrict(stream []byte) ([]SUCPlan, error) {
	var plans []SUCPlan
	for i, doc := range splitYAML(stream) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if tm.Kind != PlanKind {
			continue
		}
		if tm.APIVersion != PlanAPIVersion {
			return nil, fmt.Errorf("document %d: Plan apiVersion %q, want %s", i+1, tm.APIVersion, PlanAPIVersion)
		}
		var p SUCPlan
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			return nil, fmt.Errorf("document %d (Plan): %w", i+1, err)
		}
		if p.Spec.Upgrade == nil || p.Spec.Upgrade.Image == "" {
			return nil, fmt.Errorf("document %d (Plan %s): spec.upgrade.image is required", i+1, p.Name)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func splitYAML(stream []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}
