package rotate_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen/realnode"
	"github.com/k3scert/k3scert/internal/rotate"
)

// realService is the K3s start of a realnode node.
type realService struct {
	n     *realnode.Node
	calls *[]string
	clock func() time.Time
}

func (s realService) Name() string               { return "fake k3s (realnode)" }
func (s realService) Stop(context.Context) error { *s.calls = append(*s.calls, "stop"); return nil }
func (s realService) Start(context.Context) error {
	*s.calls = append(*s.calls, "start")
	s.n.Start(s.clock())
	return nil
}

func realPlan(t *testing.T, n *realnode.Node, method string, at time.Time) (rotate.Input, rotate.Plan) {
	t.Helper()
	o := check.Options{DataDir: n.DataDir, Program: n.O.Program, Profile: n.O.Profile.Name, At: at, NoEndpoint: true, ConfigRoot: n.Root}
	in, err := rotate.GatherNode(context.Background(), rotate.GatherOptions{Check: o, Method: method, Service: "fake k3s",
		Datastore: rotate.DescribeDatastore(n.DataDir)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := rotate.NewPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	return in, p
}

// A realistic current node (containerd snapshots with expired CAs, an
// airgap tarball and a FIFO that must never be opened, registry certs, a
// `k3s certificate rotate` backup, a pre-v1.21.2 leftover, a static
// listener, IPv6 SANs, configuration spread over config.yaml, drop-ins and
// the unit): the plan renews exactly the table's leaves (kube-* serving
// certs included), leaves the leftover and the static listener alone,
// dials the kubeconfig K3s really writes, and the run touches nothing else.
func TestRealisticCurrentNode(t *testing.T) {
	install := time.Now().AddDate(0, 0, -300)
	n := realnode.New(t, realnode.Options{Leftovers: true, StaticListener: true, IPv6: true, Config: true, AirgapSize: 1 << 30}, install)
	clock := func() time.Time { return install.AddDate(0, 0, 300) }
	_, p := realPlan(t, n, rotate.MethodRenew, clock())
	if p.Kubeconfig != n.Kubeconfig {
		t.Errorf("plan kubeconfig %s, want %s (write-kubeconfig from the drop-in)", p.Kubeconfig, n.Kubeconfig)
	}
	if p.Listener != rotate.ListenerStatic {
		t.Errorf("listener %q, want static", p.Listener)
	}
	if !slices.Contains(p.Leftovers, n.Leftover) {
		t.Errorf("leftovers %v, want %s", p.Leftovers, n.Leftover)
	}
	want := []string{}
	for _, s := range k3s.Specs(n.O.Program, n.O.Profile) {
		if s.Role == k3s.RoleServer && s.Cert != "" && !s.CA && !s.External {
			if _, err := os.Stat(n.Path(s.Cert)); err == nil {
				want = append(want, n.Path(s.Cert))
			}
		}
	}
	var got []string
	for _, l := range p.Leaves {
		got = append(got, l.Cert)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("planned leaves\n got  %v\n want %v", got, want)
	}
	for _, kcm := range []string{"server/tls/kube-scheduler/kube-scheduler.crt", "server/tls/kube-controller-manager/kube-controller-manager.crt"} {
		if !slices.Contains(got, n.Path(kcm)) {
			t.Errorf("%s not renewed", kcm)
		}
	}
	for _, a := range p.Addresses {
		for _, f := range append(append(append([]string{n.Leftover}, n.Foreign...), n.Registry...), n.Traps...) {
			if strings.Contains(a, f) {
				t.Errorf("plan claims to resolve %s", a)
			}
		}
	}
	jsonBefore := mustRead(t, n.Path("server/tls/dynamic-cert.json"))
	leftoverBefore := mustRead(t, n.Leftover)
	var calls []string
	e := &rotate.Executor{Plan: p, Service: realService{n: n, calls: &calls, clock: clock}, Now: clock}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	if string(mustRead(t, n.Path("server/tls/dynamic-cert.json"))) != string(jsonBefore) {
		t.Error("the static listener was rewritten")
	}
	if string(mustRead(t, n.Leftover)) != string(leftoverBefore) {
		t.Error("the leftover was rewritten")
	}
	for _, l := range p.Leaves {
		c := firstCert(t, mustRead(t, l.Cert))
		if c.NotAfter.Before(clock().AddDate(0, 11, 0)) {
			t.Errorf("%s valid only until %s", l.ID, c.NotAfter)
		}
	}
}

// Before the 2025 releases, Rancher's --cert-dir holds self-signed
// kube-* pairs: renew removes them (the component signs new ones on
// start), it never re-signs them with server-ca.
func TestRealisticRancherCertDir(t *testing.T) {
	row, err := k3s.ProfileByName("v1.24.3")
	if err != nil {
		t.Fatal(err)
	}
	install := time.Now().AddDate(-1, 0, 0)
	n := realnode.New(t, realnode.Options{Profile: row, RancherCertDir: true, NoJunk: true}, install)
	clock := func() time.Time { return install.AddDate(0, 0, 370) }
	_, p := realPlan(t, n, rotate.MethodRenew, clock())
	var removes []string
	for _, r := range p.Removes {
		removes = append(removes, r.ID)
	}
	slices.Sort(removes)
	if !slices.Equal(removes, []string{"serving-kube-controller-manager", "serving-kube-scheduler"}) {
		t.Fatalf("removes %v", removes)
	}
	var calls []string
	e := &rotate.Executor{Plan: p, Service: fakeService{calls: &calls, clock: clock}, Now: clock}
	if err := e.Apply(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Removes {
		if _, err := os.Stat(r.Cert); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", r.Cert, err)
		}
	}
}
