package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/rest"
)

// PlanProgress is how far a plan has got on the nodes it selects.
type PlanProgress struct {
	Plan       string `json:"plan"`
	LatestHash string `json:"latestHash"`
	// LatestVersion is the plan's resolved version (our run id).
	LatestVersion string   `json:"latestVersion"`
	Selected      []string `json:"selected"` // nodes the plan selects (not disabled)
	Done          []string `json:"done"`     // of those, the ones labelled with latestHash
	Applying      []string `json:"applying,omitempty"`
}

// Complete: the plan's hash is resolved, it selects at least one node and
// every selected node carries the hash.
func (p PlanProgress) Complete() bool {
	return p.LatestHash != "" && len(p.Selected) > 0 && len(p.Done) == len(p.Selected)
}

func (p PlanProgress) String() string {
	if p.LatestHash == "" {
		return fmt.Sprintf("plan %s: the controller has not resolved it yet (no status.latestHash)", p.Plan)
	}
	pending := []string{}
	done := map[string]bool{}
	for _, n := range p.Done {
		done[n] = true
	}
	for _, n := range p.Selected {
		if !done[n] {
			pending = append(pending, n)
		}
	}
	s := fmt.Sprintf("plan %s: %d/%d nodes done", p.Plan, len(p.Done), len(p.Selected))
	if len(pending) > 0 {
		s += ", waiting for " + strings.Join(pending, ", ")
	}
	if len(p.Applying) > 0 {
		s += " (applying: " + strings.Join(p.Applying, ", ") + ")"
	}
	return s
}

// PlanWatcher reads Plans and Nodes with plain REST calls (no typed
// clientset, no controller module): the job's ServiceAccount needs get on
// plans and get/list on nodes.
type PlanWatcher struct {
	host string
	hc   *http.Client
}

// NewPlanWatcher is a PlanWatcher over a rest.Config (rest.InClusterConfig
// in a job; a kubeconfig's in tests).
func NewPlanWatcher(cfg *rest.Config) (*PlanWatcher, error) {
	c := rest.CopyConfig(cfg)
	if c.Timeout == 0 {
		c.Timeout = 15 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "k3scert"
	}
	hc, err := rest.HTTPClientFor(c)
	if err != nil {
		return nil, err
	}
	return &PlanWatcher{host: strings.TrimSuffix(c.Host, "/"), hc: hc}, nil
}

// Close drops idle connections.
func (w *PlanWatcher) Close() { w.hc.CloseIdleConnections() }

