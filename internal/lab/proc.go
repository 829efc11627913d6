package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bins are the upstream binaries a lab node runs.
type Bins struct {
	Kine          string
	KubeAPIServer string
	Kubectl       string
	// Supervisors are the :6443 supervisors, one per listener era, by
	// file name (Listener.Binary).
	Supervisors map[string]string
}

// ErrBinMissing means a lab binary is not built.
var ErrBinMissing = errors.New("lab binary missing")

// FindBins looks for kine, kube-apiserver and the supervisor of every
// listener era in $K3SCERT_LAB_BIN, then in bin/ of the working directory
// and its parents, and kubectl on PATH.
func FindBins() (Bins, error) {
	var dirs []string
	if d := os.Getenv("K3SCERT_LAB_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			dirs = append(dirs, filepath.Join(d, "bin"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	find := func(name string) string {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
		return ""
	}
	b := Bins{Kine: find("kine"), KubeAPIServer: find("kube-apiserver"), Supervisors: map[string]string{}}
	var missing []string
	if b.Kine == "" {
		missing = append(missing, "kine")
	}
	if b.KubeAPIServer == "" {
		missing = append(missing, "kube-apiserver")
	}
	for _, l := range Listeners {
		if p := find(l.Binary()); p != "" {
			b.Supervisors[l.Binary()] = p
		} else {
			missing = append(missing, l.Binary())
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("%w: %s not found in %s: build them once with `make lab-bin` (cold: about 7 minutes for kube-apiserver, 4 for kine, 1 for each dynamiclistener-*), or set K3SCERT_LAB_BIN",
			ErrBinMissing, strings.Join(missing, ", "), strings.Join(dirs[:min(len(dirs), 2)], ", "))
	}
	if p, err := exec.LookPath("kubectl"); err == nil {
		b.Kubectl = p
	} else {
		return b, fmt.Errorf("%w: kubectl not on PATH (Debian: apt-get install kubernetes-client)", ErrBinMissing)
	}
	return b, nil
}

// proc is one running child process. It runs in its own process group so
// that Stop ends it and anything it started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "\n=== %s start %s\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() {
		p.done <- cmd.Wait()
		lf.Close()
	}()
	return p, nil
}

// stop sends SIGTERM to the process group, waits up to grace, then kills.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports whether the process has ended (and why).
func (p *proc) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// tail returns the last n bytes of the process log, for error messages.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitPort waits until addr accepts TCP connections or the process exits.
func waitPort(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ok, err := p.exited(); ok {
			return fmt.Errorf("%s exited (%v) before listening on %s; log %s:\n%s", p.name, err, addr, p.log, p.tail(2000))
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not listen on %s within %s; log %s:\n%s", p.name, addr, timeout, p.log, p.tail(2000))
}

// FreePort returns a free loopback TCP port for a lab process. A node
// keeps its ports across restarts, so a port from the kernel's ephemeral
// range (what ":0" gives) could meanwhile become the source port of any
// outgoing connection on the machine — a restart then fails with "address
// already in use". Lab ports are therefore taken below that range
// (net.ipv4.ip_local_port_range), where the kernel never picks source
// ports, at random so that parallel lab nodes rarely meet, and checked by
// binding; ":0" is the fallback when that range is too small.
func FreePort() (int, error) {
	low := ephemeralLow()
	const floor = 15000
	if low-floor >= 1000 {
		for i := 0; i < 64; i++ {
			port := floor + rand.IntN(low-floor)
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue
			}
			l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// default 32768).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}
