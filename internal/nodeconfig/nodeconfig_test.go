package nodeconfig_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/nodeconfig"
)

// unitK3s is what get.k3s.io's install.sh writes (install.sh@2a1e2e8
// create_systemd_service_file), with flags as INSTALL_K3S_EXEC gives them.
const unitK3s = `[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/k3s.service.env
KillMode=process
Delegate=yes
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=/bin/sh -xc '! /usr/bin/systemctl is-enabled --quiet nm-cloud-setup.service 2>/dev/null'
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStart=/usr/local/bin/k3s \
    server \
	'--tls-san' \
	'lb.example.com' \
	'--tls-san=10.0.0.100,2001:db8::100' \
	'--disable-etcd' \
	'--node-label' \
	'zone=a' \
	'-o' \
	'/root/.kube/config' \
	'--https-listen-port' \
	'7443' \

`

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadK3sReadsLikeK3s(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "etc/systemd/system/k3s.service"), unitK3s)
	write(t, filepath.Join(root, "etc/systemd/system/k3s.service.env"), "K3S_TOKEN=secret\nCATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS=\"3650\"\n")
	write(t, filepath.Join(root, "etc/rancher/k3s/config.yaml"), "tls-san:\n  - cfg.example.com\nnode-ip: 192.168.1.10\nwrite-kubeconfig: /etc/rancher/k3s/other.yaml\ndata-dir: /srv/k3s\n")
	// Drop-ins in lexical order: 10 replaces node-ip, 20 appends tls-san, 30 replaces tls-san? no: appends again.
	write(t, filepath.Join(root, "etc/rancher/k3s/config.yaml.d/20-more.yaml"), "tls-san+:\n  - more.example.com\nnode-external-ip: 203.0.113.7\n")
	write(t, filepath.Join(root, "etc/rancher/k3s/config.yaml.d/10-ip.yaml"), "node-ip: [192.168.1.11, 'fd00::11']\n")
	write(t, filepath.Join(root, "etc/rancher/k3s/config.yaml.d/README"), "tls-san: ignored\n")
	write(t, filepath.Join(root, "etc/rancher/k3s/config.yaml.d/30-last.yml"), "tls-san+: last.example.com\n")

	c, errs := nodeconfig.Load(nodeconfig.Options{Program: k3s.K3s, Role: k3s.RoleServer, Root: root})
	if len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
	wantSANs := []string{"cfg.example.com", "more.example.com", "last.example.com", "lb.example.com", "10.0.0.100", "2001:db8::100"}
	if !slices.Equal(c.TLSSANs, wantSANs) {
		t.Errorf("tls-san %v, want %v", c.TLSSANs, wantSANs)
	}
	if !slices.Equal(c.NodeIPs, []string{"192.168.1.11", "fd00::11"}) || !slices.Equal(c.NodeExternalIPs, []string{"203.0.113.7"}) {
		t.Errorf("node IPs %v / %v", c.NodeIPs, c.NodeExternalIPs)
	}
	if c.WriteKubeconfig != "/root/.kube/config" {
		t.Errorf("write-kubeconfig %q: the unit's -o overrides the config file", c.WriteKubeconfig)
	}
	if !c.DisableETCD || c.HTTPSListenPort != 7443 || c.DataDir != "/srv/k3s" {
		t.Errorf("got %+v", c)
	}
	if c.Env["CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS"] != "3650" {
		t.Errorf("env %v", c.Env)
	}
	if len(c.Sources) != 5 || !strings.HasSuffix(c.Sources[0], "k3s.service") || !strings.HasSuffix(c.Sources[4], "30-last.yml") {
		t.Errorf("sources %v", c.Sources)
	}
}

func TestLoadRKE2AgentAndMissing(t *testing.T) {
	root := t.TempDir()
	c, errs := nodeconfig.Load(nodeconfig.Options{Program: k3s.RKE2, Role: k3s.RoleAgent, Root: root})
	if len(errs) != 0 || len(c.Sources) != 0 || c.TLSSANs != nil {
		t.Fatalf("nothing there: %+v %v", c, errs)
	}
	write(t, filepath.Join(root, "usr/local/lib/systemd/system/rke2-agent.service"), "[Service]\nExecStart=/usr/local/bin/rke2 agent --node-ip=10.1.1.1\n")
	write(t, filepath.Join(root, "usr/local/lib/systemd/system/rke2-agent.service.d/override.conf"), "[Service]\nExecStart=\nExecStart=/usr/local/bin/rke2 agent --node-ip 10.1.1.2\nEnvironment=\"RKE2_NODE_NAME=n2\" OTHER=x\n")
	c, errs = nodeconfig.Load(nodeconfig.Options{Program: k3s.RKE2, Role: k3s.RoleAgent, Root: root})
	if len(errs) != 0 || !slices.Equal(c.NodeIPs, []string{"10.1.1.2"}) || c.NodeName != "n2" {
		t.Errorf("got %+v %v", c, errs)
	}
	// An explicit config file that is missing or broken is an error naming it.
	_, errs = nodeconfig.Load(nodeconfig.Options{Program: k3s.K3s, Root: root, ConfigFile: filepath.Join(root, "nope.yaml")})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "nope.yaml") {
		t.Errorf("errs %v", errs)
	}
	bad := filepath.Join(root, "etc/rancher/k3s/config.yaml")
	write(t, bad, "tls-san: [\n")
	write(t, bad+".d/ok.yaml", "tls-san: fine.example.com\n")
	c, errs = nodeconfig.Load(nodeconfig.Options{Program: k3s.K3s, Root: root})
	if len(errs) != 1 || errs[0].Path != bad || !slices.Equal(c.TLSSANs, []string{"fine.example.com"}) {
		t.Errorf("broken base: %+v %v", c, errs)
	}
}

