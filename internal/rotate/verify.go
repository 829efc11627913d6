package rotate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/kube"
	"github.com/k3scert/k3scert/internal/report"
	"k8s.io/client-go/tools/clientcmd"
)

// Verifier proves a rotation on the wire: the node's endpoints serve
// certificates valid now and VerifyDays ahead, the renewed admin
// credentials reach the API, and check finds nothing critical.
type Verifier struct {
	Check   check.Options // DataDir, Program, Profile, Endpoints, Ports...
	Now     func() time.Time
	Timeout time.Duration // how long to wait for the API; default 90s
}

// Verify implements Executor.Verify.
func (v Verifier) Verify(ctx context.Context, p Plan) error {
	timeout := v.Timeout
	if timeout == 0 {
		timeout = 90 * time.Second
	}
	var last error
	deadline := v.Now().Add(timeout)
	for {
		last = v.once(ctx, p)
		if last == nil || v.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		time.Sleep(time.Second)
	}
}

func (v Verifier) once(ctx context.Context, p Plan) error {
	now := v.Now().UTC().Truncate(time.Second)
	if p.Kubeconfig != "" {
		if err := apiReady(ctx, p.Kubeconfig); err != nil {
			return fmt.Errorf("the renewed admin credentials (%s) do not reach the API: %w", p.Kubeconfig, err)
		}
	}
	for _, at := range []time.Time{now, now.Add(time.Duration(p.VerifyDays) * 24 * time.Hour)} {
		o := v.Check
		o.At = at
		r, _, err := check.Run(ctx, o)
		if err != nil {
			return err
		}
		served := 0
		for _, c := range r.Certificates {
			if c.Source == "file" && c.Index == 0 && !c.IsCA && strings.Contains(c.Location, "/agent/") &&
				(c.Status == "EXPIRED" || c.Status == "NOT YET VALID") {
				return fmt.Errorf("%s is %s at %s (notAfter %s): the agent did not fetch a fresh certificate", c.Location, c.Status, at.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
			}
			if c.Source == "endpoint" && c.Index == 0 {
				served++
				if c.Status == "EXPIRED" || c.Status == "NOT YET VALID" {
					return fmt.Errorf("%s serves a certificate that is %s at %s (notAfter %s)", c.Location, c.Status, at.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
				}
			}
		}
		if served == 0 && p.Node.Role != "agent" {
			return fmt.Errorf("no endpoint answered at %s", strings.Join(o.Endpoints, ", "))
		}
		if at.Equal(now) {
			var crit []string
			for _, f := range r.Findings {
				if f.Severity == report.Critical {
					crit = append(crit, f.Code+" "+f.Location)
				}
			}
			if len(crit) > 0 {
				return fmt.Errorf("check still finds %d critical problems: %s", len(crit), strings.Join(crit, "; "))
			}
		}
	}
	return nil
}

func apiReady(ctx context.Context, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.Timeout = 10 * time.Second
	c, err := kube.ForConfig(cfg)
	if err != nil {
		return err
	}
	return c.Readyz(ctx)
}
