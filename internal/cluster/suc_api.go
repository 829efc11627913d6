package cluster

// The system-upgrade-controller Plan API (upgrade.cattle.io/v1), mirrored
// field for field from its source so that k3scert can generate Plans and
// check them strictly (unknown fields fail) without linking the
// controller's Go module (it is not served here, and it would bring
// wrangler into the product binary).
//
// Source: github.com/rancher/system-upgrade-controller at commit
// d357e2302999662071e0467b96e94f31b5c470ba (2026-08-06, "Update README
// (#439)"), file pkg/apis/upgrade.cattle.io/v1/types.go, unless a comment
// names another file. JSON names are exactly upstream's tags; the Go type
// names carry an SUC prefix (upstream: Plan, PlanSpec, PlanStatus,
// ContainerSpec, ...) because package cluster has its own Plan. The CRD the
// controller installs from the same commit
// (pkg/crds/yaml/generated/upgrade.cattle.io_plans.yaml) is vendored as
// deploy/suc/crd-plans.upgrade.cattle.io.yaml.

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// SUCCommit is the system-upgrade-controller commit the Plan API below was
// read at.
const SUCCommit = "rancher/system-upgrade-controller@d357e2302999662071e0467b96e94f31b5c470ba"

// Plan API group, version and kind
// (pkg/apis/upgrade.cattle.io/v1/zz_generated_register.go; the CRD's
// spec.group/names).
const (
	PlanGroup      = "upgrade.cattle.io"
	PlanAPIVersion = PlanGroup + "/v1"
	PlanKind       = "Plan"
	PlanResource   = "plans"
)

// SUCPlanLabel is the node label the controller sets to the plan's
// status.latestHash when a plan's job completed on the node: key
// plan.upgrade.cattle.io/<plan name> (pkg/apis/upgrade.cattle.io/constants.go
// LabelPlanSuffix and LabelPlanName), value copied from the job's label of
// the same key (pkg/upgrade/job/job.go New: labelPlanName:
// plan.Status.LatestHash), set on the node in pkg/upgrade/handle_batch.go
// (node.Labels[planLabel] = planHash once the job is Complete). The value
// "disabled" excludes a node from the plan (pkg/upgrade/plan/plan.go
// SelectConcurrentNodes: NotIn {"disabled", latestHash}).
func SUCPlanLabel(plan string) string { return "plan." + PlanGroup + "/" + plan }

// SUCPlanDisabled is the SUCPlanLabel value that excludes a node.
const SUCPlanDisabled = "disabled"

// SUCHostRoot is where the controller mounts the node's root file system
// in every container of a plan's job: volume "host-root", hostPath "/"
// (pkg/upgrade/job/job.go New), mounted at "/host"
// (pkg/upgrade/container/container.go New).
const SUCHostRoot = "/host"

// SUCHostnameLabel is the label every node a plan selects must carry in
// addition to the plan's nodeSelector (pkg/upgrade/plan/plan.go
// NodeSelector: corev1.LabelHostname Exists).
const SUCHostnameLabel = corev1.LabelHostname

// SUCPlan represents a set of Jobs to apply an upgrade (or other operation)
// to set of Nodes.
type SUCPlan struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   SUCPlanSpec   `json:"spec,omitempty"`
	Status SUCPlanStatus `json:"status,omitempty"`
}

// SUCPlanSpec represents the user-configurable details of a Plan.
type SUCPlanSpec struct {
	// The maximum number of concurrent nodes to apply this update on.
	Concurrency int64 `json:"concurrency,omitempty"`
	// Sets ActiveDeadlineSeconds on Jobs generated to apply this Plan; 0:
	// no deadline; unset: the controller's default (600 s,
	// pkg/upgrade/job/job.go defaultActiveDeadlineSeconds). The deadline
	// counts from the job's start, prepare container included.
	JobActiveDeadlineSecs *int64 `json:"jobActiveDeadlineSecs,omitempty"`
	// Select which nodes this plan can be applied to.
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// The service account for the pod to use.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// A URL that returns HTTP 302 with the last path element ... an image tag.
	Channel string `json:"channel,omitempty"`
	// Providing a value for version will prevent polling/resolution of the
	// channel. It becomes status.latestVersion, hashed into
	// status.latestHash (pkg/upgrade/plan/plan.go DigestStatus) — a new
	// version re-runs the plan on every node.
	Version string `json:"version,omitempty"`
	// Secrets to be mounted into the Job Pod.
	Secrets []SUCSecretSpec `json:"secrets,omitempty"`
	// Node taints tolerated by the job's pods, appended to the default
	// {key: node.kubernetes.io/unschedulable, effect: NoSchedule, operator: Exists}.
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Jobs for exclusive plans cannot be run alongside any other exclusive plan.
	Exclusive bool `json:"exclusive,omitempty"`
	// A time window in which to execute Jobs for this Plan.
	Window *SUCTimeWindowSpec `json:"window,omitempty"`
	// The prepare init container, if specified, is run before cordon/drain
	// which is run before the upgrade container.
	Prepare *SUCContainerSpec `json:"prepare,omitempty"`
	// The upgrade container; must be specified.
	Upgrade *SUCContainerSpec `json:"upgrade"`
	// If Cordon is true, the node is cordoned before the upgrade container is run.
	Cordon bool `json:"cordon,omitempty"`
	// Configuration for draining nodes prior to upgrade.
	Drain *SUCDrainSpec `json:"drain,omitempty"`
	// Image Pull Secrets, used to pull images for the Job.
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Time after a Job for one Node is complete before a new Job will be
	// created for the next Node.
	PostCompleteDelay *metav1.Duration `json:"postCompleteDelay,omitempty"`
	// Priority Class Name of Job, if specified.
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// Label key-value pairs to apply to a node when the job for this plan
	// completes successfully.
	PostCompleteLabels map[string]string `json:"postCompleteLabels,omitempty"`
}

