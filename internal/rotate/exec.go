package rotate

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/pki"
	corev1 "k8s.io/api/core/v1"
)

// Service stops and starts K3s on the node.
type Service interface {
	Name() string
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
}

// SecretStore reads and writes the serving secret while K3s is stopped
// (the datastore, offline). Get returns nil, nil when it does not exist.
type SecretStore interface {
	Get(ctx context.Context) (*corev1.Secret, error)
	Put(ctx context.Context, s *corev1.Secret) error
	Delete(ctx context.Context) error
	Close() error
}

// Event is progress: a step began, ended, or failed.
type Event struct {
	Step     Step
	State    string // "begin", "done", "failed", "rollback"
	Duration time.Duration
	Detail   string
	Err      error
}

// Executor runs a plan. Fields other than Plan are the node's I/O edges.
type Executor struct {
	Plan    Plan
	Service Service
	// Secrets opens the datastore (called only while K3s is stopped).
	Secrets func(ctx context.Context) (SecretStore, error)
	// Verify proves the result on the wire; nil skips verification (tests
	// of the executor itself only).
	Verify func(ctx context.Context, p Plan) error
	// Now is the clock (only cmd/ reads it; tests pass a fixed one).
	Now      func() time.Time
	Progress func(Event)
	// AfterStep is a test hook run after step i has been journaled as done;
	// an error stops the executor at once, as a kill would: no rollback, no
	// restart.
	AfterStep func(i int) error
}

// ErrKilled is what an AfterStep hook returns to simulate a crash.
var ErrKilled = errors.New("executor killed (test hook)")

// ErrInterrupted means a journal from an unfinished rotation exists.
var ErrInterrupted = errors.New("an earlier rotation was interrupted")

func (e *Executor) now() time.Time {
	if e.Now == nil {
		panic("rotate: Executor.Now is required")
	}
	return e.Now()
}

func (e *Executor) emit(ev Event) {
	if e.Progress != nil {
		e.Progress(ev)
	}
}

// Apply runs the plan from the first step. It refuses when an unfinished
// journal exists or when a file the plan was built from has changed.
func (e *Executor) Apply(ctx context.Context) error {
	if st, err := ReadJournal(e.Plan.Journal); err == nil && !st.Closed() {
		return fmt.Errorf("%w (%s): run k3scert rotate --resume to finish it or --rollback to undo it", ErrInterrupted, e.Plan.Journal)
	}
	if err := CheckInputs(e.Plan.Inputs); err != nil {
		return err
	}
	j, err := createJournal(e.Plan.Journal, e.Plan, e.now())
	if err != nil {
		return err
	}
	defer j.close()
	return e.run(ctx, j, 0, "")
}

// Resume finishes an interrupted rotation with the plan from its journal.
func Resume(ctx context.Context, e *Executor, journal string) error {
	st, err := ReadJournal(journal)
	if err != nil {
		return err
	}
	if st.Closed() {
		return fmt.Errorf("%s: the rotation already ended (%s); nothing to resume", journal, st.End)
	}
	e.Plan = st.Plan
	j, err := openJournal(journal)
	if err != nil {
		return err
	}
	defer j.close()
	j.write(record{T: "resume", At: e.now(), Step: st.NextStep})
	return e.run(ctx, j, st.NextStep, st.Backup)
}

func (e *Executor) run(ctx context.Context, j *journal, from int, backup string) error {
	for i := from; i < len(e.Plan.Steps); i++ {
		s := e.Plan.Steps[i]
		start := e.now()
		e.emit(Event{Step: s, State: "begin"})
		if err := j.write(record{T: "begin", Step: i, Name: s.Name, At: start}); err != nil {
			return err
		}
		detail, err := e.step(ctx, s, &backup)
		if err != nil {
			e.emit(Event{Step: s, State: "failed", Err: err, Duration: e.now().Sub(start)})
			j.write(record{T: "failed", Step: i, Name: s.Name, At: e.now(), Error: err.Error()})
			if i <= indexOf(e.Plan, StepStop) {
				// Nothing was written yet; K3s may still run.
				j.write(record{T: "aborted", At: e.now()})
				return fmt.Errorf("%s: %w (nothing was changed)", s.Name, err)
			}
			// Ctrl-C cancels ctx; the rollback must still run to the end.
			rerr := e.rollback(context.WithoutCancel(ctx), j, backup)
			if rerr != nil {
				return fmt.Errorf("%s: %w; rollback also failed: %v (the backup is %s; the journal %s)", s.Name, err, rerr, backup, e.Plan.Journal)
			}
			return fmt.Errorf("%s: %w; rolled back from %s", s.Name, err, backup)
		}
		rec := record{T: "done", Step: i, Name: s.Name, At: e.now(), Detail: detail}
		if s.Name == StepBackup {
			rec.Backup = backup
		}
		if err := j.write(rec); err != nil {
			return err
		}
		e.emit(Event{Step: s, State: "done", Duration: e.now().Sub(start), Detail: detail})
		if e.AfterStep != nil {
			if err := e.AfterStep(i); err != nil {
				return err
			}
		}
	}
	return j.write(record{T: "complete", At: e.now()})
}

func indexOf(p Plan, name string) int {
	for _, s := range p.Steps {
		if s.Name == name {
			return s.Index
		}
	}
	return -1
}

