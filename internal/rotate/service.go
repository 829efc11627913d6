package rotate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// CommandService stops and starts K3s with shell commands: systemd,
// OpenRC, or what the user gives with --stop-cmd/--start-cmd.
type CommandService struct {
	Label     string
	StopCmd   string
	StartCmd  string
	LookupEnv func(string) string // nil: os.Getenv
}

// Name implements Service.
func (c CommandService) Name() string { return c.Label }

// Stop implements Service.
func (c CommandService) Stop(ctx context.Context) error { return sh(ctx, c.StopCmd) }

// Start implements Service.
func (c CommandService) Start(ctx context.Context) error { return sh(ctx, c.StartCmd) }

func sh(ctx context.Context, cmd string) error {
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// DetectService finds how K3s runs on this node: a systemd unit, an OpenRC
// service, or nothing (then the user must pass commands).
func DetectService(unit string) (CommandService, error) {
	if _, err := exec.LookPath("systemctl"); err == nil {
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			return CommandService{Label: "systemd unit " + unit, StopCmd: "systemctl stop " + unit, StartCmd: "systemctl start " + unit}, nil
		}
	}
	if _, err := exec.LookPath("rc-service"); err == nil {
		return CommandService{Label: "OpenRC service " + unit, StopCmd: "rc-service " + unit + " stop", StartCmd: "rc-service " + unit + " start"}, nil
	}
	return CommandService{}, fmt.Errorf("no service manager found (neither systemd nor OpenRC): pass --stop-cmd and --start-cmd")
}
