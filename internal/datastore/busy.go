package datastore

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CheckNotBusy returns a *BusyError when another process holds the SQLite
// database at dbPath, nil when it is free. It looks three ways, because a
// K3s that is running, starting or stopping shows in different places:
//
//   - K3s's kine socket answers (socket may be "");
//   - another process holds a POSIX lock on the database or its -shm file
//     (every SQLite connection in WAL mode keeps a shared lock on the -shm
//     "dead man switch" byte while it is open);
//   - another process has the database, -wal or -shm file open
//     (/proc/<pid>/fd; processes of other users are invisible unless root).
//
// Locks held by this process are not seen (POSIX locks are per process).
func CheckNotBusy(dbPath, socket string) error {
	var holders []string
	if socket != "" {
		if c, err := net.DialTimeout("unix", socket, 300*time.Millisecond); err == nil {
			c.Close()
			holders = append(holders, "kine socket "+socket+" answers")
		}
	}
	for _, f := range []string{dbPath, dbPath + "-shm"} {
		if pid, ok := lockHolder(f); ok {
			holders = append(holders, fmt.Sprintf("%s holds a lock on %s", procName(pid), filepath.Base(f)))
		}
	}
	for _, pid := range openers(dbPath) {
		holders = append(holders, fmt.Sprintf("%s has it open", procName(pid)))
	}
	if len(holders) > 0 {
		return &BusyError{Path: dbPath, Holders: dedupe(holders)}
	}
	return nil
}

// lockHolder asks the kernel whether a write lock on the whole file would
// conflict with a lock of another process (F_GETLK does not take a lock).
func lockHolder(path string) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return 0, false
	}
	if lk.Type == syscall.F_UNLCK {
		return 0, false
	}
	return int(lk.Pid), true
}

// openers lists the pids (other than ours) with the database or its WAL
// files open.
func openers(dbPath string) []int {
	want := map[string]bool{dbPath: true, dbPath + "-wal": true, dbPath + "-shm": true}
	if r, err := filepath.EvalSymlinks(dbPath); err == nil {
		want[r], want[r+"-wal"], want[r+"-shm"] = true, true, true
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err == nil && want[strings.TrimSuffix(l, " (deleted)")] {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

func procName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil || len(b) == 0 {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(b)), pid)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
