package k3s_test

import (
	"path"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
)

var programs = []k3s.Program{k3s.K3s, k3s.RKE2}

// TestSpecIDsUnique checks that every ID appears once per program and
// profile (the raw table carries two generations of some IDs).
func TestSpecIDsUnique(t *testing.T) {
	for _, p := range programs {
		for _, prof := range k3s.Profiles {
			t.Run(string(p)+"/"+prof.Name, func(t *testing.T) {
				seen := map[string]bool{}
				paths := map[string]string{}
				for _, s := range k3s.Specs(p, prof) {
					if seen[s.ID] {
						t.Errorf("ID %q appears twice", s.ID)
					}
					seen[s.ID] = true
					for _, f := range []string{s.Cert, s.Key} {
						if f == "" {
							continue
						}
						if other, ok := paths[f]; ok && other != s.ID {
							t.Errorf("path %s belongs to %s and %s", f, other, s.ID)
						}
						paths[f] = s.ID
					}
				}
				if len(seen) == 0 {
					t.Fatal("no specs")
				}
			})
		}
	}
}

// TestSpecsResolve checks that every row resolves under every profile and
// both programs: no template left, a signer that exists, sorted by ID,
// ByID and ByPath find it again.
func TestSpecsResolve(t *testing.T) {
	for _, p := range programs {
		for _, prof := range k3s.Profiles {
			t.Run(string(p)+"/"+prof.Name, func(t *testing.T) {
				specs := k3s.Specs(p, prof)
				for i, s := range specs {
					if i > 0 && specs[i-1].ID > s.ID {
						t.Errorf("not sorted: %s before %s", specs[i-1].ID, s.ID)
					}
					for _, f := range []string{s.Service, s.Cert, s.Key, s.CN, s.Kubecfg} {
						if strings.Contains(f, "{p}") {
							t.Errorf("%s: unresolved {p} in %q", s.ID, f)
						}
						if p == k3s.RKE2 && strings.Contains(f, "k3s") {
							t.Errorf("%s: k3s name %q under rke2", s.ID, f)
						}
					}
					if s.Cert == "" && s.Key == "" {
						t.Errorf("%s: neither cert nor key", s.ID)
					}
					for _, f := range []string{s.Cert, s.Key, s.Kubecfg} {
						if f != "" && (path.IsAbs(f) || path.Clean(f) != f) {
							t.Errorf("%s: path %q is not clean and relative", s.ID, f)
						}
					}
					if s.Cert != "" && !strings.HasSuffix(s.Cert, ".crt") {
						t.Errorf("%s: cert %q is not .crt", s.ID, s.Cert)
					}
					if s.Key != "" && !strings.HasSuffix(s.Key, ".key") {
						t.Errorf("%s: key %q is not .key", s.ID, s.Key)
					}
					if s.Role != k3s.RoleServer && s.Role != k3s.RoleAgent {
						t.Errorf("%s: role %q", s.ID, s.Role)
					}
					if s.SelfSigned {
						if s.Signer != "" || s.Renewable() || !s.Optional {
							t.Errorf("%s: a self-signed entry must be optional, unsigned by the table and not renewable", s.ID)
						}
					} else if s.CA {
						if s.Signer != "" || s.Renewable() {
							t.Errorf("%s: a CA with signer %q or renewable", s.ID, s.Signer)
						}
					} else if s.Cert != "" {
						sig, ok := k3s.ByID(p, prof, s.Signer)
						if !ok || !sig.CA {
							t.Errorf("%s: signer %q is not a CA of the table", s.ID, s.Signer)
						}
						if len(s.Usages) == 0 {
							t.Errorf("%s: no usages", s.ID)
						}
						if !s.Renewable() {
							t.Errorf("%s: leaf not renewable", s.ID)
						}
					}
					if got, ok := k3s.ByID(p, prof, s.ID); !ok || got.Cert != s.Cert || got.Key != s.Key {
						t.Errorf("ByID(%s) = %+v, %v", s.ID, got, ok)
					}
					for _, f := range []string{s.Cert, s.Key} {
						if f == "" {
							continue
						}
						if got, ok := k3s.ByPath(p, f); !ok || got.ID != s.ID {
							t.Errorf("ByPath(%s) = %q, %v; want %s", f, got.ID, ok, s.ID)
						}
					}
					if s.CA && s.CN != "" && !s.MatchesCN(s.CN+"@1595721600") {
						t.Errorf("%s: CA CN with timestamp not matched", s.ID)
					}
				}
				for _, kc := range k3s.Kubeconfigs(p, prof) {
					if strings.Contains(kc, "{p}") || !strings.HasSuffix(kc, "kubeconfig") {
						t.Errorf("kubeconfig %q", kc)
					}
				}
			})
		}
	}
}

