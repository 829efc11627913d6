package report

import "time"

// Forecast is the result of `k3scert forecast`: what happens to every
// certificate of a node between From and To under the node's version
// profile and the planned restarts, and when the node stops answering its
// clients. `k3scert check -o html` renders a Forecast for the present.
type Forecast struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"` // "Forecast"
	Now        time.Time `json:"now"`  // when it was made (the "today" line)
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Node       Node      `json:"node"`
	// Restarts are the planned restarts (--restart-at) inside [From, To].
	// A server restart is assumed to restart the embedded agent too.
	Restarts []time.Time `json:"restarts"`
	// Assumptions say in words what the prediction takes for granted.
	Assumptions  []string              `json:"assumptions"`
	Certificates []ForecastCertificate `json:"certificates"`
	// Events are in time order.
	Events []ForecastEvent `json:"events"`
	// Actions group the events by what a user must do, most urgent first.
	Actions []ForecastAction `json:"actions"`
	// LockOut is the first lock-out inside [From, To], nil when none.
	LockOut *LockOut `json:"lockOut"`
	// LockOuts are every lock-out period inside [From, To].
	LockOuts []LockOut `json:"lockOuts"`
	// Findings are the present findings (the diagnosis at From), if any.
	Findings []Finding `json:"findings"`
	// Unknown lists what decides the lock-out but could not be read (the
	// listener certificate, the serving secret, a kubeconfig). When it is
	// not empty the forecast cannot rule a lock-out out: no "OK" is
	// printed and forecast exits 3 (UNKNOWN).
	Unknown []string `json:"unknown,omitempty"`
}

// Certificate classes: what renews a certificate. Values are API.
const (
	ClassCA             = "ca"               // never renewed by K3s
	ClassServerLeaf     = "server-leaf"      // renewed at a server start inside the renew window
	ClassAgentLeaf      = "agent-leaf"       // fetched fresh on every agent start
	ClassListener       = "listener"         // the supervisor listener certificate (dynamic-cert.json, secret, :6443)
	ClassAdminKubecfg   = "admin-kubeconfig" // k3s.yaml: rewritten from client-admin on every server start
	ClassKubeconfigCopy = "kubeconfig-copy"  // a copy made elsewhere: never updated
	ClassFollower       = "follower"         // served by a process that picks up its file at restart (:6444, :10250)
	ClassOther          = "other"            // not managed by K3s as far as k3scert knows
)

// ForecastCertificate is one certificate followed through the horizon.
type ForecastCertificate struct {
	ID       string `json:"id"` // stable key: the location
	Name     string `json:"name"`
	Source   string `json:"source"`
	Location string `json:"location"`
	Subject  string `json:"subject"`
	Class    string `json:"class"`
	// Follows is the certificate ID a follower or k3s.yaml copies at restart.
	Follows string `json:"follows,omitempty"`
	// ClientFacing certificates decide the lock-out: what the supervisor
	// serves and what clients hold.
	ClientFacing bool `json:"clientFacing"`
	// Renewal says in words what renews it under this profile.
	Renewal string `json:"renewal"`
	// WindowDays is the renew (or warning) window used for its shading.
	WindowDays int `json:"windowDays"`
	// Validities are its successive certificates, the first being the one
	// on the node at From.
	Validities []Validity `json:"validities"`
}

// Validity is one certificate's life inside the horizon.
type Validity struct {
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	WindowStart time.Time `json:"windowStart"`
	// ReplacedAt is when it was renewed, nil when it lives to the end of the
	// horizon (or expires first).
	ReplacedAt *time.Time `json:"replacedAt,omitempty"`
	// ReplacedBy is "restart" or "listener" (dynamiclistener's own renewal).
	ReplacedBy string `json:"replacedBy,omitempty"`
}

// Event types. Values are API.
const (
	EventAlreadyExpired = "already-expired" // expired at From
	EventInWindow       = "in-renew-window" // inside its window at From
	EventEntersWindow   = "enters-renew-window"
	EventExpires        = "expires"
	EventRenewed        = "renewed"
	EventRestart        = "restart"
	EventLockOut        = "lock-out"
	EventLockOutEnds    = "lock-out-ends"
)

// Actions: what a user must do. Values are API.
const (
	ActionRestartServer     = "restart-server"
	ActionRestartAgent      = "restart-agent"
	ActionRotateListener    = "rotate-listener"
	ActionRefreshKubeconfig = "refresh-kubeconfig"
	ActionRotateCA          = "rotate-ca"
	ActionInvestigate       = "investigate"
	ActionPlannedRestart    = "planned-restart" // handled by a --restart-at restart
	ActionAutomatic         = "automatic"       // K3s does it itself while running
)

// ForecastEvent is one dated thing that happens.
type ForecastEvent struct {
	At   time.Time `json:"at"`
	Type string    `json:"type"`
	Cert string    `json:"cert,omitempty"` // certificate ID
	// Action is the group the event belongs to (see Actions).
	Action string `json:"action,omitempty"`
	// NotAfter is the new expiry for a renewal, the expiry otherwise.
	NotAfter *time.Time `json:"notAfter,omitempty"`
	Message  string     `json:"message"`
}

// ForecastAction is what a user must do (or what happens by itself), with
// the certificates it concerns.
type ForecastAction struct {
	Action string `json:"action"`
	Title  string `json:"title"`
	Remedy string `json:"remedy"`
	// Required is false for planned and automatic renewals.
	Required bool `json:"required"`
	// ActFrom is the earliest useful moment (the renew window opens), and
	// Deadline the first expiry the action prevents; nil when not required.
	ActFrom      *time.Time `json:"actFrom,omitempty"`
	Deadline     *time.Time `json:"deadline,omitempty"`
	Certificates []string   `json:"certificates"`
	Events       int        `json:"events"`
}

// LockOut is a period during which the node does not answer its clients:
// some certificate the supervisor serves, or a client holds, has expired.
type LockOut struct {
	At time.Time `json:"at"`
	// Until is when a planned restart ends it; nil when it lasts past To.
	Until *time.Time `json:"until,omitempty"`
	// Causes are the certificate IDs expired during it, first expired first.
	Causes  []string `json:"causes"`
	Message string   `json:"message"`
}