func (w *PlanWatcher) get(ctx context.Context, path string, q url.Values, into any) error {
	u := w.host + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := w.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var st metav1.Status
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			return &apiError{Code: resp.StatusCode, Msg: fmt.Sprintf("GET %s: %d %s: %s", path, resp.StatusCode, st.Reason, st.Message)}
		}
		return &apiError{Code: resp.StatusCode, Msg: fmt.Sprintf("GET %s: %d %s", path, resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return json.Unmarshal(b, into)
}

type apiError struct {
	Code int
	Msg  string
}

func (e *apiError) Error() string { return e.Msg }

// Plan reads namespace/name.
func (w *PlanWatcher) Plan(ctx context.Context, namespace, name string) (*SUCPlan, error) {
	var p SUCPlan
	path := "/apis/" + PlanAPIVersion + "/namespaces/" + url.PathEscape(namespace) + "/" + PlanResource + "/" + url.PathEscape(name)
	if err := w.get(ctx, path, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Selector is the label selector of the nodes a plan applies to, as the
// controller computes it (pkg/upgrade/plan/plan.go NodeSelector: the
// plan's nodeSelector plus kubernetes.io/hostname Exists; nodes labelled
// plan.upgrade.cattle.io/<plan>=disabled are left out, SelectConcurrentNodes).
func Selector(p *SUCPlan) (labels.Selector, error) {
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
	if err != nil {
		return nil, fmt.Errorf("plan %s: nodeSelector: %w", p.Name, err)
	}
	host, err := labels.NewRequirement(SUCHostnameLabel, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	notDisabled, err := labels.NewRequirement(SUCPlanLabel(p.Name), selection.NotIn, []string{SUCPlanDisabled})
	if err != nil {
		return nil, err
	}
	return sel.Add(*host, *notDisabled), nil
}

// Progress reads the plan and the nodes it selects.
func (w *PlanWatcher) Progress(ctx context.Context, namespace, name string) (PlanProgress, error) {
	p, err := w.Plan(ctx, namespace, name)
	if err != nil {
		return PlanProgress{Plan: name}, err
	}
	sel, err := Selector(p)
	if err != nil {
		return PlanProgress{Plan: name}, err
	}
	var nodes corev1.NodeList
	if err := w.get(ctx, "/api/v1/nodes", url.Values{"labelSelector": {sel.String()}}, &nodes); err != nil {
		return PlanProgress{Plan: name}, err
	}
	return progressOf(p, nodes.Items), nil
}

func progressOf(p *SUCPlan, nodes []corev1.Node) PlanProgress {
	pr := PlanProgress{Plan: p.Name, LatestHash: p.Status.LatestHash, LatestVersion: p.Status.LatestVersion, Applying: p.Status.Applying,
		Selected: []string{}, Done: []string{}}
	key := SUCPlanLabel(p.Name)
	for _, n := range nodes {
		pr.Selected = append(pr.Selected, n.Name)
		if pr.LatestHash != "" && n.Labels[key] == pr.LatestHash {
			pr.Done = append(pr.Done, n.Name)
		}
	}
	sort.Strings(pr.Selected)
	sort.Strings(pr.Done)
	return pr
}

// WaitOptions tune WaitPlan.
type WaitOptions struct {
	Interval time.Duration // between polls (default 5 s, as rancher/k3s-upgrade's prepare)
	// Report receives each new progress line.
	Report func(string)
	// Version, when set, is the run the caller belongs to: the plan must
	// have resolved this version before its labels count. Without it, an
	// agent job of a new run could see the server plan still at the
	// previous run (every server labelled with the old hash) and pass
	// before any server was rotated. The agent's prepare container gets its
	// own plan's version as SYSTEM_UPGRADE_PLAN_LATEST_VERSION
	// (pkg/upgrade/container/container.go WithPlanEnvironment); both plans
	// carry the same run id.
	Version string
}

// WaitPlan waits until every node the plan selects carries the plan's
// completed label (plan.upgrade.cattle.io/<plan> = status.latestHash, set
// by the controller when the node's job completed). A missing plan, a plan
// not yet resolved and a plan still applying are waited for; a plan whose
// selector matches no node is an error (nothing would ever complete), as
// is a denied request. The context bounds the wait (the job's deadline
// bounds it in a cluster).
func (w *PlanWatcher) WaitPlan(ctx context.Context, namespace, name string, o WaitOptions) (PlanProgress, error) {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Report == nil {
		o.Report = func(string) {}
	}
	last := ""
	for {
		pr, err := w.Progress(ctx, namespace, name)
		var line string
		switch {
		case err != nil:
			if ae, ok := err.(*apiError); ok && (ae.Code == http.StatusUnauthorized || ae.Code == http.StatusForbidden) {
				return pr, fmt.Errorf("wait for plan %s/%s: %w (the job's ServiceAccount needs get on plans and get,list on nodes: k3scert cluster plans prints that RBAC)", namespace, name, err)
			}
			if ae, ok := err.(*apiError); ok && ae.Code == http.StatusNotFound {
				line = fmt.Sprintf("plan %s/%s does not exist yet", namespace, name)
			} else if ctx.Err() == nil {
				line = fmt.Sprintf("plan %s/%s: %v (retrying)", namespace, name, err)
			}
		case o.Version != "" && pr.LatestHash != "" && pr.LatestVersion != o.Version:
			line = fmt.Sprintf("plan %s is at version %q, waiting for the controller to resolve %q", name, pr.LatestVersion, o.Version)
		case pr.LatestHash != "" && len(pr.Selected) == 0:
			return pr, fmt.Errorf("plan %s/%s selects no node: nothing will ever complete it", namespace, name)
		case pr.Complete():
			o.Report(pr.String())
			return pr, nil
		default:
			line = pr.String()
		}
		if line != last && line != "" {
			o.Report(line)
			last = line
		}
		select {
		case <-ctx.Done():
			return pr, fmt.Errorf("wait for plan %s/%s: %w; last: %s", namespace, name, ctx.Err(), last)
		case <-time.After(o.Interval):
		}
	}
}

// ListenerModeFor is a server's part in the shared listener secret when
// the server plan's jobs rotate the servers one at a time
// (`--cluster-listener` of rotate): the first server of a run renews the
// secret (ListenerRenew); once any other server carries the plan's
// completed label for this run, the secret has been renewed and this
// server adopts it (ListenerAdopt). The controller starts the next server's
// job only after the previous node is labelled: a node stays in the plan's
// applying set until its label equals latestHash (pkg/upgrade/plan/plan.go
// SelectConcurrentNodes), so with concurrency 1 no two servers decide at
// once. A server whose own job is retried after it completed (its label
// already set) decides as the others do.
func ListenerModeFor(pr PlanProgress, node string) (mode, reason string) {
	for _, d := range pr.Done {
		if d != node {
			return ListenerAdopt, fmt.Sprintf("%s already rotated in this run (plan %s, hash %.12s)", d, pr.Plan, pr.LatestHash)
		}
	}
	return ListenerRenew, fmt.Sprintf("the first server of this run (no other node of plan %s carries hash %.12s)", pr.Plan, pr.LatestHash)
}
