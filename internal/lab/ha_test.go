package lab_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/lab"
)

// TestHAExpiredRotate is the bar of issue #13 for a cluster whose every
// certificate has expired (the seed's scenario 1 on 3 servers and 2
// agents): the failure shows after the restart, and the cluster rotation
// leaves every server serving a valid certificate, kubectl working through
// each, every agent renewed. The clock is never written: time travel is in
// the certificates (Cluster.Advance re-signs).
func TestHAExpiredRotate(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	r, err := lab.RunHA(ctx, lab.HAOptions{Scenario: "ha-expired", Profile: k3s.ProfileV118, Remedy: "rotate",
		Root: filepath.Join(t.TempDir(), "ha"), Log: t.Logf})
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("%s", b)
	if err != nil {
		t.Fatalf("RunHA: %v", err)
	}
	if !r.Reproduced {
		t.Errorf("the seed's failure did not show on the cluster: %s", r.Summary)
	}
	if r.Remedied == nil || !*r.Remedied {
		t.Fatalf("not remedied: %s", r.Summary)
	}
	var servers, agents int
	for _, s := range r.Steps {
		if s.Name != "rotated" {
			continue
		}
		if !s.KubectlOK || s.ServedNotAfter == nil || !s.ServedNotAfter.After(s.VirtualDate) {
			t.Errorf("%s %s after the rotation: served %v kubectl %v %s", s.Role, s.Node, s.ServedNotAfter, s.KubectlOK, s.KubectlError)
		}
		switch s.Role {
		case "server":
			servers++
		case "agent":
			agents++
			if s.ClientKubeletNotAfter == nil || !s.ClientKubeletNotAfter.After(s.VirtualDate) {
				t.Errorf("agent %s holds no renewed client-kubelet: %v", s.Node, s.ClientKubeletNotAfter)
			}
		}
	}
	if servers != 3 || agents != 2 {
		t.Errorf("rotated steps: %d servers, %d agents, want 3 and 2", servers, agents)
	}
}
