package rotate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// CommandService stops and starts K3s with shell commands: systemd,
// OpenRC, or what the user gives with --stop-cmd/--start-cmd. Every
// command honours its context: on the deadline its whole process group is
// killed, so no command can hang k3scert.
type CommandService struct {
	Label    string
	StopCmd  string
	StartCmd string
	// ActiveCmd, when set, is polled after StartCmd until it prints
	// "active" (systemd: the unit is started with --no-block, because
	// Type=notify units with TimeoutStartSec=0 block `systemctl start`
	// until READY, possibly forever). "failed" ends the wait at once.
	ActiveCmd string
	// Poll is the ActiveCmd interval (default 1s).
	Poll      time.Duration
	LookupEnv func(string) string // nil: os.Getenv
}

// Name implements Service.
func (c CommandService) Name() string { return c.Label }

// Stop implements Service.
func (c CommandService) Stop(ctx context.Context) error {
	_, err := sh(ctx, c.StopCmd)
	return err
}

// Start implements Service.
func (c CommandService) Start(ctx context.Context) error {
	if _, err := sh(ctx, c.StartCmd); err != nil {
		return err
	}
	if c.ActiveCmd == "" {
		return nil
	}
	poll := c.Poll
	if poll <= 0 {
		poll = time.Second
	}
	last := ""
	for {
		out, _ := sh(ctx, c.ActiveCmd) // is-active exits non-zero until active
		if ctx.Err() != nil {
			// The deadline cut this poll short: report the last state
			// the unit answered, not the empty output of a killed poll.
			return fmt.Errorf("%s is %q, not active: %w", c.Label, last, ctx.Err())
		}
		last = strings.TrimSpace(out)
		switch last {
		case "active":
			return nil
		case "failed":
			return fmt.Errorf("%s: the unit failed to start (see journalctl)", c.Label)
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s is %q, not active: %w", c.Label, last, ctx.Err())
		case <-t.C:
		}
	}
}

// sh runs cmd in its own process group; the context kills the group.
func sh(ctx context.Context, cmd string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 2 * time.Second // a child holding the output pipe cannot hang us
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out.String(), fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(lastLines(out.String(), 5)))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DetectService finds how K3s runs on this node: a systemd unit, an OpenRC
// service, or nothing (then the user must pass commands).
func DetectService(unit string) (CommandService, error) {
	if strings.ContainsAny(unit, " \t\n;&|$`'\"<>()\\") {
		return CommandService{}, fmt.Errorf("unit name %q: unexpected characters", unit)
	}
	if _, err := exec.LookPath("systemctl"); err == nil {
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			return CommandService{Label: "systemd unit " + unit, StopCmd: "systemctl stop " + unit,
				StartCmd: "systemctl start --no-block " + unit, ActiveCmd: "systemctl is-active " + unit}, nil
		}
	}
	if _, err := exec.LookPath("rc-service"); err == nil {
		return CommandService{Label: "OpenRC service " + unit, StopCmd: "rc-service " + unit + " stop", StartCmd: "rc-service " + unit + " start"}, nil
	}
	return CommandService{}, errors.New("no service manager found (neither systemd nor OpenRC): pass --stop-cmd and --start-cmd")
}
