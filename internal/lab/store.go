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

	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	corev1 "k8s.io/api/core/v1"
)

// The lab talks to its kine directly over kine's etcd API, through
// internal/datastore (the same code k3scert uses on real nodes): that works
// whether the apiserver is up or not, and whatever state the certificates
// are in (kine in the lab listens on plain loopback HTTP, like a kine on a
// unix socket inside K3s).

func (n *Node) store() (*datastore.Etcd, error) {
	return datastore.OpenEtcd(datastore.EtcdOptions{
		Endpoints: []string{"http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.KinePort))},
		Timeout:   5 * time.Second,
	})
}

func (n *Node) waitKey(ctx context.Context, key string, timeout time.Duration) error {
	st, err := n.store()
	if err != nil {
		return err
	}
	defer st.Close()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok, _ := n.apiserver.exited(); ok {
			return errors.New("kube-apiserver exited")
		}
		if _, err := st.Get(ctx, key); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("key %s did not appear within %s", key, timeout)
}

// SecretKey is the datastore key of the serving secret.
func (n *Node) SecretKey() string { return k3s.ListenerSpec(n.o.Program).SecretKey() }

// rawSecret returns the stored value and revision of the serving secret,
// or nil when it does not exist.
func (n *Node) rawSecret(ctx context.Context) (*datastore.KV, error) {
	st, err := n.store()
	if err != nil {
		return nil, err
	}
	defer st.Close()
	kv, err := st.Get(ctx, n.SecretKey())
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	return kv, err
}

// ReadSecret reads the serving secret from the datastore (kine must run).
// It returns nil, 0, nil when the secret does not exist.
func (n *Node) ReadSecret(ctx context.Context) (*corev1.Secret, int64, error) {
	kv, err := n.rawSecret(ctx)
	if err != nil || kv == nil {
		return nil, 0, err
	}
	if bytes.HasPrefix(kv.Value, []byte("k8s:enc:")) {
		return nil, kv.Revision, fmt.Errorf("secret %s is encrypted at rest", n.SecretKey())
	}
	s, err := datastore.DecodeSecret(kv.Value)
	if err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", n.SecretKey(), err)
	}
	return s, kv.Revision, nil
}

// RawSecret returns the stored bytes of the serving secret.
func (n *Node) RawSecret(ctx context.Context) ([]byte, error) {
	kv, err := n.rawSecret(ctx)
	if err != nil || kv == nil {
		return nil, err
	}
	return kv.Value, nil
}

func (n *Node) writeSecret(ctx context.Context, s *corev1.Secret, rev int64) error {
	b, err := datastore.EncodeSecret(s)
	if err != nil {
		return err
	}
	st, err := n.store()
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.Put(ctx, n.SecretKey(), b, rev)
	return err
}

// DeleteSecret deletes the serving secret in the datastore, as
// `kubectl delete secret k3s-serving -n kube-system` would (kine must run:
// call it on a running node, or inside WithKine).
func (n *Node) DeleteSecret(ctx context.Context) error {
	st, err := n.store()
	if err != nil {
		return err
	}
	defer st.Close()
	kv, err := st.Get(ctx, n.SecretKey())
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = st.Delete(ctx, n.SecretKey(), kv.Revision)
	return err
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

// dbPath is kine's SQLite file: server/db/state.db, as K3s keeps it, or,
// with Options.DatastoreStopsWithK3s, a file outside the data dir.
func (n *Node) dbPath() (string, error) {
	dir := filepath.Join(n.dataDir, "server", "db")
	if n.o.DatastoreStopsWithK3s {
		dir = filepath.Join(n.o.Root, "datastore-stops-with-k3s")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return filepath.Join(dir, "state.db"), nil
}

// WithKine runs f with only the datastore running (K3s stopped), the way an
// operator works on the datastore of a stopped node.
func (n *Node) WithKine(ctx context.Context, f func() error) error {
	if n.started {
		return errors.New("lab: WithKine needs a stopped node")
	}
	if n.o.ExternalDatastore {
		return f() // the cluster's datastore keeps running
	}
	db, err := n.dbPath()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.o.KinePort))
	p, err := startProc("kine", n.logPath("kine"), nil, n.bins.Kine, "--endpoint", "sqlite://"+db,
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
