package k3s

// Node role labels K3s sets on a server's Node object, and the taints a
// server may carry. RKE2 runs the same K3s server code.
//
// k3s-io/k3s@25c0b5fb9bb3 pkg/server/server.go: MasterRoleLabelKey,
// ControlPlaneRoleLabelKey, ETCDRoleLabelKey; setControlPlaneRoleLabel sets
// the control-plane and master labels to "true" on every server running
// the apiserver (not with --disable-apiserver or --disable-agent).
// k3s-io/k3s@ac10d1b2acc2 pkg/servicelb/controller.go newDaemonSet: the
// server-side DaemonSet tolerates the master and control-plane role keys
// and CriticalAddonsOnly (operator Exists), the taints servers carry.
const (
	LabelControlPlane = "node-role.kubernetes.io/control-plane"
	LabelMaster       = "node-role.kubernetes.io/master"
	LabelEtcd         = "node-role.kubernetes.io/etcd"
	// LabelRoleValue is the value K3s gives the role labels.
	LabelRoleValue = "true"
	// TaintCriticalAddonsOnly is the taint key of dedicated servers.
	TaintCriticalAddonsOnly = "CriticalAddonsOnly"
)