// SUCPlanStatus represents the resulting state from processing Plan events.
type SUCPlanStatus struct {
	Conditions []SUCCondition `json:"conditions,omitempty"`
	// The latest version, as resolved from .spec.version, or the channel server.
	LatestVersion string `json:"latestVersion,omitempty"`
	// The hash of the most recently applied plan .spec.
	LatestHash string `json:"latestHash,omitempty"`
	// List of Node names that the Plan is currently being applied on.
	Applying []string `json:"applying,omitempty"`
}

// SUCCondition is github.com/rancher/wrangler/v3 (v3.7.0 in upstream's
// go.mod) pkg/genericcondition.GenericCondition, mirrored from the
// schema of status.conditions in the CRD of the same SUC commit
// (pkg/crds/yaml/generated/upgrade.cattle.io_plans.yaml).
type SUCCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	LastUpdateTime     string `json:"lastUpdateTime,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime,omitempty"`
	Reason             string `json:"reason,omitempty"`
	Message            string `json:"message,omitempty"`
}

// SUCContainerSpec is a simplified container template spec, used to
// configure the prepare and upgrade containers of the Job Pod.
type SUCContainerSpec struct {
	// Image name. If the tag is omitted, the value from
	// .status.latestVersion will be used (pkg/upgrade/container/container.go
	// WithLatestTag) — so k3scert always names a tag.
	Image           string                  `json:"image"`
	Command         []string                `json:"command,omitempty"`
	Args            []string                `json:"args,omitempty"`
	Env             []corev1.EnvVar         `json:"envs,omitempty"`
	EnvFrom         []corev1.EnvFromSource  `json:"envFrom,omitempty"`
	Volumes         []SUCVolumeSpec         `json:"volumes,omitempty"`
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
}

// SUCVolumeSpec is a HostPath volume to mount into the pod.
type SUCVolumeSpec struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

// SUCDrainSpec encapsulates kubectl drain parameters minus node/pod selectors.
type SUCDrainSpec struct {
	Timeout                  *intstr.IntOrString   `json:"timeout,omitempty"`
	GracePeriod              *int32                `json:"gracePeriod,omitempty"`
	DeleteLocalData          *bool                 `json:"deleteLocalData,omitempty"`
	DeleteEmptydirData       *bool                 `json:"deleteEmptydirData,omitempty"`
	IgnoreDaemonSets         *bool                 `json:"ignoreDaemonSets,omitempty"`
	Force                    bool                  `json:"force,omitempty"`
	DisableEviction          bool                  `json:"disableEviction,omitempty"`
	SkipWaitForDeleteTimeout int                   `json:"skipWaitForDeleteTimeout,omitempty"`
	PodSelector              *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// SUCSecretSpec describes a Secret to be mounted for prepare/upgrade containers.
type SUCSecretSpec struct {
	Name          string `json:"name"`
	Path          string `json:"path"`
	IgnoreUpdates bool   `json:"ignoreUpdates,omitempty"`
	DefaultMode   *int32 `json:"defaultMode,omitempty"`
}

// SUCDay is a day of a time window ("0".."6", "su", "mon", "friday", ...).
type SUCDay string

// SUCTimeWindowSpec describes a time window in which a Plan should be processed.
type SUCTimeWindowSpec struct {
	Days      []SUCDay `json:"days,omitempty"`
	StartTime string   `json:"startTime,omitempty"`
	EndTime   string   `json:"endTime,omitempty"`
	TimeZone  string   `json:"timeZone,omitempty"`
}
