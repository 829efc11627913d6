package rotate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
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
	State    string // "begin", "done", "failed", "rollback", "warning"
	Duration time.Duration
	Detail   string
	Err      error
}

// DefaultStartTimeout bounds every start (and stop) of K3s. K3s and RKE2
// units are Type=notify with TimeoutStartSec=0: without a deadline a
// start that never becomes ready would hang the rotation and its rollback.
const DefaultStartTimeout = 5 * time.Minute

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
	// StartTimeout is the deadline of every start and stop of K3s, in the
	// rotation and in the rollback (0: DefaultStartTimeout).
	StartTimeout time.Duration
	// Command is recorded in the lock file for a second invocation to see.
	Command string
	// BeforeStep is a test hook run as step i begins, after its begin
	// record (fault injection).
	BeforeStep func(i int)
	// AfterStep is a test hook run after step i has been journaled as done;
	// an error stops the executor at once, as a kill would: no rollback, no
	// restart, the lock record left unreleased.
	AfterStep func(i int) error

	lock *Lock
	// secretWritten: this run wrote or deleted the serving secret (a
	// rollback in the same run need not touch an unwritten secret).
	secretWritten bool
	secretKnown   bool // this process ran every step that could write it
	onlineKept    int  // copies of the secret kept before the listener-online step
}

// keptSecrets counts the copies of the secret listener-online keeps
// before it writes through the API.
func (e *Executor) keptSecrets() int {
	m, _ := filepath.Glob(filepath.Join(e.Plan.BackupDir, "listener-secret-*.json"))
	return len(m)
}

// trackedStore notes a successful write of the secret.
type trackedStore struct {
	SecretStore
	written *bool
}

func (t trackedStore) Put(ctx context.Context, s *corev1.Secret) error {
	err := t.SecretStore.Put(ctx, s)
	if err == nil {
		*t.written = true
	}
	return err
}

func (t trackedStore) Delete(ctx context.Context) error {
	err := t.SecretStore.Delete(ctx)
	if err == nil {
		*t.written = true
	}
	return err
}

// ErrKilled is what an AfterStep hook returns to simulate a crash.
var ErrKilled = errors.New("executor killed (test hook)")

// ErrInterrupted means a journal from an unfinished rotation exists.
var ErrInterrupted = errors.New("an earlier rotation was interrupted")

// ErrNoJournal means there is no rotation to resume or roll back.
var ErrNoJournal = errors.New("no rotation journal")

// Where the node ends up after a failure.
const (
	CertsOld   = "old"   // the node's certificates are as before the rotation
	CertsNew   = "new"   // the renewed certificates are in place
	CertsMixed = "mixed" // some entries could not be put back
)

// Outcome is the end state of a failed rotation.
type Outcome struct {
	Certs     string // CertsOld, CertsNew or CertsMixed
	Running   bool   // K3s was started again (or never stopped)
	Identical bool   // every backed-up entry is as the backup recorded it
	Stopped   bool   // K3s was stopped by this run
	// RolledBack names the backup a rollback restored from.
	RolledBack string
	Problems   []string // what could not be put back, or why K3s is not running
}

func (o Outcome) String() string {
	var b strings.Builder
	switch {
	case o.Running && !o.Stopped:
		b.WriteString("K3s was never stopped and runs on its old certificates")
	case o.Running && o.RolledBack != "":
		fmt.Fprintf(&b, "rolled back from %s: K3s is running again on its %s certificates", o.RolledBack, strings.ToUpper(o.Certs))
	case o.Running:
		fmt.Fprintf(&b, "K3s is running again on its %s certificates", strings.ToUpper(o.Certs))
	default:
		fmt.Fprintf(&b, "K3s is NOT running (%s certificates on disk)", strings.ToUpper(o.Certs))
	}
	if o.Identical {
		b.WriteString("; the node is identical to before")
	}
	for _, p := range o.Problems {
		b.WriteString("; " + p)
	}
	return b.String()
}

// RunError is a rotation that failed at a step, with where it left the node.
type RunError struct {
	Step    string
	Err     error
	Outcome Outcome
	Backup  string
	Journal string
}

func (e *RunError) Error() string {
	s := fmt.Sprintf("%s: %v; %s", e.Step, e.Err, e.Outcome)
	if e.Backup != "" && !e.Outcome.Identical {
		s += fmt.Sprintf(" (the backup is %s; the journal %s)", e.Backup, e.Journal)
	}
	return s
}