// TestProfileNaming checks the generation differences of facts §1.2.
func TestProfileNaming(t *testing.T) {
	tests := []struct {
		prof     k3s.Profile
		id, cert string
		cn       string
		present  bool
	}{
		{k3s.ProfileV118, "client-cloud-controller", "server/tls/client-cloud-controller.crt", "cloud-controller-manager", true},
		{k3s.ProfileCurrent, "client-cloud-controller", "server/tls/client-k3s-cloud-controller.crt", "k3s-cloud-controller-manager", true},
		{k3s.ProfileV118, "client-kube-apiserver", "server/tls/client-kube-apiserver.crt", "kube-apiserver", true},
		{k3s.ProfileV119, "client-kube-apiserver", "server/tls/client-kube-apiserver.crt", "system:apiserver", true},
		{k3s.ProfileV118, "client-supervisor", "", "", false},
		{k3s.ProfileCurrent, "client-supervisor", "server/tls/client-supervisor.crt", "system:k3s-supervisor", true},
	}
	for _, tt := range tests {
		t.Run(tt.prof.Name+"/"+tt.id, func(t *testing.T) {
			s, ok := k3s.ByID(k3s.K3s, tt.prof, tt.id)
			if ok != tt.present {
				t.Fatalf("present = %v, want %v", ok, tt.present)
			}
			if !ok {
				return
			}
			if s.Cert != tt.cert || s.CN != tt.cn {
				t.Errorf("got %s CN %q, want %s CN %q", s.Cert, s.CN, tt.cert, tt.cn)
			}
		})
	}
}

func TestProfileForVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"v1.18.6+k3s1", "v1.18", false},
		{"v1.18.20+k3s1", "v1.18", false},
		{"v1.17.3+k3s1", "v1.18", false},
		{"v0.10.2", "v1.18", false},
		{"v1.19.0", "v1.18", false},
		{"v1.19.1", "v1.19.1", false},
		{"v1.19.1+k3s1", "v1.19.1", false},
		{"v1.20.15+k3s1", "v1.19.1", false},
		{"v1.21.1+k3s1", "v1.19.1", false},
		{"v1.21.2+k3s1", "v1.21.2", false},
		{"v1.21.7+k3s1", "v1.21.2", false},
		{"v1.21.8+k3s1", "v1.21.8", false},
		{"v1.22.4+k3s1", "v1.21.2", false},
		{"v1.22.5+k3s1", "v1.21.8", false},
		{"v1.22.11+k3s1", "v1.21.8", false},
		{"v1.22.12+k3s1", "v1.22.12", false},
		{"v1.23.8+k3s1", "v1.21.8", false},
		{"v1.23.9+k3s1", "v1.22.12", false},
		{"v1.24.0+k3s1", "v1.24.0", false},
		{"v1.24.2+k3s1", "v1.24.0", false},
		{"v1.24.3+k3s1", "v1.24.3", false},
		{"v1.28.5+k3s1", "v1.24.3", false},
		{"v1.30.12+k3s1", "v1.24.3", false},
		{"v1.30.13+k3s1", "v1.31.9", false},
		{"v1.30.14+k3s1", "v1.31.10", false},
		{"v1.31.8+k3s1", "v1.24.3", false},
		{"v1.31.9+k3s1", "v1.31.9", false},
		{"v1.31.10+k3s1", "v1.31.10", false},
		{"v1.31.11+k3s1", "v1.31.11", false},
		{"v1.32.4", "v1.24.3", false},
		{"v1.32.5", "v1.31.9", false},
		{"v1.32.6", "v1.31.10", false},
		{"v1.32.7", "v1.31.11", false},
		{"v1.33.0+k3s1", "v1.24.3", false},
		{"v1.33.1", "v1.31.9", false},
		{"v1.33.2", "v1.31.10", false},
		{"v1.33.3", "v1.31.11", false},
		{"v1.34.0", "v1.31.11", false},
		{"v1.35.0+rke2r1", "v1.31.11", false},
		{"v1.24.2+rke2r1", "v1.24.0", false},
		{"k3s version v1.32.5+k3s1 (abc123)", "v1.31.9", false},
		{"garbage", "", true},
		{"", "", true},
		{"v1", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := k3s.ProfileForVersion(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got.Name != tt.want {
				t.Errorf("got %s, want %s", got.Name, tt.want)
			}
		})
	}
}