func TestSplitCommand(t *testing.T) {
	got := nodeconfig.SplitCommand(`/bin/k3s server '--tls-san' 'a b' "--x=\"q\"" c\ d`)
	want := []string{"/bin/k3s", "server", "--tls-san", "a b", `--x="q"`, "c d"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q", got)
	}
}

// FuzzMergeAndUnit: no input panics; merging is deterministic; a "+" key
// never loses what was there.
func FuzzMergeAndUnit(f *testing.F) {
	f.Add([]byte("tls-san: a\n"), []byte("tls-san+: [b, c]\n"), []byte(unitK3s))
	f.Add([]byte("tls-san: [a]\n"), []byte("tls-san: b\n"), []byte("ExecStart=k3s server --tls-san"))
	f.Add([]byte("- x\n"), []byte("{}"), []byte("ExecStart='unterminated"))
	f.Fuzz(func(t *testing.T, a, b, u []byte) {
		m1, m2 := map[string]any{}, map[string]any{}
		e1 := nodeconfig.MergeYAML(m1, a)
		e2 := nodeconfig.MergeYAML(m2, a)
		if (e1 == nil) != (e2 == nil) || len(m1) != len(m2) {
			t.Fatal("not deterministic")
		}
		before := 0
		if l, ok := m1["tls-san"].([]any); ok {
			before = len(l)
		}
		if err := nodeconfig.MergeYAML(m1, []byte("tls-san+: [zz]\n")); err != nil {
			t.Fatal(err)
		}
		if l, ok := m1["tls-san"].([]any); !ok || len(l) < before+1 {
			t.Fatalf("append lost values: %v", m1["tls-san"])
		}
		_ = nodeconfig.MergeYAML(m1, b)
		exec, env, _ := nodeconfig.ParseUnit(u)
		_ = nodeconfig.SplitCommand(string(u))
		_ = nodeconfig.ParseEnvFile(u)
		_, _ = exec, env
	})
}

// datastore-endpoint comes from config.yaml, K3S_DATASTORE_ENDPOINT in the
// unit's environment, or the unit's flag, later sources winning.
func TestDatastoreEndpoint(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "etc/rancher/k3s/config.yaml"), "datastore-endpoint: http://127.0.0.1:2379\n")
	c, errs := nodeconfig.Load(nodeconfig.Options{Program: k3s.K3s, Role: k3s.RoleServer, Root: root})
	if len(errs) != 0 || c.DatastoreEndpoint != "http://127.0.0.1:2379" {
		t.Fatalf("config.yaml: %q %v", c.DatastoreEndpoint, errs)
	}
	write(t, filepath.Join(root, "etc/systemd/system/k3s.service.env"), "K3S_DATASTORE_ENDPOINT=mysql://u:p@tcp(db:3306)/k3s\n")
	write(t, filepath.Join(root, "etc/systemd/system/k3s.service"), unitK3s)
	c, _ = nodeconfig.Load(nodeconfig.Options{Program: k3s.K3s, Role: k3s.RoleServer, Root: root})
	if c.DatastoreEndpoint != "mysql://u:p@tcp(db:3306)/k3s" {
		t.Errorf("environment: %q", c.DatastoreEndpoint)
	}
	write(t, filepath.Join(root, "etc/systemd/system/k3s.service"), strings.Replace(unitK3s, "'--disable-etcd' \\", "'--disable-etcd' \\\n\t'--datastore-endpoint=https://etcd:2379' \\", 1))
	c, _ = nodeconfig.Load(nodeconfig.Options{Program: k3s.K3s, Role: k3s.RoleServer, Root: root})
	if c.DatastoreEndpoint != "https://etcd:2379" {
		t.Errorf("unit flag: %q", c.DatastoreEndpoint)
	}
}