func (e *RunError) Unwrap() error { return e.Err }

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

func (e *Executor) startTimeout() time.Duration {
	if e.StartTimeout > 0 {
		return e.StartTimeout
	}
	return DefaultStartTimeout
}

// acquire takes the data dir's rotation lock for the whole run; a dead
// previous holder is reported, never silently forgotten.
func (e *Executor) acquire(journal string) error {
	l, err := AcquireLock(e.Plan.Node.DataDir, LockOwner{PID: os.Getpid(), Started: e.now().UTC(), Command: e.Command})
	if err != nil {
		return err
	}
	e.lock = l
	if l.Stale != nil {
		e.emit(Event{State: "warning", Detail: StaleReport(l.Stale, journal)})
	}
	return nil
}

// release drops the lock; after a simulated kill it is abandoned as a
// dying process would.
func (e *Executor) release(err *error) {
	if errors.Is(*err, ErrKilled) {
		e.lock.abandon()
	} else {
		e.lock.Release()
	}
	e.lock = nil
}

// Apply runs the plan from the first step. It refuses when another
// rotation holds the lock, when an unfinished journal exists, or when a
// file the plan was built from has changed.
func (e *Executor) Apply(ctx context.Context) (err error) {
	if len(e.Plan.Steps) == 0 || e.Plan.Node.DataDir == "" {
		return errors.New("the plan has no steps or no data dir: nothing to do")
	}
	if err := e.acquire(e.Plan.Journal); err != nil {
		return err
	}
	stale := e.lock.Stale
	defer e.release(&err)
	if st, err := ReadJournal(e.Plan.Journal); err == nil && !st.Closed() {
		extra := ""
		if stale != nil {
			extra = "; " + StaleReport(stale, e.Plan.Journal)
		}
		return fmt.Errorf("%w (%s): run k3scert rotate --resume to finish it or --rollback to undo it%s", ErrInterrupted, e.Plan.Journal, extra)
	}
	if err := CheckInputs(e.Plan.Inputs); err != nil {
		return err
	}
	j, err := createJournal(e.Plan.Journal, e.Plan, e.now())
	if err != nil {
		return &RunError{Step: StepPreflight, Err: fmt.Errorf("cannot write the journal: %w (nothing was changed)", e.explain(err)),
			Outcome: Outcome{Certs: CertsOld, Running: true, Identical: true}, Journal: e.Plan.Journal}
	}
	defer j.close()
	return e.run(ctx, j, 0, "")
}

// Resume finishes an interrupted rotation with the plan from its journal.
func Resume(ctx context.Context, e *Executor, journal string) (err error) {
	st, err := readJournalFor(journal, "resume")
	if err != nil {
		return err
	}
	e.Plan = st.Plan
	if err := e.acquire(journal); err != nil {
		return err
	}
	defer e.release(&err)
	if st, err = readJournalFor(journal, "resume"); err != nil { // again, under the lock
		return err
	}
	if st.Closed() {
		return fmt.Errorf("%s: the rotation already ended (%s); nothing to resume", journal, st.End)
	}
	if len(st.Plan.Steps) == 0 {
		// Not a plan k3scert makes: do not call it finished. Make sure
		// K3s runs, and say what happened.
		serr := e.start(ctx)
		state := "K3s was started"
		if serr != nil {
			state = "K3s could not be started: " + serr.Error()
		}
		return fmt.Errorf("%s: the journal's plan has no steps (damaged or not written by k3scert); nothing was resumed; %s", journal, state)
	}
	j, err := openJournal(journal)
	if err != nil {
		return err
	}
	defer j.close()
	j.write(record{T: "resume", At: e.now(), Step: st.NextStep})
	return e.run(ctx, j, st.NextStep, st.Backup)
}

func readJournalFor(journal, what string) (JournalState, error) {
	st, err := ReadJournal(journal)
	if errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("%w at %s: there is no interrupted rotation to %s", ErrNoJournal, journal, what)
	}
	return st, err
}

