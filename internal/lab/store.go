package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// The lab talks to its kine directly over kine's etcd API: that works
// whether the apiserver is up or not, and whatever state the certificates
// are in (kine in the lab listens on plain loopback HTTP, like a kine on a
// unix socket inside K3s).

var secretCodec = func() runtime.Codec {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	codecs := serializer.NewCodecFactory(scheme)
	info, _ := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	return codecs.CodecForVersions(info.Serializer, info.Serializer, corev1.SchemeGroupVersion, corev1.SchemeGroupVersion)
}()

func (n *Node) etcd() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.KinePort))},
		DialTimeout: 3 * time.Second,
		Logger:      zap.NewNop(),
	})
}

func (n *Node) waitKey(ctx context.Context, key string, timeout time.Duration) error {
	c, err := n.etcd()
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok, _ := n.apiserver.exited(); ok {
			return errors.New("kube-apiserver exited")
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := c.Get(cctx, key, clientv3.WithCountOnly())
		cancel()
		if err == nil && r.Count > 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("key %s did not appear within %s", key, timeout)
}

// SecretKey is the datastore key of the serving secret.
func (n *Node) SecretKey() string { return k3s.ListenerSpec(n.o.Program).SecretKey() }

// ReadSecret reads the serving secret from the datastore (kine must run).
// It returns nil, 0, nil when the secret does not exist.
func (n *Node) ReadSecret(ctx context.Context) (*corev1.Secret, int64, error) {
	c, err := n.etcd()
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := c.Get(cctx, n.SecretKey())
	if err != nil {
		return nil, 0, err
	}
	if len(r.Kvs) == 0 {
		return nil, 0, nil
	}
	kv := r.Kvs[0]
	if bytes.HasPrefix(kv.Value, []byte("k8s:enc:")) {
		return nil, kv.ModRevision, fmt.Errorf("secret %s is encrypted at rest", n.SecretKey())
	}
	obj, _, err := secretCodec.Decode(kv.Value, nil, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", n.SecretKey(), err)
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, 0, fmt.Errorf("%s holds %T, not a Secret", n.SecretKey(), obj)
	}
	return s, kv.ModRevision, nil
}

// RawSecret returns the stored bytes of the serving secret.
func (n *Node) RawSecret(ctx context.Context) ([]byte, error) {
	c, err := n.etcd()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := c.Get(cctx, n.SecretKey())
	if err != nil || len(r.Kvs) == 0 {
		return nil, err
	}
	return r.Kvs[0].Value, nil
}

func (n *Node) writeSecret(ctx context.Context, s *corev1.Secret, modRev int64) error {
	var buf bytes.Buffer
	if err := secretCodec.Encode(s, &buf); err != nil {
		return err
	}
	c, err := n.etcd()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := n.SecretKey()
	r, err := c.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).Then(clientv3.OpPut(key, buf.String())).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return fmt.Errorf("secret %s changed while it was being rewritten", key)
	}
	return nil
}

// DeleteSecret deletes the serving secret in the datastore, as
// `kubectl delete secret k3s-serving -n kube-system` would (kine must run;
// call it with the node stopped or between Stop and Start via WithKine).
func (n *Node) DeleteSecret(ctx context.Context) error {
	c, err := n.etcd()
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// kine implements delete only in the form kube-apiserver sends it: a
	// transaction guarded by the key's current revision.
	key := n.SecretKey()
	g, err := c.Get(cctx, key)
	if err != nil || len(g.Kvs) == 0 {
		return err
	}
	r, err := c.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", g.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return fmt.Errorf("secret %s changed while it was being deleted", key)
	}
	return nil
}

// shiftSecret re-signs the secret's chain with the node's shifter.
func (n *Node) shiftSecret(ctx context.Context, s *k3sgen.Shifter) error {
	sec, rev, err := n.ReadSecret(ctx)
	if err != nil || sec == nil {
		return err
	}
	shifted, err := s.PEM(sec.Data[corev1.TLSCertKey])
	if err != nil {
		return fmt.Errorf("lab: shift secret: %w", err)
	}
	sec.Data[corev1.TLSCertKey] = shifted
	if certs, err := pki.ParseCerts(shifted); err == nil && sec.Annotations != nil {
		if _, ok := sec.Annotations["listener.cattle.io/fingerprint"]; ok {
			sec.Annotations["listener.cattle.io/fingerprint"] = k3sgen.SHA1Fingerprint(certs[0])
		}
	}
	return n.writeSecret(ctx, sec, rev)
}

// WithKine runs f with only the datastore running (K3s stopped), the way an
// operator works on the datastore of a stopped node.
func (n *Node) WithKine(ctx context.Context, f func() error) error {
	if n.started {
		return errors.New("lab: WithKine needs a stopped node")
	}
	dbDir := filepath.Join(n.dataDir, "server", "db")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.KinePort))
	p, err := startProc("kine", n.logPath("kine"), nil, n.bins.Kine, "--endpoint", "sqlite://"+filepath.Join(dbDir, "state.db"),
		"--listen-address", addr, "--metrics-bind-address", "0")
	if err != nil {
		return err
	}
	defer p.stop(5 * time.Second)
	if err := waitPort(ctx, p, addr, 20*time.Second); err != nil {
		return err
	}
	return f()
}

// writeEncryptionConfig writes an aescbc EncryptionConfiguration as
// `k3s server --secrets-encryption` does (key name aescbckey, facts §5.1).
func (n *Node) writeEncryptionConfig() error {
	p := filepath.Join(n.dataDir, "server", "cred", "encryption-config.json")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"aescbckey","secret":"%s"}]}},{"identity":{}}]}]}`,
		base64.StdEncoding.EncodeToString(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(cfg), 0o600)
}
