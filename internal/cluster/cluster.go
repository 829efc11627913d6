// Package cluster rotates a whole K3s or RKE2 cluster: servers one at a
// time, then agents, the shared listener secret renewed once, each node
// rotated by the same journaled, verified `k3scert rotate` as a single node
// and the cluster verified on the wire afterwards.
//
// The package is pure planning plus an executor over a Runner: how a node's
// rotation is carried out (over SSH, by a system-upgrade-controller job, or
// in the lab) is the Runner's business, so that the order, the cluster
// journal, resume and the cluster verification are one code path for all
// of them.
package cluster

import (
	"context"
	"time"
)

// Role of a node in the cluster.
type Role string

// Roles.
const (
	RoleServer Role = "server"
	RoleAgent  Role = "agent"
)

// Node is one node of an inventory.
type Node struct {
	// Name is the node's name (as `kubectl get nodes` shows it).
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Host is how the Runner reaches the node: an ssh destination
	// ("user@host", "host") for the SSH runner; the lab's node name there.
	Host string `json:"host,omitempty"`
	// API is a server's :6443 endpoint as host:port, used by the cluster
	// verification (every server's listener, kubectl through each server).
	API string `json:"api,omitempty"`
	// Args are extra arguments of this node's remote `k3scert rotate` and
	// `k3scert check` (e.g. -d DATA_DIR, --stop-cmd/--start-cmd), after
	// the inventory's ssh.args.
	Args []string `json:"args,omitempty"`
	// RotateArgs are extra arguments of this node's `k3scert rotate` only
	// (e.g. --stop-cmd/--start-cmd, --unit), after ssh.rotateArgs.
	RotateArgs []string `json:"rotateArgs,omitempty"`
}

// Listener modes of a server in a cluster rotation: the shared
// kube-system/<program>-serving secret is renewed once.
const (
	// ListenerRenew: this server renews the shared secret and its own
	// dynamic-cert.json (the first server of the plan).
	ListenerRenew = "renew"
	// ListenerAdopt: the secret was renewed by an earlier server; this
	// server's dynamic-cert.json takes the renewed certificate.
	ListenerAdopt = "adopt"
)

// NodeStep is one node's turn in a cluster plan.
type NodeStep struct {
	Order    int    `json:"order"`
	Node     Node   `json:"node"`
	Listener string `json:"listener,omitempty"` // servers: ListenerRenew or ListenerAdopt
	// Command is what the runner runs for the node (the SSH runner: the
	// exact ssh command line); filled in for display by Plan.WithCommands.
	Command string `json:"command,omitempty"`
}

// NodeResult is what a Runner reports for one node's rotation.
type NodeResult struct {
	Node     string    `json:"node"`
	Role     Role      `json:"role"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Downtime is how long the node's service was down (stop to ready).
	Downtime time.Duration `json:"downtime"`
	Outcome  string        `json:"outcome"`
}

// NodeCheck is the verification of one node on the wire.
type NodeCheck struct {
	Node string `json:"node"`
	Role Role   `json:"role"`
	// ServedNotAfter: a server's :6443 listener certificate; an agent's
	// kubelet serving certificate.
	ServedNotAfter time.Time `json:"servedNotAfter"`
	KubectlOK      bool      `json:"kubectlOK"`
	KubectlError   string    `json:"kubectlError,omitempty"`
	Problems       []string  `json:"problems,omitempty"`
}

// Runner carries out one node's part of a cluster rotation.
type Runner interface {
	// Rotate runs the node's rotation (k3scert rotate with the step's
	// listener mode); the node's own journal makes it resumable and rolls
	// it back on failure.
	Rotate(ctx context.Context, s NodeStep) (NodeResult, error)
	// Resume continues an interrupted rotation of the node from its own
	// journal.
	Resume(ctx context.Context, s NodeStep) (NodeResult, error)
	// Verify checks the node on the wire.
	Verify(ctx context.Context, n Node) (NodeCheck, error)
}
