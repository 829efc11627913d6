package k3sgen_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"k8s.io/client-go/tools/clientcmd"
)

// t0 is the day of the reference verification's first start (facts §3.5).
var t0 = time.Date(2020, 7, 26, 10, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func gen(t *testing.T, o k3sgen.Options, now time.Time) (k3sgen.Options, k3sgen.Result) {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.Program == "" {
		o.Program = k3s.K3s
	}
	if o.Profile.Name == "" {
		o.Profile = k3s.ProfileCurrent
	}
	res, err := k3sgen.Start(o, now)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return o, res
}

func readCerts(t *testing.T, p string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCerts(b)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return certs
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pemTypes lists the PEM block types of a file.
func pemTypes(b []byte) []string {
	var out []string
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		out = append(out, blk.Type)
	}
}

func sorted(s []string) []string {
	s = append([]string{}, s...)
	sort.Strings(s)
	return s
}

func ekus(s k3s.Spec) []x509.ExtKeyUsage {
	var out []x509.ExtKeyUsage
	for _, u := range s.Usages {
		switch u {
		case k3s.ServerAuth:
			out = append(out, x509.ExtKeyUsageServerAuth)
		case k3s.ClientAuth:
			out = append(out, x509.ExtKeyUsageClientAuth)
		}
	}
	return out
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// TestStartFaithful checks every file of a fresh node against k3s-facts §1:
// names, CN/O, key usages, SANs, leaf+CA bundles, key types, validity.
func TestStartFaithful(t *testing.T) {
	nodeIP := net.ParseIP("192.168.1.10")
	for _, prog := range []k3s.Program{k3s.K3s, k3s.RKE2} {
		for _, prof := range k3s.Profiles {
			t.Run(string(prog)+"/"+prof.Name, func(t *testing.T) {
				o, res := gen(t, k3sgen.Options{Program: prog, Profile: prof, NodeName: "node1", NodeIPs: []net.IP{nodeIP},
					TLSSANs: []string{"k3s.example.com"}, Listener: true, Kubeconfig: filepath.Join(t.TempDir(), "k3s.yaml")}, t0)
				if len(res.Renewed) == 0 || len(res.Created) == 0 {
					t.Errorf("result %+v", res)
				}
				p := func(rel string) string { return filepath.Join(o.DataDir, filepath.FromSlash(rel)) }
				cas := map[string][]*x509.Certificate{}
				for _, s := range k3s.Specs(prog, prof) {
					if s.CA && !s.Copy && !s.External {
						cas[s.ID] = readCerts(t, p(s.Cert))
					}
				}
				for _, s := range k3s.Specs(prog, prof) {
					if s.External {
						continue
					}
					t.Run(s.ID, func(t *testing.T) {
						checkKey(t, s, p)
						if s.Cert == "" {
							return
						}
						certs := readCerts(t, p(s.Cert))
						if types := pemTypes(read(t, p(s.Cert))); slices.ContainsFunc(types, func(x string) bool { return x != "CERTIFICATE" }) {
							t.Errorf("non-certificate blocks %v", types)
						}
						c := certs[0]
						if !s.MatchesCN(c.Subject.CommonName) {
							t.Errorf("CN %q, want %q", c.Subject.CommonName, s.CN)
						}
						if !slices.Equal(sorted(c.Subject.Organization), sorted(s.Orgs)) {
							t.Errorf("O %v, want %v", c.Subject.Organization, s.Orgs)
						}
						if s.CA {
							checkCA(t, s, c, certs, cas)
							return
						}
						checkLeaf(t, o, s, c, certs, cas[s.Signer], nodeIP)
					})
				}
				checkListener(t, o, cas["server-ca"], nodeIP)
				checkKubeconfigs(t, o, prof)
			})
		}
	}
}

func checkKey(t *testing.T, s k3s.Spec, p func(string) string) {
	t.Helper()
	if s.Key == "" {
		return
	}
	kb := read(t, p(s.Key))
	fi, err := os.Stat(p(s.Key))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, %v", fi.Mode(), err)
	}
	key, n, err := pki.ParseKey(kb)
	if err != nil || n != 1 {
		t.Fatalf("key: %v (%d keys)", err, n)
	}
	types := pemTypes(kb)
	if s.RSA {
		rk, ok := key.(*rsa.PrivateKey)
		if !ok || rk.N.BitLen() != 2048 || !slices.Equal(types, []string{"RSA PRIVATE KEY"}) {
			t.Errorf("service key: %T %v, want RSA 2048 \"RSA PRIVATE KEY\"", key, types)
		}
		return
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() || !slices.Equal(types, []string{"EC PRIVATE KEY"}) {
		t.Errorf("key %T %v, want ECDSA P-256 \"EC PRIVATE KEY\"", key, types)
	}
	if s.Cert != "" {
		if c := readCerts(t, p(s.Cert))[0]; !pki.KeyMatches(c, key) {
			t.Errorf("key does not match %s", s.Cert)
		}
	}
}

func checkCA(t *testing.T, s k3s.Spec, c *x509.Certificate, certs []*x509.Certificate, cas map[string][]*x509.Certificate) {
	t.Helper()
	if s.Copy {
		src := strings.TrimPrefix(s.ID, "agent-")
		if len(certs) != len(cas[src]) || !certs[0].Equal(cas[src][0]) {
			t.Errorf("agent copy differs from %s", src)
		}
		return
	}
	if want := fmt.Sprintf("%s@%d", s.CN, t0.Unix()); c.Subject.CommonName != want {
		t.Errorf("CA CN %q, want %q", c.Subject.CommonName, want)
	}
	if len(certs) != 1 || !c.IsCA || !c.BasicConstraintsValid || c.SerialNumber.Sign() != 0 {
		t.Errorf("CA: %d certs, IsCA %v, serial %v", len(certs), c.IsCA, c.SerialNumber)
	}
	if ku := x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign; c.KeyUsage != ku {
		t.Errorf("CA key usage %b, want %b", c.KeyUsage, ku)
	}
	if len(c.Subject.Organization) != 0 {
		t.Errorf("CA has O %v", c.Subject.Organization)
	}
	if !c.NotBefore.Equal(t0.Add(-time.Hour)) || !c.NotAfter.Equal(c.NotBefore.Add(3650*day)) {
		t.Errorf("CA validity %s – %s, want now-1h + 10×365d", c.NotBefore, c.NotAfter)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
}

func checkLeaf(t *testing.T, o k3sgen.Options, s k3s.Spec, c *x509.Certificate, certs, ca []*x509.Certificate, nodeIP net.IP) {
	t.Helper()
	if ca == nil {
		t.Fatalf("signer %s not found", s.Signer)
	}
	// Bundle: leaf + CA bundle; v1.18: leaf + first CA (facts §1.1).
	if len(certs) != 1+len(ca) || !certs[1].Equal(ca[0]) {
		t.Errorf("bundle has %d certs, want leaf + %d CA", len(certs), len(ca))
	}
	if c.IsCA || c.SerialNumber.Sign() <= 0 {
		t.Errorf("leaf IsCA %v serial %v", c.IsCA, c.SerialNumber)
	}
	if ku := x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature; c.KeyUsage != ku {
		t.Errorf("key usage %b, want %b", c.KeyUsage, ku)
	}
	if !slices.Equal(c.ExtKeyUsage, ekus(s)) {
		t.Errorf("EKU %v, want %v", c.ExtKeyUsage, ekus(s))
	}
	if !c.NotBefore.Equal(t0.Add(-time.Hour)) || !c.NotAfter.Equal(c.NotBefore.Add(365*day)) {
		t.Errorf("validity %s – %s, want now-1h + 365d", c.NotBefore, c.NotAfter)
	}
	if err := pki.VerifyAt(c, ca[:1], nil, t0, x509.ExtKeyUsageAny); err != nil {
		t.Errorf("does not verify against %s: %v", s.Signer, err)
	}
	if !bytes.Equal(c.AuthorityKeyId, ca[0].SubjectKeyId) {
		t.Errorf("AuthorityKeyId differs from the CA's SubjectKeyId")
	}
	// config.SANs (audit §7, server.go@2a1e2e8:291-305): --tls-san,
	// 127.0.0.1, ::1, localhost, node name, node IPs, service IP; the
	// v1.18-era rows keep the short set.
	cfgIPs := []string{"127.0.0.1", "::1", nodeIP.String(), k3s.ServiceIP}
	cfgDNS := []string{"localhost", "node1", "k3s.example.com"}
	if o.Profile.LegacyNames {
		cfgIPs = []string{"127.0.0.1", nodeIP.String(), k3s.ServiceIP}
		cfgDNS = []string{"k3s.example.com"}
	}
	var wantDNS, wantIP []string
	switch s.ID {
	case "serving-kube-apiserver":
		wantDNS = append([]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}, cfgDNS...)
		if o.Profile.LegacyNames {
			wantDNS = append([]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"}, cfgDNS...)
		}
		wantIP = cfgIPs
	case "serving-kube-scheduler", "serving-kube-controller-manager":
		wantDNS = []string{"localhost"}
		wantIP = []string{"127.0.0.1", "::1"}
	case "etcd-server-client", "etcd-peer-server-client":
		// kine.sock + config.SANs; the generator also adds localhost,
		// which newer K3s is believed to add (facts, open questions).
		for _, n := range []string{"kine.sock", "k3s.example.com"} {
			if !slices.Contains(c.DNSNames, n) {
				t.Errorf("DNS SANs %v lack %s", c.DNSNames, n)
			}
		}
		if got := sorted(ipStrings(c.IPAddresses)); !slices.Equal(got, sorted(cfgIPs)) {
			t.Errorf("IP SANs %v, want %v", got, cfgIPs)
		}
		return
	case "agent-serving-kubelet":
		wantDNS = []string{"node1", "localhost"}
		wantIP = []string{"127.0.0.1", nodeIP.String()}
		if o.Profile.DeletesLegacyProxyCerts {
			wantIP = append(wantIP, "::1")
		}
	}
	if got := sorted(c.DNSNames); !slices.Equal(got, sorted(wantDNS)) {
		t.Errorf("DNS SANs %v, want %v", got, wantDNS)
	}
	if got := sorted(ipStrings(c.IPAddresses)); !slices.Equal(got, sorted(wantIP)) {
		t.Errorf("IP SANs %v, want %v", got, wantIP)
	}
}

func checkListener(t *testing.T, o k3sgen.Options, ca []*x509.Certificate, nodeIP net.IP) {
	t.Helper()
	l := k3s.ListenerSpec(o.Program)
	var sec k3sgen.ListenerSecret
	if err := json.Unmarshal(read(t, filepath.Join(o.DataDir, filepath.FromSlash(l.JSONPath))), &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Type != "kubernetes.io/tls" || sec.Metadata.Name != string(o.Program)+"-serving" || sec.Metadata.Namespace != "kube-system" {
		t.Errorf("listener secret metadata %+v type %s", sec.Metadata, sec.Type)
	}
	certs, err := pki.ParseCerts(sec.Data["tls.crt"])
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if c.Subject.CommonName != string(o.Program) || !slices.Equal(c.Subject.Organization, []string{string(o.Program)}) {
		t.Errorf("listener subject %v", c.Subject)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || len(certs) != 1+len(ca) {
		t.Errorf("listener EKU %v, %d certs", c.ExtKeyUsage, len(certs))
	}
	if err := pki.VerifyAt(c, ca, nil, t0, x509.ExtKeyUsageServerAuth); err != nil {
		t.Errorf("listener does not verify: %v", err)
	}
	for _, n := range []string{"kubernetes", "kubernetes.default", "k3s.example.com", "127.0.0.1", nodeIP.String()} {
		if !slices.Contains(pki.SANs(c), n) {
			t.Errorf("listener SANs %v lack %s", pki.SANs(c), n)
		}
	}
	key, _, err := pki.ParseKey(sec.Data["tls.key"])
	if err != nil || !pki.KeyMatches(c, key) {
		t.Errorf("listener key: %v", err)
	}
	if got, want := sec.Metadata.Annotations["listener.cattle.io/fingerprint"], fmt.Sprintf("SHA1=%X", sha1.Sum(c.Raw)); got != want {
		t.Errorf("fingerprint %s, want %s", got, want)
	}
	if sec.Metadata.Annotations["listener.cattle.io/cn-kubernetes"] != "kubernetes" {
		t.Errorf("annotations %v", sec.Metadata.Annotations)
	}
}

func checkKubeconfigs(t *testing.T, o k3sgen.Options, prof k3s.Profile) {
	t.Helper()
	for _, rel := range k3s.Kubeconfigs(o.Program, prof) {
		cfg, err := clientcmd.LoadFromFile(filepath.Join(o.DataDir, filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		for _, ai := range cfg.AuthInfos {
			if !filepath.IsAbs(ai.ClientCertificate) || len(ai.ClientCertificateData) != 0 {
				t.Errorf("%s: not a file reference: %+v", rel, ai)
			}
			if _, err := os.Stat(ai.ClientCertificate); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		}
	}
	cfg, err := clientcmd.LoadFromFile(o.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ai := cfg.AuthInfos["default"]
	if ai == nil || !bytes.Equal(ai.ClientCertificateData, read(t, filepath.Join(o.DataDir, "server/tls/client-admin.crt"))) ||
		!bytes.Equal(ai.ClientKeyData, read(t, filepath.Join(o.DataDir, "server/tls/client-admin.key"))) {
		t.Errorf("k3s.yaml does not embed client-admin")
	}
	if cl := cfg.Clusters["default"]; cl == nil || !bytes.Equal(cl.CertificateAuthorityData, read(t, filepath.Join(o.DataDir, "server/tls/server-ca.crt"))) {
		t.Errorf("k3s.yaml does not embed server-ca")
	}
}

// snapshot maps every file under dir to its bytes.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenewalRule: a restart inside the renew window reissues every server
// leaf with a new key; outside it, nothing changes; CAs never change
// (facts §2.1, §2.2). Agent files are fetched fresh on every start.
func TestRenewalRule(t *testing.T) {
	tests := []struct {
		prof    k3s.Profile
		after   int // days after the first start
		renewed bool
	}{
		{k3s.ProfileV118, 1, false},
		{k3s.ProfileV118, 365 - 90 - 1, false},
		{k3s.ProfileV118, 365 - 90 + 1, true},
		{k3s.ProfileV119, 365 - 90 - 1, false},
		{k3s.ProfileV119, 365 - 90 + 1, true},
		{k3s.ProfileCurrent, 365 - 120 - 1, false},
		{k3s.ProfileCurrent, 365 - 120 + 1, true},
		{k3s.ProfileCurrent, 420, true},
		{k3s.ProfileCurrent, 3700, true}, // even with every CA expired, CAs are kept
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/+%dd", tt.prof.Name, tt.after), func(t *testing.T) {
			o, _ := gen(t, k3sgen.Options{Profile: tt.prof, NoAgent: true, Listener: true}, t0)
			before := snapshot(t, o.DataDir)
			now := t0.Add(time.Duration(tt.after) * day)
			_, res := gen(t, o, now)
			after := snapshot(t, o.DataDir)
			if len(res.Created) != 0 {
				t.Errorf("created on restart: %v", res.Created)
			}
			for _, s := range k3s.Specs(o.Program, o.Profile) {
				if s.Role != k3s.RoleServer {
					continue
				}
				for _, f := range []string{s.Cert, s.Key} {
					if f == "" {
						continue
					}
					changed := !bytes.Equal(before[f], after[f])
					want := tt.renewed && s.Renewable()
					if changed != want {
						t.Errorf("%s changed = %v, want %v", f, changed, want)
					}
				}
				if want := tt.renewed && s.Renewable(); slices.Contains(res.Renewed, s.ID) != want {
					t.Errorf("%s in Renewed = %v, want %v (%+v)", s.ID, !want, want, res)
				}
				if s.Renewable() && tt.renewed {
					c := readCerts(t, filepath.Join(o.DataDir, s.Cert))[0]
					if nb := now.Add(-time.Hour); !c.NotBefore.Equal(nb) || !c.NotAfter.Equal(nb.Add(365*day)) {
						t.Errorf("%s: renewed validity %s – %s, want now-1h + 365d", s.ID, c.NotBefore, c.NotAfter)
					}
				}
			}
			// dynamic-cert.json belongs to dynamiclistener, not to the
			// restart renewal: it is never rewritten by Start.
			if f := "server/tls/dynamic-cert.json"; !bytes.Equal(before[f], after[f]) {
				t.Errorf("%s rewritten by a restart", f)
			}
		})
	}
}

// TestFieldsChanged: a restart with a new --tls-san reissues the serving
// certificates that carry config.SANs, and only those (fieldsChanged).
func TestFieldsChanged(t *testing.T) {
	o, _ := gen(t, k3sgen.Options{NoAgent: true}, t0)
	o.TLSSANs = []string{"new.example.com"}
	_, res := gen(t, o, t0.Add(day))
	want := []string{"etcd-peer-server-client", "etcd-server-client", "serving-kube-apiserver"}
	if !slices.Equal(res.Renewed, want) {
		t.Errorf("renewed %v, want %v", res.Renewed, want)
	}
	c := readCerts(t, filepath.Join(o.DataDir, "server/tls/serving-kube-apiserver.crt"))[0]
	if !slices.Contains(c.DNSNames, "new.example.com") {
		t.Errorf("SANs %v", c.DNSNames)
	}
}

// TestAgentFetchedEveryStart: the agent's certificates are new on each
// start, but the agent keeps its key (CSR signing, audit §4).
func TestAgentFetchedEveryStart(t *testing.T) {
	o, _ := gen(t, k3sgen.Options{}, t0)
	p := filepath.Join(o.DataDir, "agent/client-kubelet.key")
	c := filepath.Join(o.DataDir, "agent/client-kubelet.crt")
	k1, c1 := read(t, p), read(t, c)
	gen(t, o, t0.Add(day))
	if !bytes.Equal(k1, read(t, p)) {
		t.Error("agent key changed on start")
	}
	if bytes.Equal(c1, read(t, c)) {
		t.Error("agent certificate not fetched again on start")
	}
}

// TestKeyReusedWhenOnlyCertMissing: K3s's LoadOrGenerateKeyFile(key,
// regen=false) keeps the key when only the certificate is gone, and makes
// a new key when the leaf is regenerated (audit §2).
func TestKeyReusedWhenOnlyCertMissing(t *testing.T) {
	o, _ := gen(t, k3sgen.Options{NoAgent: true}, t0)
	crt := filepath.Join(o.DataDir, "server/tls/client-admin.crt")
	key := filepath.Join(o.DataDir, "server/tls/client-admin.key")
	k1 := read(t, key)
	if err := os.Remove(crt); err != nil {
		t.Fatal(err)
	}
	gen(t, o, t0.Add(day))
	if !bytes.Equal(k1, read(t, key)) {
		t.Error("key replaced although only the certificate was missing")
	}
	gen(t, o, t0.Add(300*day)) // inside the window: regenerated with a new key
	if bytes.Equal(k1, read(t, key)) {
		t.Error("key kept on regeneration")
	}
}

// TestDeletingRowAndSelfSigned: the current row deletes the two legacy
// proxy certificates at every start (keeping the keys); pre-2025 rows with
// Rancher's --cert-dir get self-signed kube-* pairs that are never renewed.
func TestDeletingRowAndSelfSigned(t *testing.T) {
	o, _ := gen(t, k3sgen.Options{NoAgent: true, Profile: k3s.ProfileV119}, t0)
	crt := filepath.Join(o.DataDir, "server/tls/client-kube-proxy.crt")
	if _, err := os.Stat(crt); err != nil {
		t.Fatalf("v1.24.3 row writes client-kube-proxy.crt: %v", err)
	}
	o.Profile = k3s.ProfileCurrent
	gen(t, o, t0.Add(day))
	if _, err := os.Stat(crt); !os.IsNotExist(err) {
		t.Errorf("current row left client-kube-proxy.crt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.DataDir, "server/tls/client-kube-proxy.key")); err != nil {
		t.Errorf("key removed: %v", err)
	}

	o2, _ := gen(t, k3sgen.Options{NoAgent: true, Profile: k3s.ProfileV119, RancherCertDir: true}, t0)
	p := filepath.Join(o2.DataDir, "server/tls/kube-scheduler/kube-scheduler.crt")
	certs := readCerts(t, p)
	if len(certs) != 2 || !certs[1].IsCA || certs[0].CheckSignatureFrom(certs[1]) != nil || !strings.HasPrefix(certs[0].Subject.CommonName, "localhost@") {
		t.Fatalf("self-signed pair %+v", certs)
	}
	gen(t, o2, t0.Add(400*day))
	if again := readCerts(t, p); !again[0].Equal(certs[0]) {
		t.Error("the self-signed pair was renewed; nobody renews it")
	}
}

// TestAdvance: every certificate file moves by exactly the given days,
// keeps subject, serial, key and SANs, and every chain still verifies.
func TestAdvance(t *testing.T) {
	const days = 420
	kc := filepath.Join(t.TempDir(), "k3s.yaml")
	o, _ := gen(t, k3sgen.Options{Profile: k3s.ProfileV118, Listener: true, Kubeconfig: kc}, t0)
	type fileCerts map[string][]*x509.Certificate
	load := func() fileCerts {
		out := fileCerts{}
		for rel, b := range snapshot(t, o.DataDir) {
			if strings.HasSuffix(rel, ".crt") {
				out[rel] = readCerts(t, filepath.Join(o.DataDir, rel))
			}
			if strings.HasSuffix(rel, "dynamic-cert.json") {
				var sec k3sgen.ListenerSecret
				if err := json.Unmarshal(b, &sec); err != nil {
					t.Fatal(err)
				}
				out[rel], _ = pki.ParseCerts(sec.Data["tls.crt"])
			}
		}
		cfg, err := clientcmd.LoadFromFile(kc)
		if err != nil {
			t.Fatal(err)
		}
		out["k3s.yaml"], _ = pki.ParseCerts(cfg.AuthInfos["default"].ClientCertificateData)
		return out
	}
	before := load()
	if _, err := k3sgen.Advance(o.DataDir, kc, days); err != nil {
		t.Fatal(err)
	}
	after := load()
	if len(after) != len(before) || len(after) < 20 {
		t.Fatalf("%d files before, %d after", len(before), len(after))
	}
	roots := map[string]*x509.Certificate{}
	for _, certs := range after {
		for _, c := range certs {
			if c.IsCA {
				roots[string(c.SubjectKeyId)] = c
			}
		}
	}
	for rel, certs := range after {
		t.Run(rel, func(t *testing.T) {
			if len(certs) != len(before[rel]) {
				t.Fatalf("%d certs, was %d", len(certs), len(before[rel]))
			}
			for i, c := range certs {
				b := before[rel][i]
				if !c.NotBefore.Equal(b.NotBefore.Add(-days*day)) || !c.NotAfter.Equal(b.NotAfter.Add(-days*day)) {
					t.Errorf("cert %d: %s – %s, was %s – %s", i, c.NotBefore, c.NotAfter, b.NotBefore, b.NotAfter)
				}
				if c.SerialNumber.Cmp(b.SerialNumber) != 0 || c.Subject.String() != b.Subject.String() ||
					!slices.Equal(pki.SANs(c), pki.SANs(b)) || !bytes.Equal(c.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo) {
					t.Errorf("cert %d: identity changed", i)
				}
				ca := roots[string(c.AuthorityKeyId)]
				if c.IsCA && len(c.AuthorityKeyId) == 0 {
					ca = c
				}
				if ca == nil {
					t.Fatalf("cert %d: no CA", i)
				}
				// Verify where both are valid: the shifted "now".
				if err := pki.VerifyAt(c, []*x509.Certificate{ca}, nil, t0.Add(-days*day).Add(time.Hour), x509.ExtKeyUsageAny); err != nil {
					t.Errorf("cert %d (%s) does not verify after Advance: %v", i, c.Subject.CommonName, err)
				}
			}
			// A CA that appears in several bundles is the same everywhere.
			for _, c := range certs[1:] {
				if r := roots[string(c.SubjectKeyId)]; !r.Equal(c) {
					t.Errorf("CA %s differs between files", c.Subject.CommonName)
				}
			}
		})
	}
	var sec k3sgen.ListenerSecret
	if err := json.Unmarshal(read(t, filepath.Join(o.DataDir, "server/tls/dynamic-cert.json")), &sec); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("SHA1=%X", sha1.Sum(after["server/tls/dynamic-cert.json"][0].Raw)); sec.Metadata.Annotations["listener.cattle.io/fingerprint"] != want {
		t.Errorf("fingerprint annotation not updated")
	}
}

// TestReferenceScenario is the reference failure (facts §3.5): K3s v1.18
// first started 2020-07-26; 420 days later a restart renews every file in
// server/tls but dynamic-cert.json keeps the expired listener certificate.
func TestReferenceScenario(t *testing.T) {
	o, _ := gen(t, k3sgen.Options{Profile: k3s.ProfileV118, Listener: true}, t0)
	if _, err := k3sgen.Advance(o.DataDir, "", 420); err != nil {
		t.Fatal(err)
	}
	_, res := gen(t, o, t0)
	for _, id := range []string{"client-admin", "serving-kube-apiserver", "client-kube-apiserver"} {
		if !slices.Contains(res.Renewed, id) {
			t.Errorf("%s not renewed: %+v", id, res)
		}
	}
	admin := readCerts(t, filepath.Join(o.DataDir, "server/tls/client-admin.crt"))[0]
	if st := pki.StatusAt(admin, t0, 90); st != pki.OK {
		t.Errorf("client-admin %s after restart", st)
	}
	var sec k3sgen.ListenerSecret
	if err := json.Unmarshal(read(t, filepath.Join(o.DataDir, "server/tls/dynamic-cert.json")), &sec); err != nil {
		t.Fatal(err)
	}
	lc, _ := pki.ParseCerts(sec.Data["tls.crt"])
	if st := pki.StatusAt(lc[0], t0, 90); st != pki.Expired {
		t.Errorf("listener %s, want EXPIRED", st)
	}
}

// TestBundleWithCAChain: with a custom CA whose file holds a chain, leaf
// files carry the whole CA bundle, except on v1.18 which wrote leaf + the
// first CA only (facts §1.1).
func TestBundleWithCAChain(t *testing.T) {
	src, _ := gen(t, k3sgen.Options{NoAgent: true}, t0)
	chain := append(read(t, filepath.Join(src.DataDir, "server/tls/server-ca.crt")), read(t, filepath.Join(src.DataDir, "server/tls/client-ca.crt"))...)
	for _, tt := range []struct {
		prof k3s.Profile
		want int
	}{{k3s.ProfileV118, 2}, {k3s.ProfileV119, 3}, {k3s.ProfileCurrent, 3}} {
		t.Run(tt.prof.Name, func(t *testing.T) {
			dir := t.TempDir()
			tls := filepath.Join(dir, "server", "tls")
			if err := os.MkdirAll(tls, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tls, "server-ca.crt"), chain, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tls, "server-ca.key"), read(t, filepath.Join(src.DataDir, "server/tls/server-ca.key")), 0o600); err != nil {
				t.Fatal(err)
			}
			o, res := gen(t, k3sgen.Options{DataDir: dir, Profile: tt.prof, NoAgent: true}, t0)
			if !slices.Contains(res.Kept, "server-ca") {
				t.Errorf("custom CA not kept: %+v", res)
			}
			certs := readCerts(t, filepath.Join(o.DataDir, "server/tls/serving-kube-apiserver.crt"))
			if len(certs) != tt.want {
				t.Errorf("%d certificates in the bundle, want %d", len(certs), tt.want)
			}
			if got := read(t, filepath.Join(tls, "server-ca.crt")); !bytes.Equal(got, chain) {
				t.Error("custom CA file rewritten")
			}
		})
	}
}
