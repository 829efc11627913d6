package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func genNode(t testing.TB) string {
	t.Helper()
	dd := t.TempDir()
	if _, err := k3sgen.Start(k3sgen.Options{DataDir: dd, NoAgent: true}, t0); err != nil {
		t.Fatal(err)
	}
	return dd
}

// fakeAPI is a loopback TLS server that, like kube-apiserver, requires a
// client certificate from the node's client CA and serves the node's
// serving-kube-apiserver certificate. Its clock is serverNow.
type fakeAPI struct {
	srv     *httptest.Server
	mu      sync.Mutex
	secret  *corev1.Secret
	users   []string // CN/O of verified client certificates
	deleted bool
}

func startAPI(t testing.TB, dataDir string, serverNow time.Time) *fakeAPI {
	t.Helper()
	p := func(rel string) string { return filepath.Join(dataDir, filepath.FromSlash(rel)) }
	kp, err := tls.LoadX509KeyPair(p("server/tls/serving-kube-apiserver.crt"), p("server/tls/serving-kube-apiserver.key"))
	if err != nil {
		t.Fatal(err)
	}
	ccas, err := readCerts(p("server/tls/client-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range ccas {
		pool.AddCert(c)
	}
	f := &fakeAPI{secret: &corev1.Secret{TypeMeta: metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "k3s-serving", Namespace: "kube-system", ResourceVersion: "7"},
		Type:       corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("CERT"), "tls.key": []byte("KEY")}}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Time: func() time.Time { return serverNow }, MinVersion: tls.VersionTLS12}
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := r.TLS.PeerCertificates[0]
	f.users = append(f.users, c.Subject.CommonName+"/"+strings.Join(c.Subject.Organization, ",")+"/"+c.NotAfter.Sub(c.NotBefore).String())
	if r.URL.Path != "/api/v1/namespaces/kube-system/secrets/k3s-serving" && r.URL.Path != "/api/v1/namespaces/kube-system/secrets" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodGet:
		if f.deleted {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404})
			return
		}
		_ = json.NewEncoder(w).Encode(f.secret)
	case http.MethodDelete:
		f.deleted = true
		_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Success"})
	case http.MethodPut, http.MethodPost:
		b, _ := io.ReadAll(r.Body)
		// client-go sends protobuf or JSON, as it negotiates with a real apiserver.
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
		s, ok := obj.(*corev1.Secret)
		if err != nil || !ok {
			http.Error(w, fmt.Sprint("bad body: ", err), http.StatusBadRequest)
			return
		}
		s.ResourceVersion = "8"
		f.secret, f.deleted = s, false
		_ = json.NewEncoder(w).Encode(s)
	}
}

func closedAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func options(t testing.TB, dataDir string, now time.Time, addrs ...string) Options {
	t.Helper()
	o, err := NodeOptions(dataDir, k3s.K3s, k3s.Ports{}, now, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	o.Addresses = addrs
	return o
}

func TestConnectValid(t *testing.T) {
	dd := genNode(t)
	now := t0.Add(24 * time.Hour)
	api := startAPI(t, dd, now)
	c, err := Connect(context.Background(), options(t, dd, now, api.srv.Listener.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.GetServingSecret(context.Background(), "kube-system", "k3s-serving")
	if err != nil || string(s.Data["tls.crt"]) != "CERT" {
		t.Fatalf("%v %v", s, err)
	}
	if c.Shifted || c.Via() != "api" || !c.VerifiedAt.Equal(now) {
		t.Fatalf("valid chain: shifted=%v via=%q at=%v", c.Shifted, c.Via(), c.VerifiedAt)
	}
	if len(api.users) != 1 || api.users[0] != "system:admin/system:masters/1h5m0s" {
		t.Fatalf("server saw client %v", api.users)
	}
}

func TestConnectExpiredServedCert(t *testing.T) {
	dd := genNode(t)
	// 400 days later every leaf has expired; the client CA has not.
	now := t0.Add(400 * 24 * time.Hour)
	api := startAPI(t, dd, now)
	ctx := context.Background()
	served := mustLeaf(t, filepath.Join(dd, "server/tls/serving-kube-apiserver.crt"))

	// Plain TLS at the real time fails: this is what kubectl sees.
	if _, err := probe(ctx, api.srv.Listener.Addr().String(), &tls.Config{RootCAs: poolOf(t, dd), Time: func() time.Time { return now }}, time.Second); err == nil ||
		!strings.Contains(err.Error(), "expired") {
		t.Fatalf("plain client: %v", err)
	}

	// Preferred address closed (no apiserver on :6444): falls back.
	o := options(t, dd, now, closedAddr(t), api.srv.Listener.Addr().String())
	c, err := Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Shifted || c.Reason != "served certificate expired" || c.Address != api.srv.Listener.Addr().String() {
		t.Fatalf("%+v", c)
	}
	if !c.VerifiedAt.Before(served.NotAfter) || c.VerifiedAt.Before(served.NotBefore) {
		t.Fatalf("verified at %v, outside %v..%v", c.VerifiedAt, served.NotBefore, served.NotAfter)
	}
	want := "api (verified at " + c.VerifiedAt.UTC().Format(time.RFC3339) + ": served certificate expired)"
	if c.Via() != want {
		t.Fatalf("via %q, want %q", c.Via(), want)
	}
	s, err := c.GetServingSecret(ctx, "kube-system", "k3s-serving")
	if err != nil || string(s.Data["tls.crt"]) != "CERT" {
		t.Fatalf("%v %v", s, err)
	}
	s.Data["tls.crt"] = []byte("NEW")
	if _, err := c.UpdateServingSecret(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteServingSecret(ctx, "kube-system", "k3s-serving"); err != nil {
		t.Fatal(err)
	}
	if s, err := c.GetServingSecret(ctx, "kube-system", "k3s-serving"); err != nil || s != nil {
		t.Fatalf("after delete: %v %v", s, err)
	}
	if api.secret.Data["tls.crt"] == nil || string(api.secret.Data["tls.crt"]) != "NEW" {
		t.Fatal("update did not reach the server")
	}
}

func TestConnectWrongCA(t *testing.T) {
	dd, other := genNode(t), genNode(t)
	now := t0.Add(400 * 24 * time.Hour) // expired too: the time shift must not hide a wrong CA
	api := startAPI(t, other, now)
	_, err := Connect(context.Background(), options(t, dd, now, api.srv.Listener.Addr().String()))
	if err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("got %v", err)
	}
	t.Logf("wrong CA: %v", err)
	if len(api.users) != 0 {
		t.Fatal("a request reached a server signed by another CA")
	}
}

func TestConnectNothingAnswers(t *testing.T) {
	dd := genNode(t)
	_, err := Connect(context.Background(), options(t, dd, t0, closedAddr(t), closedAddr(t)))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v", err)
	}
}

func TestMintAdmin(t *testing.T) {
	dd := genNode(t)
	o := options(t, dd, t0)
	c, err := MintAdmin(o.ClientCA, o.ClientCAKey, t0, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Leaf
	if l.Subject.CommonName != "system:admin" || len(l.Subject.Organization) != 1 || l.Subject.Organization[0] != "system:masters" {
		t.Fatalf("subject %v", l.Subject)
	}
	if err := pki.VerifyAt(l, []*x509.Certificate{o.ClientCA}, nil, t0, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	if !l.NotAfter.Equal(t0.Add(time.Hour)) {
		t.Fatalf("NotAfter %v", l.NotAfter)
	}
	if _, err := MintAdmin(nil, nil, t0, 0); err == nil {
		t.Fatal("minted without a CA")
	}
}

func readCerts(p string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return pki.ParseCerts(b)
}

func mustLeaf(t testing.TB, p string) *x509.Certificate {
	t.Helper()
	cs, err := readCerts(p)
	if err != nil {
		t.Fatal(err)
	}
	return cs[0]
}

func poolOf(t testing.TB, dd string) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(mustLeaf(t, filepath.Join(dd, "server/tls/server-ca.crt")))
	return pool
}

// BenchmarkAPIGetSecret: mint, probe (twice when expired), connect and
// GET the secret over loopback TLS (what `check --secret api` does).
func BenchmarkAPIGetSecret(b *testing.B) {
	for _, tc := range []struct {
		name string
		days int
	}{{"valid", 1}, {"expired", 400}} {
		b.Run(tc.name, func(b *testing.B) {
			dd := genNode(b)
			now := t0.Add(time.Duration(tc.days) * 24 * time.Hour)
			api := startAPI(b, dd, now)
			o := options(b, dd, now, api.srv.Listener.Addr().String())
			for b.Loop() {
				c, err := Connect(context.Background(), o)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.GetServingSecret(context.Background(), "kube-system", "k3s-serving"); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
