package lab

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/rotate"
	corev1 "k8s.io/api/core/v1"
)

// The lab replays `k3scert rotate` as a remedy: the same planner and
// executor as on a real node, with the lab's processes as the service.
func init() { RegisterRemedy("rotate", RotateRemedy) }

// Service is the lab node as a rotate.Service: Stop stops its processes,
// Start is a K3s start (renewal per profile, then the processes).
type Service struct {
	N *Node
	// FailStarts makes the next FailStarts starts fail after the node
	// started (a K3s that "does not come back"), for tests.
	FailStarts int
}

// Name implements rotate.Service.
func (s *Service) Name() string { return "lab k3s (" + s.N.o.Profile.Name + ")" }

// Stop implements rotate.Service.
func (s *Service) Stop(context.Context) error { s.N.Stop(); return nil }

// Start implements rotate.Service.
func (s *Service) Start(ctx context.Context) error {
	if _, err := s.N.Start(ctx); err != nil {
		return err
	}
	if s.FailStarts > 0 {
		s.FailStarts--
		s.N.Stop()
		return fmt.Errorf("k3s did not come back (lab fault injection)")
	}
	return nil
}

// CheckOptions are the check options that look at this node, judged now.
func (n *Node) CheckOptions() check.Options {
	ports := n.Ports()
	return check.Options{
		DataDir: n.dataDir, Program: n.o.Program, Profile: n.o.Profile.Name, AdminKubeconfig: n.kubecfg,
		At: time.Now().UTC().Truncate(time.Second), Ports: &ports, Timeout: 3 * time.Second,
		Endpoints: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.Supervisor)), net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.APIServer))},
		Secret: func(ctx context.Context) (*corev1.Secret, string, error) {
			s, _, err := n.ReadSecret(ctx)
			return s, "datastore (lab kine)", err
		},
	}
}

// RotateExecutor plans a rotation of the running node and returns the
// executor, ready to Apply.
func (n *Node) RotateExecutor(ctx context.Context, method string, svc rotate.Service) (*rotate.Executor, error) {
	return n.ClusterRotateExecutor(ctx, method, "", svc)
}

// ClusterRotateExecutor is RotateExecutor for a server's part in a cluster
// rotation: clusterListener is rotate.ClusterRenew (renew the shared
// secret) or rotate.ClusterAdopt (serve the one an earlier server renewed);
// "" is a single node.
func (n *Node) ClusterRotateExecutor(ctx context.Context, method, clusterListener string, svc rotate.Service) (*rotate.Executor, error) {
	o := n.CheckOptions()
	g := rotate.GatherOptions{Check: o, Method: method, Service: svc.Name(), ClusterListener: clusterListener}
	switch {
	case n.o.DatastoreStopsWithK3s:
		g.Datastore = "a datastore that stops with K3s (lab: kine outside the data dir, standing in for embedded etcd)"
	case n.o.ExternalDatastore:
		g.DatastoreEndpoint = n.datastoreEndpoint()
	default:
		g.Datastore = rotate.DescribeDatastore(n.dataDir)
	}
	in, err := rotate.GatherNode(ctx, g)
	if err != nil {
		return nil, err
	}
	if n.o.ExternalDatastore {
		in.HA = true // other servers share the secret
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		return nil, err
	}
	e := &rotate.Executor{Plan: p, Service: svc, Now: time.Now}
	switch {
	case n.o.ExternalDatastore:
		e.Secrets = rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: n.dataDir, Program: n.o.Program, Endpoint: n.datastoreEndpoint()})
	case !n.o.DatastoreStopsWithK3s:
		e.Secrets = rotate.DatastoreSecrets(datastore.NodeOptions{DataDir: n.dataDir, Program: n.o.Program})
	}
	e.Verify = n.clusterVerifier(o, e.Secrets).Verify
	return e, nil
}

// clusterVerifier is the verification `k3scert rotate` wires on a server
// (cmd/k3scert/rotate.go): where the datastore can be read, the shared
// secret too, so that in a cluster rotation the listener must serve
// exactly the secret's certificate — checked here against the real
// dynamiclistener of the node's era.
func (n *Node) clusterVerifier(o check.Options, ds func(context.Context) (rotate.SecretStore, error)) rotate.Verifier {
	v := rotate.Verifier{Check: o, Now: time.Now, Timeout: 30 * time.Second}
	if ds != nil {
		v.Secret = func(ctx context.Context) (*corev1.Secret, error) {
			st, err := ds(ctx)
			if err != nil {
				return nil, err
			}
			defer st.Close()
			return st.Get(ctx)
		}
	}
	return v
}

func (n *Node) datastoreEndpoint() string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.KinePort))
}

// RotateRemedy runs `k3scert rotate --yes` against the node.
func RotateRemedy(ctx context.Context, n *Node) (string, error) {
	e, err := n.RotateExecutor(ctx, rotate.MethodRenew, &Service{N: n})
	if err != nil {
		return "", err
	}
	start := time.Now()
	if err := e.Apply(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("k3scert rotate: %d leaves and the listener renewed in both places, verified on the wire (%.1fs)", len(e.Plan.Leaves), time.Since(start).Seconds()), nil
}