func (e *Executor) run(ctx context.Context, j *journal, from int, backup string) error {
	if open := e.Secrets; open != nil {
		e.Secrets = func(ctx context.Context) (SecretStore, error) {
			st, err := open(ctx)
			if err != nil {
				return nil, err
			}
			return trackedStore{SecretStore: st, written: &e.secretWritten}, nil
		}
		defer func() { e.Secrets = open }()
	}
	e.secretKnown = from == 0
	for i := from; i < len(e.Plan.Steps); i++ {
		s := e.Plan.Steps[i]
		e.lock.SetStep(s.Name)
		start := e.now()
		e.emit(Event{Step: s, State: "begin"})
		var detail string
		err := j.write(record{T: "begin", Step: i, Name: s.Name, At: start})
		if err == nil {
			if e.BeforeStep != nil {
				e.BeforeStep(i)
			}
			detail, err = e.step(ctx, s, &backup)
		}
		if err == nil {
			rec := record{T: "done", Step: i, Name: s.Name, At: e.now(), Detail: detail}
			if s.Name == StepBackup {
				rec.Backup = backup
			}
			err = j.write(rec)
		}
		if err != nil {
			if errors.Is(err, datastore.ErrConflict) || s.Name == StepListener || s.Name == StepBackup {
				// Write failures that do not name their cause.
				err = e.explain(err)
			}
			e.emit(Event{Step: s, State: "failed", Err: err, Duration: e.now().Sub(start)})
			j.write(record{T: "failed", Step: i, Name: s.Name, At: e.now(), Error: err.Error()})
			return e.fail(ctx, j, s, err, backup)
		}
		e.emit(Event{Step: s, State: "done", Duration: e.now().Sub(start), Detail: detail})
		if e.AfterStep != nil {
			if err := e.AfterStep(i); err != nil {
				return err
			}
		}
	}
	e.releaseReserve()
	return j.write(record{T: "complete", At: e.now()})
}

// fail ends a failed run so that K3s runs: before the stop nothing
// happened; before a backup exists nothing was changed and K3s is only
// started again; after it the node is rolled back.
func (e *Executor) fail(ctx context.Context, j *journal, s Step, err error, backup string) error {
	ctx = context.WithoutCancel(ctx) // Ctrl-C: the recovery still runs (each start has its deadline)
	re := &RunError{Step: s.Name, Err: err, Backup: backup, Journal: e.Plan.Journal}
	stop := indexOf(e.Plan, StepStop)
	switch {
	case s.Name == StepListenerOnline && e.keptSecrets() > e.onlineKept:
		// K3s still runs; the step got as far as keeping the secret, so
		// it may have been renewed through the API (still valid: same CA,
		// names and key).
		j.write(record{T: "aborted", At: e.now()})
		re.Outcome = Outcome{Certs: CertsOld, Running: true,
			Problems: []string{"the serving secret may have been renewed through the API (valid, same CA, names and key); the secret as it was is kept in " + e.Plan.BackupDir}}
		return re
	case s.Index < stop:
		j.write(record{T: "aborted", At: e.now()})
		re.Outcome = Outcome{Certs: CertsOld, Running: true, Identical: true}
		re.Err = fmt.Errorf("%w (nothing was changed)", err)
		return re
	case backup == "":
		// Stopped (or the stop failed) and nothing written: start again.
		e.releaseReserve()
		re.Outcome = Outcome{Certs: CertsOld, Identical: true, Stopped: true}
		if serr := e.start(ctx); serr != nil {
			re.Outcome.Problems = append(re.Outcome.Problems, "start: "+serr.Error())
		} else {
			re.Outcome.Running = true
			j.write(record{T: "aborted", At: e.now()})
		}
		re.Err = fmt.Errorf("%w (nothing was changed)", err)
		return re
	}
	re.Outcome = e.rollback(ctx, j, backup)
	return re
}

func indexOf(p Plan, name string) int {
	for _, s := range p.Steps {
		if s.Name == name {
			return s.Index
		}
	}
	return -1
}

// start starts K3s within the start deadline; on RKE2 force-restart is
// written first so the static pods restart with the files on disk.
func (e *Executor) start(ctx context.Context) error {
	if e.Plan.ForceRestart != "" {
		if err := WriteAtomic(e.Plan.ForceRestart, nil, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", e.Plan.ForceRestart, err)
		}
	}
	return e.withDeadline(ctx, "start", e.Service.Start)
}

func (e *Executor) stop(ctx context.Context) error {
	return e.withDeadline(ctx, "stop", e.Service.Stop)
}

func (e *Executor) withDeadline(ctx context.Context, what string, f func(context.Context) error) error {
	d := e.startTimeout()
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(cctx) }()
	select {
	case err := <-done:
		if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s %s did not finish within %v (--start-timeout): %w", what, e.Service.Name(), d, err)
		}
		return err
	case <-cctx.Done():
		// A Service that ignores its context must not hang k3scert.
		return fmt.Errorf("%s %s did not finish within %v (--start-timeout)", what, e.Service.Name(), d)
	}
}

