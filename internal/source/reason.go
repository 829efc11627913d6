package source

import (
	"errors"
	"io/fs"
	"syscall"
)

// Reason is a stable snake_case code for why a source failed. Reasons are
// part of the JSON output and of metric labels: never rename one.
type Reason string

// The reasons.
const (
	ReasonNotFound    Reason = "not_found"
	ReasonPermission  Reason = "permission_denied"
	ReasonTooLarge    Reason = "too_large"
	ReasonSymlinkLoop Reason = "symlink_loop"
	ReasonNotRegular  Reason = "not_regular_file"
	ReasonReadError   Reason = "read_error"
	ReasonBadPEM      Reason = "bad_pem"
	ReasonBadCert     Reason = "bad_certificate"
	ReasonBadKey      Reason = "bad_key"
	ReasonBadJSON     Reason = "bad_json"
	ReasonBadYAML     Reason = "bad_kubeconfig"
	ReasonUnreachable Reason = "unreachable"
	ReasonTLS         Reason = "tls_error"
	ReasonSecret      Reason = "secret_unavailable"
)

// AllReasons lists every reason, so metrics can start each series at zero.
var AllReasons = []Reason{ReasonNotFound, ReasonPermission, ReasonTooLarge, ReasonSymlinkLoop,
	ReasonNotRegular, ReasonReadError, ReasonBadPEM, ReasonBadCert, ReasonBadKey, ReasonBadJSON,
	ReasonBadYAML, ReasonUnreachable, ReasonTLS, ReasonSecret}

// ReasonFor is the reason of a ReadFile (or os) error, for readers outside
// this package (config.yaml in internal/check).
func ReasonFor(err error) Reason { return classifyReadError(err) }

// classifyReadError maps a read error to a reason with errors.Is.
func classifyReadError(err error) Reason {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ReasonNotFound
	case errors.Is(err, fs.ErrPermission):
		return ReasonPermission
	case errors.Is(err, errTooLarge):
		return ReasonTooLarge
	case errors.Is(err, syscall.ELOOP):
		return ReasonSymlinkLoop
	case errors.Is(err, ErrNotRegular), errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENXIO):
		// ENXIO: open(2) of a UNIX socket, or of a FIFO for writing.
		return ReasonNotRegular
	}
	return ReasonReadError
}
