package rotate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockName is the rotation lock in the data dir: one rotation (or
// --resume, or --rollback) at a time per data dir.
const LockName = ".k3scert-rotate.lock"

// LockPath is the lock file of a data dir.
func LockPath(dataDir string) string { return filepath.Join(dataDir, LockName) }

// LockOwner is the record the holder keeps in the lock file. flock(2) is
// what excludes; the record only says who holds (or held) it.
type LockOwner struct {
	PID      int       `json:"pid"`
	Started  time.Time `json:"started"`
	Command  string    `json:"command"`
	Step     string    `json:"step,omitempty"`
	Released bool      `json:"released"`
}

func (o LockOwner) String() string {
	s := fmt.Sprintf("pid %d, started %s, command %q", o.PID, o.Started.UTC().Format(time.RFC3339), o.Command)
	if o.Step != "" {
		s += ", at step " + o.Step
	}
	return s
}

// ErrLocked means another k3scert holds the data dir's rotation lock.
var ErrLocked = errors.New("another k3scert rotation is running on this data dir")

// LockedError says who holds the lock.
type LockedError struct {
	Path  string
	Owner *LockOwner // nil when the record cannot be read
}

func (e *LockedError) Error() string {
	who := "the owner record is unreadable"
	if e.Owner != nil {
		who = "held by " + e.Owner.String()
	}
	return fmt.Sprintf("%v: %s is %s; wait for it to end (nothing was changed)", ErrLocked, e.Path, who)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is a held rotation lock.
type Lock struct {
	f     *os.File
	owner LockOwner
	// Stale is the record of a previous holder that died holding the lock
	// (the kernel released the flock; the record says it was never
	// released). Nil when the previous holder ended cleanly.
	Stale *LockOwner
}

// AcquireLock takes the rotation lock of dataDir without waiting. If
// another process holds it, the error is a *LockedError naming the
// holder. A previous holder that died is reported in Lock.Stale, never
// silently forgotten.
func AcquireLock(dataDir string, owner LockOwner) (*Lock, error) {
	p := LockPath(dataDir)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rotation lock: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("rotation lock %s is not a regular file", p)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("rotation lock %s: %w", p, err)
		}
		defer f.Close()
		return nil, &LockedError{Path: p, Owner: holder(f)}
	}
	l := &Lock{f: f, owner: owner}
	if prev := readOwner(f); prev != nil && !prev.Released {
		l.Stale = prev
	}
	l.write()
	return l, nil
}

// holder reads the record of the process that holds the lock. The holder
// writes it in place right after taking the lock, so for a moment the
// file may still be empty, hold the previous (released) record, or be
// caught between the write and the truncate: read again for up to a
// second before saying the record is unreadable.
func holder(f *os.File) *LockOwner {
	for i := 0; ; i++ {
		if o := readOwner(f); o != nil && !o.Released {
			return o
		}
		if i == 50 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readOwner(f *os.File) *LockOwner {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 64<<10))
	if err != nil || len(b) == 0 {
		return nil
	}
	var o LockOwner
	if json.Unmarshal(b, &o) != nil {
		return nil
	}
	return &o
}

// write replaces the record in place (the lock file must keep its inode).
// Failures are ignored: the record is advisory, flock is what excludes.
func (l *Lock) write() {
	b, _ := json.Marshal(l.owner)
	b = append(b, '\n')
	if _, err := l.f.WriteAt(b, 0); err == nil {
		l.f.Truncate(int64(len(b)))
		l.f.Sync()
	}
}

// SetStep records the step the holder is at.
func (l *Lock) SetStep(step string) {
	if l == nil {
		return
	}
	l.owner.Step = step
	l.write()
}

// Release marks the record released and drops the lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	l.owner.Released = true
	l.write()
	l.f.Close() // closing the descriptor drops the flock
	l.f = nil
}

// abandon drops the lock as a dying process would: the record stays
// unreleased (the crash tests' simulated kill).
func (l *Lock) abandon() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
}

// StaleReport describes a dead previous holder with what its journal
// says, for the operator.
func StaleReport(o *LockOwner, journal string) string {
	s := fmt.Sprintf("previous holder pid %d (started %s, %q) died", o.PID, o.Started.UTC().Format(time.RFC3339), o.Command)
	if o.Step != "" {
		s += " at step " + o.Step
	}
	st, err := ReadJournal(journal)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s += "; there is no journal"
	case err != nil:
		s += "; journal: " + err.Error()
	case st.Closed():
		s += fmt.Sprintf("; journal %s says the rotation ended (%s)", journal, st.End)
	default:
		s += fmt.Sprintf("; journal %s says it completed %d of %d steps", journal, len(st.Done), len(st.Plan.Steps))
		if st.Failed != "" {
			s += ", last error: " + st.Failed
		}
	}
	return s
}
