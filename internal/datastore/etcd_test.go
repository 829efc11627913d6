package datastore

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"go.etcd.io/etcd/server/v3/embed"
)

// fixtureEpoch is when test nodes are generated. A real etcd checks
// certificates against the real clock, so its fixtures are signed from a
// fixed date for ten years (2024-2033) instead of reading the clock.
var fixtureEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd runs an embedded etcd with client TLS from the node's etcd
// certificates, as K3s runs it (client certificates required).
func startEtcd(t testing.TB, dataDir string) string {
	t.Helper()
	p := func(rel string) string { return filepath.Join(dataDir, filepath.FromSlash(rel)) }
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Logger = "zap"
	cfg.LogLevel = "fatal" // Close logs its own shutdown as errors
	cu, _ := url.Parse("https://127.0.0.1:" + strconv.Itoa(freePort(t)))
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(freePort(t)))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ClientTLSInfo.CertFile = p("server/tls/etcd/server-client.crt")
	cfg.ClientTLSInfo.KeyFile = p("server/tls/etcd/server-client.key")
	cfg.ClientTLSInfo.TrustedCAFile = p("server/tls/etcd/server-ca.crt")
	cfg.ClientTLSInfo.ClientCertAuth = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		<-e.Server.StopNotify()
	})
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("etcd not ready")
	}
	return cu.String()
}

func genNode(t testing.TB) string {
	t.Helper()
	dd := t.TempDir()
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dd, NoAgent: true, ValidityDays: 3650}, fixtureEpoch); err != nil {
		t.Fatal(err)
	}
	return dd
}

func TestEtcdTLS(t *testing.T) {
	dd := genNode(t)
	ep := startEtcd(t, dd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sec, err := OpenNode(NodeOptions{DataDir: dd, Program: k3s.K3s, Endpoint: ep, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Store.Close()
	if sec.Store.Kind() != "etcd" {
		t.Fatalf("kind %s", sec.Store.Kind())
	}
	// Store it as kube-apiserver would (conditional create of the protobuf).
	if _, err := sec.Store.Put(ctx, testKey, apiserverEncode(t, testSecret("ETCD-CERT")), 0); err != nil {
		t.Fatal(err)
	}
	s, info, err := sec.Get(ctx, testKey)
	if err != nil || string(s.Data["tls.crt"]) != "ETCD-CERT" || info.Revision == 0 {
		t.Fatalf("%v %+v %v", s, info, err)
	}
	if _, err := sec.Put(ctx, testKey, testSecret("ETCD-2")); err != nil {
		t.Fatal(err)
	}
	if s, _, err = sec.Get(ctx, testKey); err != nil || string(s.Data["tls.crt"]) != "ETCD-2" {
		t.Fatalf("after put: %v %v", s, err)
	}
	if _, err := sec.Delete(ctx, testKey); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sec.Get(ctx, testKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}

	// Wrong CA: the client refuses etcd's certificate; nothing is read.
	other := genNode(t)
	bad, err := OpenNode(NodeOptions{DataDir: other, Program: k3s.K3s, Endpoint: ep, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Store.Close()
	_, _, err = bad.Get(ctx, testKey)
	if err == nil || !strings.Contains(err.Error(), ep) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: %v", err)
	}
	t.Logf("wrong CA: %v", err)
}

func TestEtcdUnreachable(t *testing.T) {
	dd := genNode(t)
	ep := "https://127.0.0.1:" + strconv.Itoa(freePort(t)) // closed
	sec, err := OpenNode(NodeOptions{DataDir: dd, Program: k3s.K3s, Endpoint: ep, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Store.Close()
	_, _, err = sec.Get(context.Background(), testKey)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), ep) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v", err)
	}
	if _, err := sec.Delete(context.Background(), testKey); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("delete: %v", err)
	}
	t.Logf("unreachable: %v", err)
}

func TestOpenNodePrefersEmbeddedEtcd(t *testing.T) {
	dd := genNode(t)
	d := k3s.DatastoreSpec(k3s.K3s)
	if err := os.MkdirAll(filepath.Join(dd, filepath.FromSlash(d.EtcdDir)), 0o700); err != nil {
		t.Fatal(err)
	}
	newKineDB(t, filepath.Join(dd, "server", "db"))
	sec, err := OpenNode(NodeOptions{DataDir: dd, Program: k3s.K3s})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Store.Close()
	if sec.Store.Kind() != "etcd" || sec.Store.Location() != d.EtcdEndpoint {
		t.Fatalf("%s %s", sec.Store.Kind(), sec.Store.Location())
	}
}

func TestOpenNodeRejects(t *testing.T) {
	dd := t.TempDir()
	if _, err := OpenNode(NodeOptions{DataDir: dd, Program: k3s.K3s}); err == nil || !strings.Contains(err.Error(), "no datastore") {
		t.Fatalf("empty dir: %v", err)
	}
	_, err := OpenNode(NodeOptions{DataDir: dd, Program: k3s.K3s, Endpoint: "mysql://user:secret@tcp(127.0.0.1:3306)/k3s"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("mysql endpoint: %v (must not leak the password)", err)
	}
}
