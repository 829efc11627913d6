package datastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/source"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdOptions say how to reach etcd.
type EtcdOptions struct {
	Endpoints []string // e.g. https://127.0.0.1:2379
	CAFile    string   // server/tls/etcd/server-ca.crt
	CertFile  string   // server/tls/etcd/client.crt
	KeyFile   string   // server/tls/etcd/client.key
	// Timeout bounds connecting and each request when ctx has no deadline
	// (default 5s).
	Timeout time.Duration
}

// Etcd is a Store over the etcd v3 API: a real etcd, or kine's endpoint.
type Etcd struct {
	c        *clientv3.Client
	kind     string
	location string
	timeout  time.Duration
	tls      *tls.Config
}

// OpenEtcd connects to etcd with client certificates. No request is sent
// until the first call.
func OpenEtcd(o EtcdOptions) (*Etcd, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoint")
	}
	cfg := clientv3.Config{Endpoints: o.Endpoints, DialTimeout: o.timeout(), Logger: zap.NewNop()}
	if needsTLS(o.Endpoints) || o.CAFile != "" {
		tc, err := etcdTLS(o)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	return &Etcd{c: c, kind: "etcd", location: strings.Join(o.Endpoints, ","), timeout: o.timeout(), tls: cfg.TLS}, nil
}

func (o EtcdOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 5 * time.Second
	}
	return o.Timeout
}

func needsTLS(eps []string) bool {
	for _, e := range eps {
		if strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "unixs://") {
			return true
		}
	}
	return false
}

func etcdTLS(o EtcdOptions) (*tls.Config, error) {
	if o.CAFile == "" || o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("etcd over TLS needs the CA, client certificate and key (server/tls/etcd/server-ca.crt, client.crt, client.key)")
	}
	ca, err := source.ReadFile(o.CAFile)
	if err != nil {
		return nil, fmt.Errorf("etcd CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("etcd CA %s: no PEM certificate", o.CAFile)
	}
	kp, err := loadKeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}, nil
}

// Kind implements Store.
func (e *Etcd) Kind() string { return e.kind }

// Location implements Store.
func (e *Etcd) Location() string { return e.location }

// Close implements Store.
func (e *Etcd) Close() error { return e.c.Close() }

func (e *Etcd) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout)
}

func (e *Etcd) wrap(op, key string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "DeadlineExceeded") {
		// gRPC retries quietly; find out what actually failed.
		if why := e.diagnose(); why != "" {
			return fmt.Errorf("%s %s at %s: %w: %s", op, key, e.location, ErrUnreachable, why)
		}
		return fmt.Errorf("%s %s at %s: %w within %s (%v)", op, key, e.location, ErrUnreachable, e.timeout, err)
	}
	return fmt.Errorf("%s %s at %s: %w", op, key, e.location, err)
}

// diagnose dials the first TCP endpoint once, with the client's TLS
// settings, to turn a gRPC timeout into its cause (refused, or the TLS
// verification error).
func (e *Etcd) diagnose() string {
	ep := e.c.Endpoints()
	if len(ep) == 0 {
		return ""
	}
	u, err := url.Parse(ep[0])
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	d := &net.Dialer{Timeout: e.timeout}
	if u.Scheme == "http" || e.tls == nil {
		c, err := d.Dial("tcp", u.Host)
		if err != nil {
			return err.Error()
		}
		c.Close()
		return ""
	}
	cfg := e.tls.Clone()
	cfg.ServerName = u.Hostname()
	c, err := tls.DialWithDialer(d, "tcp", u.Host, cfg)
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return err.Error()
	}
	if err != nil {
		return "TLS: " + err.Error()
	}
	c.Close()
	return ""
}

// Get implements Store.
func (e *Etcd) Get(ctx context.Context, key string) (*KV, error) {
	ctx, cancel := e.ctx(ctx)
	defer cancel()
	r, err := e.c.Get(ctx, key)
	if err != nil {
		return nil, e.wrap("get", key, err)
	}
	if len(r.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	kv := r.Kvs[0]
	return &KV{Key: key, Value: kv.Value, Revision: kv.ModRevision, CreateRevision: kv.CreateRevision}, nil
}

// Put implements Store, with the transactions kube-apiserver uses (which
// kine recognises as create and update).
func (e *Etcd) Put(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	ctx, cancel := e.ctx(ctx)
	defer cancel()
	var txn clientv3.Txn
	if rev == 0 {
		txn = e.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(value)))
	} else {
		txn = e.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(value))).Else(clientv3.OpGet(key))
	}
	r, err := txn.Commit()
	if err != nil {
		return 0, e.wrap("put", key, err)
	}
	if !r.Succeeded {
		return 0, fmt.Errorf("put %s (expected revision %d): %w", key, rev, ErrConflict)
	}
	return r.Header.Revision, nil
}

// Delete implements Store (kube-apiserver's conditional delete).
func (e *Etcd) Delete(ctx context.Context, key string, rev int64) (int64, error) {
	ctx, cancel := e.ctx(ctx)
	defer cancel()
	r, err := e.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, e.wrap("delete", key, err)
	}
	if !r.Succeeded {
		if len(r.Responses) > 0 {
			if g := r.Responses[0].GetResponseRange(); g != nil && len(g.Kvs) == 0 {
				return 0, fmt.Errorf("delete %s: %w", key, ErrNotFound)
			}
		}
		return 0, fmt.Errorf("delete %s (expected revision %d): %w", key, rev, ErrConflict)
	}
	return r.Header.Revision, nil
}

// loadKeyPair is tls.LoadX509KeyPair through the bounded, non-blocking
// reader: a FIFO or a huge file named by the node never hangs or exhausts
// the read of the secret.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := source.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	k, err := source.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(c, k)
}
