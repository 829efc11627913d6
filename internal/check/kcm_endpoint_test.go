package check_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/check/checktest"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen/realnode"
	"github.com/k3scert/k3scert/internal/report"
)

func readPair(t *testing.T, crt, key string) ([]byte, []byte) {
	t.Helper()
	c, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	k, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// kcmPorts points check at the two loopback listeners as the node's
// kube-scheduler and kube-controller-manager secure ports.
func kcmPorts(sched, kcm int) func(*check.Options) {
	return func(o *check.Options) {
		o.NoEndpoint = false
		o.Ports = &k3s.Ports{Scheduler: sched, ControllerManager: kcm}
	}
}

func endpointByRole(r report.Report, role string) (report.Endpoint, bool) {
	for _, e := range r.Endpoints {
		if e.Role == role {
			return e, true
		}
	}
	return report.Endpoint{}, false
}

// TestKCMSchedulerEndpoints probes :10259/:10257 stand-ins on loopback for
// every kind of serving certificate the rows have, verifying the chain
// against the node's own CAs (the CA-signed kind) or the pair's own
// self-signed CA (Rancher's --cert-dir), never skipping verification.
func TestKCMSchedulerEndpoints(t *testing.T) {
	t.Run("CA-signed on the current row", func(t *testing.T) {
		n := realnode.New(t, realnode.Options{NoJunk: true}, realT0)
		sc, sk := readPair(t, n.Path("server/tls/kube-scheduler/kube-scheduler.crt"), n.Path("server/tls/kube-scheduler/kube-scheduler.key"))
		kc, kk := readPair(t, n.Path("server/tls/kube-controller-manager/kube-controller-manager.crt"), n.Path("server/tls/kube-controller-manager/kube-controller-manager.key"))
		_, sp := serve(t, sc, sk)
		_, kp := serve(t, kc, kk)
		r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour), kcmPorts(sp, kp))
		for _, role := range []string{"scheduler", "controller-manager"} {
			e, ok := endpointByRole(r, role)
			if !ok || e.Status != "ok" || !e.Trusted {
				t.Errorf("%s endpoint %+v", role, e)
			}
		}
		if r.Summary.ExitCode != report.ExitOK {
			dumpReport(t, r)
			t.Fatal("not OK")
		}
		// A self-signed certificate on the scheduler port of a 2025 node is
		// not what K3s serves: K3C302.
		dir := t.TempDir()
		if _, err := k3sgen.SelfSignedServing(filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), realT0); err != nil {
			t.Fatal(err)
		}
		fc, fk := readPair(t, filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"))
		_, fp := serve(t, fc, fk)
		r, _ = checktest.CheckReal(t, n, realT0.Add(time.Hour), kcmPorts(fp, kp))
		if len(findingsAt(r, "K3C302", ":"+itoa(fp))) != 1 {
			dumpReport(t, r)
			t.Error("foreign self-signed certificate on the 2025 scheduler port not reported")
		}
	})
	t.Run("in-memory self-signed before 2025", func(t *testing.T) {
		n := realnode.New(t, realnode.Options{Profile: k3s.ProfileV119, NoJunk: true}, realT0)
		dir := t.TempDir()
		if _, err := k3sgen.SelfSignedServing(filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), realT0); err != nil {
			t.Fatal(err)
		}
		c, k := readPair(t, filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"))
		_, sp := serve(t, c, k)
		ver := func(o *check.Options) { o.Version = "v1.28.9+k3s1" }
		r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour), kcmPorts(sp, 0), ver)
		if r.Summary.ExitCode != report.ExitOK {
			dumpReport(t, r)
			t.Fatal("an in-memory self-signed scheduler certificate is what this row serves")
		}
		r, _ = checktest.CheckReal(t, n, realT0.Add(340*24*time.Hour), kcmPorts(sp, 0), ver)
		fs := findingsAt(r, "K3C006", ":"+itoa(sp))
		if len(fs) != 1 || !strings.Contains(fs[0].Remedy, "restart") {
			dumpReport(t, r)
			t.Fatalf("K3C006 %+v", fs)
		}
	})
	t.Run("Rancher cert-dir pair before 2025", func(t *testing.T) {
		n := realnode.New(t, realnode.Options{Profile: k3s.ProfileV119, RancherCertDir: true, NoJunk: true}, realT0)
		c, k := readPair(t, n.Path("server/tls/kube-scheduler/kube-scheduler.crt"), n.Path("server/tls/kube-scheduler/kube-scheduler.key"))
		_, sp := serve(t, c, k)
		r, _ := checktest.CheckReal(t, n, realT0.Add(time.Hour), kcmPorts(sp, 0), func(o *check.Options) { o.Version = "v1.28.9+k3s1" })
		if e, ok := endpointByRole(r, "scheduler"); !ok || !e.Trusted {
			t.Errorf("scheduler endpoint not verified against its own CA: %+v", e)
		}
		if r.Summary.ExitCode != report.ExitOK {
			dumpReport(t, r)
			t.Fatal("not OK")
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }
