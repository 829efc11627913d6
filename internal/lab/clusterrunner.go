package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/cluster"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/rotate"
)

// ClusterRunner carries out a cluster rotation on a lab cluster: each
// node's rotation is `k3scert rotate` (the same planner and journaled
// executor as on a real node) with the lab's processes as the service; the
// verification is on the wire.
type ClusterRunner struct {
	C   *Cluster
	Log func(format string, args ...any)
	// FailStarts makes the next FailStarts[node] starts of that server fail
	// after it started (Service.FailStarts: a K3s that "does not come
	// back"), for tests of rollback and resume.
	FailStarts map[string]int
	// secretChanges counts the server rotations after which the shared
	// secret held another certificate than before.
	secretChanges int
}

var _ cluster.Runner = (*ClusterRunner)(nil)

// Inventory is the cluster as a cluster rotation sees it: servers, then
// agents.
func (c *Cluster) Inventory() []cluster.Node {
	var out []cluster.Node
	for _, n := range c.Servers {
		out = append(out, cluster.Node{Name: n.Name(), Role: cluster.RoleServer, Host: n.Name(),
			API: fmt.Sprintf("127.0.0.1:%d", n.Ports().Supervisor)})
	}
	for _, a := range c.Agents {
		out = append(out, cluster.Node{Name: a.Name(), Role: cluster.RoleAgent, Host: a.Name()})
	}
	return out
}

// timedService records how long the node was down: from the stop to the
// end of the start (K3s ready: apiserver /readyz ok and the listener's
// certificate in both places; an agent: certificates fetched and served).
type timedService struct {
	rotate.Service
	mu       sync.Mutex
	stopped  time.Time
	downtime time.Duration
}

func (t *timedService) Stop(ctx context.Context) error {
	t.mu.Lock()
	t.stopped = time.Now()
	t.mu.Unlock()
	return t.Service.Stop(ctx)
}

func (t *timedService) Start(ctx context.Context) error {
	err := t.Service.Start(ctx)
	t.mu.Lock()
	if !t.stopped.IsZero() {
		t.downtime += time.Since(t.stopped)
		t.stopped = time.Time{}
	}
	t.mu.Unlock()
	return err
}

// Rotate implements cluster.Runner.
func (r *ClusterRunner) Rotate(ctx context.Context, s cluster.NodeStep) (cluster.NodeResult, error) {
	res := cluster.NodeResult{Node: s.Node.Name, Role: s.Node.Role, Started: time.Now()}
	var e *rotate.Executor
	var ts *timedService
	var err error
	switch s.Node.Role {
	case cluster.RoleServer:
		n := r.C.server(s.Node.Name)
		if n == nil {
			return res, fmt.Errorf("lab: no server %q", s.Node.Name)
		}
		svc := &Service{N: n, FailStarts: r.FailStarts[n.Name()]}
		ts = &timedService{Service: svc}
		e, err = n.ClusterRotateExecutor(ctx, rotate.MethodRenew, s.Listener, ts)
		defer func() {
			if r.FailStarts != nil {
				r.FailStarts[n.Name()] = svc.FailStarts
			}
		}()
	case cluster.RoleAgent:
		a := r.C.agent(s.Node.Name)
		if a == nil {
			return res, fmt.Errorf("lab: no agent %q", s.Node.Name)
		}
		ts = &timedService{Service: &AgentService{A: a}}
		e, err = a.RotateExecutor(ctx, ts)
	default:
		return res, fmt.Errorf("lab: node %s: unknown role %q", s.Node.Name, s.Node.Role)
	}
	if err != nil {
		res.Outcome = "plan failed: " + err.Error()
		return res, err
	}
	if r.Log != nil {
		r.Log("cluster: rotate %s (%s, listener %s): %d steps", s.Node.Name, s.Node.Role, s.Listener, len(e.Plan.Steps))
	}
	var before string
	if s.Node.Role == cluster.RoleServer {
		before = r.secretFP(ctx)
	}
	err = e.Apply(ctx)
	res.Finished = time.Now()
	if s.Node.Role == cluster.RoleServer && r.secretFP(ctx) != before {
		r.secretChanges++
	}
	res.Downtime = ts.downtime
	if err != nil {
		res.Outcome = "failed: " + err.Error()
		return res, err
	}
	res.Outcome = "rotated and verified"
	return res, nil
}