func (e *Executor) step(ctx context.Context, s Step, backup *string) (string, error) {
	switch s.Name {
	case StepPreflight:
		return e.preflight(ctx)
	case StepStop:
		return "stopped " + e.Service.Name(), e.stop(ctx)
	case StepBackup:
		if *backup != "" {
			if _, err := os.Stat(*backup); err == nil {
				return "kept " + *backup, nil // resumed after the backup was taken
			}
		}
		path, err := e.backup(ctx)
		if err != nil {
			return "", err
		}
		*backup = path
		return path, nil
	case StepLeaves:
		d, err := e.leaves()
		if err == nil {
			err = e.settle(*backup)
		}
		return d, err
	case StepListener:
		d, err := e.listener(ctx)
		if err == nil {
			err = e.settle(*backup)
		}
		return d, err
	case StepListenerOnline:
		e.onlineKept = e.keptSecrets()
		return e.listenerOnline(ctx)
	case StepStart:
		return "started " + e.Service.Name(), e.start(ctx)
	case StepVerify:
		if e.Verify == nil {
			return "verification skipped", nil
		}
		return "verified", e.Verify(ctx, e.Plan)
	}
	return "", fmt.Errorf("unknown step %q", s.Name)
}

// settle gives every file the rotation rewrote its recorded owner and
// group back, keeps its recorded mode, and never leaves a private key
// readable by others: keys are written 0600.
func (e *Executor) settle(backup string) error {
	if backup == "" {
		return nil
	}
	m, err := ReadManifest(backup)
	if err != nil {
		return nil // an older backup: nothing recorded to settle against
	}
	rec := map[string]Entry{}
	for _, en := range m.Entries {
		rec[en.Path] = en
	}
	keys := map[string]bool{}
	for _, l := range e.Plan.Leaves {
		keys[l.Key] = true
	}
	paths := []string{e.Plan.ListenerJSON}
	for _, l := range e.Plan.Leaves {
		paths = append(paths, l.Cert, l.Key)
	}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		en, ok := rec[p]
		if ok && en.Kind == EntryFile {
			if u, g := ownerOf(fi); u != en.UID || g != en.GID {
				if err := os.Chown(p, en.UID, en.GID); err != nil {
					return err
				}
			}
		}
		mode := permOf(fi)
		if ok && en.Kind == EntryFile {
			mode = en.Mode
		}
		if keys[p] || p == e.Plan.ListenerJSON {
			mode = 0o600
		}
		if mode != permOf(fi) {
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// preflight: every CA the plan signs with is present, parses, matches its
// key and is valid now; every entry of the backup can be restored
// exactly; there is room for the backup, the new files and a rollback;
// the backup directory and the datastore can be written.
func (e *Executor) preflight(ctx context.Context) (string, error) {
	detail, err := e.preflightCAs()
	if err != nil {
		return "", err
	}
	entries, err := Survey(BackupScope(e.Plan))
	if err != nil {
		return "", err
	}
	var secretBytes int64
	if e.Secrets != nil {
		st, err := e.Secrets(ctx)
		if err != nil {
			return "", fmt.Errorf("datastore: %w", err)
		}
		sec, err := st.Get(ctx)
		st.Close()
		if err != nil {
			return "", fmt.Errorf("datastore: cannot read the serving secret: %w", err)
		}
		if sj, err := marshalSecret(sec); err == nil {
			secretBytes = int64(len(sj))
		}
		switch {
		case e.Plan.Listener == ListenerAdopt:
			// Checked before anything stops: adopting needs a renewed secret.
			if !IsStaticListener(sec) {
				if _, err := e.adoptable(sec); err != nil {
					return "", err
				}
			}
			detail += "; the shared secret is renewed and adoptable"
		case e.Plan.ExternalDatastore:
			detail += "; external datastore readable"
		default:
			if err := probeWritable(filepath.Join(e.Plan.Node.DataDir, "server", "db"), "state.db"); err != nil {
				return "", fmt.Errorf("the datastore cannot be written: %w", err)
			}
			detail += "; datastore readable and writable"
		}
	}
	need, err := e.checkSpace(entries, secretBytes)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s; %d entries to back up (%s needed, checked)", detail, len(entries), human(need)), nil
}

func (e *Executor) preflightCAs() (string, error) {
	now := e.now()
	if len(e.Plan.BackupRoots) == 1 && e.Plan.BackupRoots[0] == "agent" {
		for _, name := range []string{"server-ca.crt", "client-ca.crt"} {
			p := e.dataPath("agent/" + name)
			b, err := source.ReadFile(p)
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
	return fmt.Sprintf("%d CAs present, matching and valid", len(seen)), nil
}

// checkSpace estimates what the rotation writes — the backup, the
// rollback reservation (as large as the backup), the new files and a
// margin — and checks it against the free space of each file system.
func (e *Executor) checkSpace(entries []Entry, secretBytes int64) (int64, error) {
	const margin = 1 << 20
	backup := BackupSize(entries, secretBytes)
	var rewrite int64
	written := map[string]bool{e.Plan.ListenerJSON: true}
	for _, l := range e.Plan.Leaves {
		written[l.Cert], written[l.Key] = true, true
	}
	for _, en := range entries {
		if written[en.Path] {
			rewrite += en.Size + 4096
		}
	}
	backupFS, err := fsOf(e.Plan.BackupDir)
	if err != nil {
		return 0, fmt.Errorf("backup directory %s: %w", e.Plan.BackupDir, err)
	}
	dataFS, err := fsOf(e.Plan.Node.DataDir)
	if err != nil {
		return 0, err
	}
	needs := map[fsInfo]int64{}
	needs[backupFS] += 2*backup + margin // the backup and the reservation
	needs[dataFS] += rewrite + margin
	total := int64(0)
	for fsi, need := range needs {
		total += need
		if fsi.free < need {
			return 0, fmt.Errorf("not enough free space under %s: the rotation needs %s (backup %s, rollback reservation %s, new files %s, margin 1 MiB), %s free",
				fsi.path, human(need), human(backup), human(backup), human(rewrite), human(fsi.free))
		}
	}
	if fi, err := os.Stat(e.Plan.BackupDir); err == nil && !fi.IsDir() {
		return 0, fmt.Errorf("the backup directory %s is not a directory", e.Plan.BackupDir)
	}
	if err := probeWritable(e.Plan.BackupDir, ""); err != nil {
		return 0, fmt.Errorf("the backup directory cannot be written: %w", err)
	}
	return total, nil
}

type fsInfo struct {
	dev  uint64
	path string
	free int64
}

// fsOf: the file system holding p (or its nearest existing parent).
func fsOf(p string) (fsInfo, error) {
	for {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil {
			var sf syscall.Statfs_t
			if err := syscall.Statfs(p, &sf); err != nil {
				return fsInfo{}, err
			}
			return fsInfo{dev: uint64(st.Dev), path: p, free: int64(sf.Bavail) * int64(sf.Bsize)}, nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fsInfo{}, fmt.Errorf("%s: no such directory", p)
		}
		p = parent
	}
}

// probeWritable proves dir (or its nearest existing parent) takes a new
// file, and that file (when given) opens for writing, without changing
// either: immutable (chattr +i) and read-only mounts are caught here.
func probeWritable(dir, file string) error {
	d := dir
	for {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("%s: no such directory", dir)
		}
		d = parent
	}
	f, err := os.CreateTemp(d, ".k3scert-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return err
	}
	if file != "" {
		p := filepath.Join(dir, file)
		f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if f != nil {
			f.Close()
		}
	}
	return nil
}

func human(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// explain turns what a write failure looks like into its cause: kine
// reports a failed SQLite write (full disk, read-only file) as a
// revision conflict, and a full disk must never be called a conflict.
func (e *Executor) explain(err error) error {
	if err == nil || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	var le *LockedError
	if errors.As(err, &le) {
		return err
	}
	dirs := []struct{ dir, file string }{
		{filepath.Join(e.Plan.Node.DataDir, "server", "db"), "state.db"},
		{filepath.Join(e.Plan.Node.DataDir, "server", "tls"), ""},
		{e.Plan.BackupDir, ""},
		{filepath.Dir(e.Plan.Journal), ""},
	}
	for _, d := range dirs {
		if fi, serr := os.Stat(d.dir); serr != nil || !fi.IsDir() {
			continue
		}
		if perr := probeWritable(d.dir, d.file); perr != nil {
			return &causeError{cause: fmt.Errorf("%s: %w", d.dir, perr), reported: err}
		}
		if perr := probeSpace(d.dir); perr != nil {
			return &causeError{cause: fmt.Errorf("%s: %w", d.dir, perr), reported: err}
		}
	}
	return err
}

// probeSpace writes 64 KiB and removes it: a full disk shows as ENOSPC.
func probeSpace(dir string) error {
	f, err := os.CreateTemp(dir, ".k3scert-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(make([]byte, 64<<10)); err != nil {
		return err
	}
	return f.Sync()
}

// causeError is a failure with its real cause first.
type causeError struct{ cause, reported error }

func (c *causeError) Error() string {
	if errors.Is(c.reported, datastore.ErrConflict) {
		return fmt.Sprintf("%v (the datastore write failed; kine reported it as: %v)", c.cause, c.reported)
	}
	return fmt.Sprintf("%v (%v)", c.cause, c.reported)
}

func (c *causeError) Unwrap() []error { return []error{c.cause, c.reported} }

func loadCA(certPath, keyPath string) (*x509.Certificate, any, error) {
	cb, err := source.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	certs, err := pki.ParseCerts(cb)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate %s: %w", certPath, err)
	}
	kb, err := source.ReadFile(keyPath)
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
// stop K3s, restore every recorded entry and the secret from the backup,
// start K3s. It holds the rotation lock.
func Rollback(ctx context.Context, e *Executor, journal string) (err error) {
	st, err := readJournalFor(journal, "roll back")
	if err != nil {
		return err
	}
	e.Plan = st.Plan
	e.secretKnown = false
	if e.Plan.Node.DataDir == "" {
		return fmt.Errorf("%s: the journal's plan names no data dir (damaged?)", journal)
	}
	if err := e.acquire(journal); err != nil {
		return err
	}
	defer e.release(&err)
	if st, err = readJournalFor(journal, "roll back"); err != nil {
		return err
	}
	if st.Closed() {
		return fmt.Errorf("%s: the rotation already ended (%s); restore a backup by hand if needed: %s", journal, st.End, st.Backup)
	}
	j, err := openJournal(journal)
	if err != nil {
		return err
	}
	defer j.close()
	o := e.rollback(ctx, j, st.Backup)
	if !o.Running || len(o.Problems) > 0 {
		return &RunError{Step: "rollback", Err: errors.New("the rollback did not end cleanly"), Outcome: o, Backup: st.Backup, Journal: journal}
	}
	return nil
}

// rollback stops K3s, frees the reservation, restores the backup,
// writes force-restart (RKE2) and starts K3s, each start and stop with
// its deadline. It always tries to leave K3s running and says on what.
func (e *Executor) rollback(ctx context.Context, j *journal, backup string) Outcome {
	e.lock.SetStep("rollback")
	e.emit(Event{State: "rollback", Detail: backup})
	j.write(record{T: "rollback-begin", At: e.now(), Backup: backup})
	o := Outcome{Stopped: true, Certs: CertsNew}
	if err := e.stop(ctx); err != nil {
		o.Problems = append(o.Problems, "stop before the restore failed (restoring anyway): "+err.Error())
	}
	e.releaseReserve()
	if backup == "" {
		o.Certs, o.Identical = CertsOld, true // nothing was written before a backup existed
	} else if rep, err := e.restore(ctx, backup); err != nil {
		if rep.Rewritten+rep.Removed == 0 && len(rep.Problems) == 0 {
			// The backup could not be read: nothing was put back.
			o.Problems = append(o.Problems, "restore: "+err.Error())
		} else {
			o.Certs = CertsMixed
			o.Problems = append(o.Problems, err.Error())
		}
	} else {
		o.Certs, o.RolledBack = CertsOld, backup
	}
	if backup != "" {
		if m, err := ReadManifest(backup); err == nil {
			diffs := Differences(m)
			o.Identical = len(diffs) == 0
			if !o.Identical && o.Certs == CertsOld {
				o.Certs = CertsMixed
				o.Problems = append(o.Problems, "not as before: "+strings.Join(diffs, "; "))
			}
		}
	}
	if err := e.start(ctx); err != nil {
		o.Problems = append(o.Problems, "start after the restore failed: "+err.Error())
		return o
	}
	o.Running = true
	if len(o.Problems) == 0 {
		j.write(record{T: "rolledback", At: e.now(), Backup: backup})
	}
	return o
}

func (e *Executor) dataPath(rel string) string {
	return filepath.Join(e.Plan.Node.DataDir, filepath.FromSlash(rel))
}
