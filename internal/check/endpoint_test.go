package check_test

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/report"
)

// serve starts a TLS listener on 127.0.0.1:0 serving chain (PEM) with key
// (PEM) and returns its address and port. It is closed when the test ends.
// Every accepted connection completes its handshake and is closed.
func serve(t *testing.T, chainPEM, keyPEM []byte) (string, int) {
	t.Helper()
	pair, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	addr := ln.Addr().(*net.TCPAddr)
	return addr.String(), addr.Port
}

// listenerPair reads the chain and key of a dynamic-cert.json.
func listenerPair(t *testing.T, path string) ([]byte, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s k3sgen.ListenerSecret
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s.Data["tls.crt"], s.Data["tls.key"]
}

// supervisorAt points check at addr as the node's supervisor port.
func supervisorAt(addr string, port int) func(*check.Options) {
	return func(o *check.Options) {
		o.NoEndpoint = false
		o.Endpoints = []string{addr}
		o.Ports = &k3s.Ports{Supervisor: port}
	}
}

// TestK3C101LiveListener is the reference failure on the wire: after the
// restart the files are renewed, but the supervisor still serves the
// expired certificate (facts §3.5).
func TestK3C101LiveListener(t *testing.T) {
	n := newNode(t, k3s.ProfileV118, t0)
	n.Advance(420)
	chain, key := listenerPair(t, n.Path("server/tls/dynamic-cert.json"))
	n.Start(t0) // files renewed; the listener keeps its certificate
	addr, port := serve(t, chain, key)

	r := n.Check(t0, supervisorAt(addr, port))
	fs := findings(r, "K3C101")
	var onWire *report.Finding
	for i := range fs {
		if fs[i].Location == addr {
			onWire = &fs[i]
		}
	}
	if onWire == nil {
		dump(t, r)
		t.Fatalf("no K3C101 at %s", addr)
	}
	if onWire.Severity != report.Critical || !strings.Contains(onWire.Message, "the certificate served on "+addr) {
		t.Errorf("finding %+v", onWire)
	}
	if r.Summary.ExitCode != report.ExitCritical {
		t.Errorf("exit %d", r.Summary.ExitCode)
	}
	// The endpoint answered; its chain did not verify at --at, and what it
	// served is in dynamic-cert.json, so no K3C103.
	if len(r.Endpoints) != 1 || r.Endpoints[0].Status != "ok" || r.Endpoints[0].Trusted || !strings.Contains(r.Endpoints[0].VerifyError, "expired") {
		t.Errorf("endpoints %+v", r.Endpoints)
	}
	if len(findings(r, "K3C103")) != 0 || len(findings(r, "K3C900")) != 0 {
		dump(t, r)
		t.Error("unexpected K3C103/K3C900")
	}
	served := 0
	for _, c := range r.Certificates {
		if c.Source == "endpoint" && c.Location == addr {
			served++
			if c.Index == 0 && (c.Status != "EXPIRED" || c.Subject != "CN=k3s,O=k3s") {
				t.Errorf("served %+v", c)
			}
		}
	}
	if served != 2 {
		t.Errorf("%d served certificates, want leaf + CA", served)
	}

	// After the rotation the listener serves a valid certificate: clean.
	n2 := newNode(t, k3s.ProfileCurrent, t0)
	chain, key = listenerPair(t, n2.Path("server/tls/dynamic-cert.json"))
	addr, port = serve(t, chain, key)
	r = n2.Check(t0, supervisorAt(addr, port))
	if len(r.Findings) != 0 || len(r.Endpoints) != 1 || !r.Endpoints[0].Trusted {
		dump(t, r)
		t.Errorf("healthy listener: endpoints %+v", r.Endpoints)
	}
}

// TestK3C103UnknownEndpoint: the endpoint serves a valid certificate of the
// node's CA that is in no file (a process not restarted after its files
// changed), and one from a foreign CA.
func TestK3C103UnknownEndpoint(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	// Same CN/SANs as the apiserver, signed by server-ca, but a new key.
	b, err := os.ReadFile(n.Path("server/tls/server-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	cas, _ := pki.ParseCerts(b)
	kb, err := os.ReadFile(n.Path("server/tls/server-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, _, err := pki.ParseKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewECKey()
	leaf, err := pki.SignLeaf(pki.LeafRequest{CN: "kube-apiserver", IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: t0.Add(-2 * day), NotAfter: t0.Add(300 * day)}, key.Public(), cas[0], caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := pki.EncodeKey(key)
	addr, port := serve(t, pki.EncodeCerts(leaf, cas[0]), keyPEM)

	foreign := newNode(t, k3s.ProfileCurrent, t0)
	fchain, fkey := listenerPair(t, foreign.Path("server/tls/dynamic-cert.json"))
	faddr, _ := serve(t, fchain, fkey)

	r := n.Check(t0, func(o *check.Options) {
		o.NoEndpoint = false
		o.Endpoints = []string{addr, faddr}
		o.Ports = &k3s.Ports{APIServer: port}
	})
	for _, a := range []string{addr, faddr} {
		found := false
		for _, f := range findings(r, "K3C103") {
			if f.Location == a {
				found = true
				if f.Severity != report.Warning || !strings.Contains(f.Message, "in none of the files") {
					t.Errorf("finding %+v", f)
				}
			}
		}
		if !found {
			dump(t, r)
			t.Errorf("no K3C103 at %s", a)
		}
	}
	// The foreign chain does not verify against the node's CAs.
	found := false
	for _, f := range findings(r, "K3C302") {
		found = found || f.Location == faddr
	}
	if !found {
		dump(t, r)
		t.Errorf("no K3C302 for the foreign endpoint %s", faddr)
	}
	for _, e := range r.Endpoints {
		if e.Address == addr && (!e.Trusted || e.Role != "apiserver") {
			t.Errorf("endpoint %+v", e)
		}
	}
}

// TestEndpointNotAnswering: an explicit endpoint that refuses is a K3C900
// naming it; default endpoints that do not answer are not findings.
func TestEndpointNotAnswering(t *testing.T) {
	n := newNode(t, k3s.ProfileCurrent, t0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now

	r := n.Check(t0, func(o *check.Options) {
		o.NoEndpoint = false
		o.Endpoints = []string{addr}
	})
	fs := findings(r, "K3C900")
	if len(fs) != 1 || fs[0].Location != addr || !strings.Contains(fs[0].Message, "unreachable") {
		dump(t, r)
		t.Errorf("want one K3C900 at %s", addr)
	}
	// Defaults (only the closed port, so no real service is probed).
	r = n.Check(t0, func(o *check.Options) {
		o.NoEndpoint = false
		o.Ports = &k3s.Ports{Supervisor: port}
	})
	if len(r.Findings) != 0 || len(r.Endpoints) != 1 || r.Endpoints[0].Status != "refused" {
		dump(t, r)
		t.Errorf("endpoints %+v", r.Endpoints)
	}
	if r.Endpoints[0].Address != "127.0.0.1:"+strconv.Itoa(port) {
		t.Errorf("address %s", r.Endpoints[0].Address)
	}
}