// Resume implements cluster.Runner: the node's own journal decides
// (rotate.Resume, as `k3scert rotate --resume` on the node); a node without
// an unfinished journal is rotated.
func (r *ClusterRunner) Resume(ctx context.Context, s cluster.NodeStep) (cluster.NodeResult, error) {
	res := cluster.NodeResult{Node: s.Node.Name, Role: s.Node.Role, Started: time.Now()}
	var e *rotate.Executor
	var ts *timedService
	var journal string
	switch s.Node.Role {
	case cluster.RoleServer:
		n := r.C.server(s.Node.Name)
		if n == nil {
			return res, fmt.Errorf("lab: no server %q", s.Node.Name)
		}
		ts = &timedService{Service: &Service{N: n}}
		ds := rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: n.dataDir, Program: n.o.Program, Endpoint: n.datastoreEndpoint()})
		e = &rotate.Executor{Service: ts, Now: time.Now, Verify: n.clusterVerifier(n.CheckOptions(), ds).Verify, Secrets: ds}
		journal = rotate.JournalPath(n.dataDir, k3s.RoleServer)
	case cluster.RoleAgent:
		a := r.C.agent(s.Node.Name)
		if a == nil {
			return res, fmt.Errorf("lab: no agent %q", s.Node.Name)
		}
		ts = &timedService{Service: &AgentService{A: a}}
		e = &rotate.Executor{Service: ts, Now: time.Now, Verify: a.verifier(a.CheckOptions()).Verify}
		journal = rotate.JournalPath(a.dataDir, k3s.RoleAgent)
	default:
		return res, fmt.Errorf("lab: node %s: unknown role %q", s.Node.Name, s.Node.Role)
	}
	st, err := rotate.ReadJournal(journal)
	if err != nil || st.Closed() {
		return r.Rotate(ctx, s)
	}
	err = rotate.Resume(ctx, e, journal)
	res.Finished, res.Downtime = time.Now(), ts.downtime
	if err != nil {
		res.Outcome = "resume failed: " + err.Error()
		return res, err
	}
	res.Outcome = "resumed, rotated and verified"
	return res, nil
}

// Verify implements cluster.Runner: a server's :6443 certificate and
// kubectl through that server; an agent's served kubelet certificate and an
// API call with its client-kubelet certificate.
func (r *ClusterRunner) Verify(ctx context.Context, cn cluster.Node) (cluster.NodeCheck, error) {
	out := cluster.NodeCheck{Node: cn.Name, Role: cn.Role}
	switch cn.Role {
	case cluster.RoleServer:
		n := r.C.server(cn.Name)
		if n == nil {
			return out, fmt.Errorf("lab: no server %q", cn.Name)
		}
		if c := n.served(); c != nil {
			out.ServedNotAfter = n.Virtual(c.NotAfter)
			if time.Now().After(c.NotAfter) {
				out.Problems = append(out.Problems, "the :6443 listener serves an expired certificate")
			}
		} else {
			out.Problems = append(out.Problems, "nothing served on :6443")
		}
		out.KubectlOK, out.KubectlError = n.kubectl(ctx)
	case cluster.RoleAgent:
		a := r.C.agent(cn.Name)
		if a == nil {
			return out, fmt.Errorf("lab: no agent %q", cn.Name)
		}
		if c := a.ServedKubelet(); c != nil {
			out.ServedNotAfter = a.Virtual(c.NotAfter)
			if time.Now().After(c.NotAfter) {
				out.Problems = append(out.Problems, "the kubelet serves an expired certificate")
			}
		} else {
			out.Problems = append(out.Problems, "the kubelet serves nothing: "+a.LastError)
		}
		if err := a.APICall(ctx); err != nil {
			out.KubectlError = err.Error()
		} else {
			out.KubectlOK = true
		}
	}
	if !out.KubectlOK {
		out.Problems = append(out.Problems, "API call failed: "+out.KubectlError)
	}
	return out, nil
}

func (r *ClusterRunner) secretFP(ctx context.Context) string {
	if crt := r.C.Servers[0].secretCert(ctx); crt != nil {
		return pki.Fingerprint(crt)
	}
	return ""
}

func (c *Cluster) server(name string) *Node {
	for _, n := range c.Servers {
		if n.Name() == name {
			return n
		}
	}
	return nil
}

func (c *Cluster) agent(name string) *Agent {
	for _, a := range c.Agents {
		if a.Name() == name {
			return a
		}
	}
	return nil
}

// AgentService is a lab agent as a rotate.Service: Stop stops it, Start is
// an agent start (it fetches its certificates from its server).
type AgentService struct{ A *Agent }

// Name implements rotate.Service.
func (s *AgentService) Name() string { return "lab k3s-agent (" + s.A.Name() + ")" }

// Stop implements rotate.Service.
func (s *AgentService) Stop(context.Context) error { s.A.Stop(); return nil }

// Start implements rotate.Service.
func (s *AgentService) Start(ctx context.Context) error { return s.A.Start(ctx) }

// CheckOptions are the check options that look at this agent, judged now.
func (a *Agent) CheckOptions() check.Options {
	return check.Options{DataDir: a.dataDir, Program: a.o.Program, Profile: a.o.Profile.Name,
		At: time.Now().UTC().Truncate(time.Second), Timeout: 3 * time.Second,
		Endpoints: []string{a.KubeletAddr()}}
}

// RotateExecutor plans `k3scert rotate` on the agent (rotate's agent plan:
// restart the agent, verify what it fetched) with svc as its service.
func (a *Agent) RotateExecutor(ctx context.Context, svc rotate.Service) (*rotate.Executor, error) {
	o := a.CheckOptions()
	in, err := rotate.Gather(ctx, o, rotate.MethodRenew, svc.Name(), "")
	if err != nil {
		return nil, err
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		return nil, err
	}
	return &rotate.Executor{Plan: p, Service: svc, Now: time.Now, Verify: a.verifier(o).Verify}, nil
}

// verifier is the agent's rotate verification. The kubelet stand-in
// serves on its own loopback port: verify dials it and requires the
// renewed serving-kubelet certificate there.
func (a *Agent) verifier(o check.Options) rotate.Verifier {
	return rotate.Verifier{Check: o, Now: time.Now, Timeout: 30 * time.Second, KubeletAddress: a.KubeletAddr()}
}