func TestProfileByName(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"v1.18", "v1.18", false},
		{"1.18", "v1.18", false},
		{"v1.19+", "v1.24.3", false},
		{"v1.19", "v1.24.3", false},
		{"current", "v1.31.11", false},
		{"v1.21.2", "v1.21.2", false},
		{"v1.32.6+k3s1", "v1.31.10", false},
		{"v2", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := k3s.ProfileByName(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got.Name != tt.want {
				t.Errorf("got %s, want %s", got.Name, tt.want)
			}
		})
	}
}

// TestProfileBehaviour pins the numbers of facts §2.3.
func TestProfileBehaviour(t *testing.T) {
	tests := []struct {
		p             k3s.Profile
		renew         int
		listenerRenew bool
		legacy        bool
		listenerDays  int
	}{
		{k3s.ProfileV118, 90, false, true, -36500},
		{k3s.ProfileV119, 90, true, false, 90},
		{k3s.ProfileCurrent, 120, true, false, 120},
	}
	for _, tt := range tests {
		t.Run(tt.p.Name, func(t *testing.T) {
			if tt.p.RenewDays != tt.renew || tt.p.ListenerRenews != tt.listenerRenew || tt.p.LegacyNames != tt.legacy {
				t.Errorf("got %+v", tt.p)
			}
			if got := tt.p.ListenerExpirationDays(); got != tt.listenerDays {
				t.Errorf("ListenerExpirationDays = %d, want %d", got, tt.listenerDays)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		p          k3s.Program
		ports      k3s.Ports
		dir, kc    string
		secretName string
	}{
		{k3s.K3s, k3s.Ports{Supervisor: 6443, APIServer: 6444, Kubelet: 10250, Etcd: 2379, ControllerManager: 10257, Scheduler: 10259}, "/var/lib/rancher/k3s", "/etc/rancher/k3s/k3s.yaml", "k3s-serving"},
		{k3s.RKE2, k3s.Ports{Supervisor: 9345, APIServer: 6443, Kubelet: 10250, Etcd: 2379, ControllerManager: 10257, Scheduler: 10259}, "/var/lib/rancher/rke2", "/etc/rancher/rke2/rke2.yaml", "rke2-serving"},
	}
	for _, tt := range tests {
		t.Run(string(tt.p), func(t *testing.T) {
			if got := k3s.DefaultPorts(tt.p); got != tt.ports {
				t.Errorf("ports %+v", got)
			}
			if got := k3s.DefaultDataDir(tt.p); got != tt.dir {
				t.Errorf("data dir %s", got)
			}
			if got := k3s.DefaultKubeconfig(tt.p); got != tt.kc {
				t.Errorf("kubeconfig %s", got)
			}
			l := k3s.ListenerSpec(tt.p)
			if l.SecretName != tt.secretName || l.CN != string(tt.p) || l.SecretKey() != "/registry/secrets/kube-system/"+tt.secretName {
				t.Errorf("listener %+v", l)
			}
		})
	}
}