func (e *Executor) step(ctx context.Context, s Step, backup *string) (string, error) {
	switch s.Name {
	case StepPreflight:
		detail, err := e.preflight()
		if err != nil || e.Secrets == nil {
			return detail, err
		}
		st, err := e.Secrets(ctx)
		if err != nil {
			return "", fmt.Errorf("datastore: %w", err)
		}
		_, err = st.Get(ctx)
		st.Close()
		if err != nil {
			return "", fmt.Errorf("datastore: cannot read the serving secret: %w", err)
		}
		return detail + "; datastore readable", nil
	case StepStop:
		return "stopped " + e.Service.Name(), e.Service.Stop(ctx)
	case StepBackup:
		if *backup != "" {
			if _, err := os.Stat(*backup); err == nil {
				return "kept " + *backup, nil // resumed after the backup was taken
			}
		}
		path, err := e.backup(ctx)
		*backup = path
		return path, err
	case StepLeaves:
		return e.leaves()
	case StepListener:
		return e.listener(ctx)
	case StepListenerOnline:
		return e.listenerOnline(ctx)
	case StepStart:
		if e.Plan.ForceRestart != "" {
			// RKE2: make the static pods (kube-apiserver) restart too.
			if err := WriteAtomic(e.Plan.ForceRestart, nil, 0o600); err != nil {
				return "", err
			}
		}
		return "started " + e.Service.Name(), e.Service.Start(ctx)
	case StepVerify:
		if e.Verify == nil {
			return "verification skipped", nil
		}
		return "verified", e.Verify(ctx, e.Plan)
	}
	return "", fmt.Errorf("unknown step %q", s.Name)
}

// preflight: every CA the plan signs with is present, parses, matches its
// key and is valid now; there is room for the backup.
func (e *Executor) preflight() (string, error) {
	now := e.now()
	if len(e.Plan.BackupRoots) == 1 && e.Plan.BackupRoots[0] == "agent" {
		for _, name := range []string{"server-ca.crt", "client-ca.crt"} {
			p := e.dataPath("agent/" + name)
			b, err := os.ReadFile(p)
			if err != nil {
				return "", fmt.Errorf("agent CA copy: %w", err)
			}
			certs, err := pki.ParseCerts(b)
			if err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			if now.After(certs[0].NotAfter) {
				return "", fmt.Errorf("%s: the CA expired %s; rotate the CAs first", p, certs[0].NotAfter.UTC().Format(time.RFC3339))
			}
		}
		return "agent CA copies present and valid", nil
	}
	seen := map[string]bool{}
	for _, l := range e.Plan.Leaves {
		if seen[l.Signer] {
			continue
		}
		seen[l.Signer] = true
		ca, _, err := loadCA(l.Signer, l.CAKey)
		if err != nil {
			return "", err
		}
		if now.After(ca.NotAfter) {
			return "", fmt.Errorf("CA %s expired %s: renewing leaves with it is pointless; rotate the CA first (k3s certificate rotate-ca)", l.Signer, ca.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(e.Plan.Node.DataDir, &st); err == nil {
		free := st.Bavail * uint64(st.Bsize)
		if free < 64<<20 {
			return "", fmt.Errorf("only %d MiB free under %s; need at least 64 MiB for the backup and new files", free>>20, e.Plan.Node.DataDir)
		}
	}
	return fmt.Sprintf("%d CAs present, matching and valid", len(seen)), nil
}

func loadCA(certPath, keyPath string) (*x509.Certificate, any, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	certs, err := pki.ParseCerts(cb)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w (k3scert never creates or changes CA keys)", err)
	}
	key, _, err := pki.ParseKey(kb)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key %s: %w", keyPath, err)
	}
	if !certs[0].IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	if !pki.KeyMatches(certs[0], key) {
		return nil, nil, fmt.Errorf("CA key %s does not match CA certificate %s (the key of another CA?)", keyPath, certPath)
	}
	return certs[0], key, nil
}

// Rollback undoes an interrupted or failed rotation from its journal:
// stop K3s, restore every file and the secret from the backup, start K3s.
func Rollback(ctx context.Context, e *Executor, journal string) error {
	st, err := ReadJournal(journal)
	if err != nil {
		return err
	}
	if st.Closed() {
		return fmt.Errorf("%s: the rotation already ended (%s); restore a backup by hand if needed: %s", journal, st.End, st.Backup)
	}
	e.Plan = st.Plan
	j, err := openJournal(journal)
	if err != nil {
		return err
	}
	defer j.close()
	return e.rollback(ctx, j, st.Backup)
}

func (e *Executor) rollback(ctx context.Context, j *journal, backup string) error {
	e.emit(Event{State: "rollback", Detail: backup})
	j.write(record{T: "rollback-begin", At: e.now(), Backup: backup})
	if err := e.Service.Stop(ctx); err != nil {
		return fmt.Errorf("stop %s: %w", e.Service.Name(), err)
	}
	if backup != "" {
		if err := e.restore(ctx, backup); err != nil {
			return err
		}
	}
	if err := e.Service.Start(ctx); err != nil {
		return fmt.Errorf("start %s after restoring %s: %w", e.Service.Name(), backup, err)
	}
	return j.write(record{T: "rolledback", At: e.now(), Backup: backup})
}

// secretJSON is how the backup stores the serving secret.
type secretJSON struct {
	Absent bool           `json:"absent"`
	Secret *corev1.Secret `json:"secret,omitempty"`
}

func marshalSecret(s *corev1.Secret) ([]byte, error) {
	return json.MarshalIndent(secretJSON{Absent: s == nil, Secret: s}, "", "  ")
}

func (e *Executor) dataPath(rel string) string {
	return filepath.Join(e.Plan.Node.DataDir, filepath.FromSlash(rel))
}
