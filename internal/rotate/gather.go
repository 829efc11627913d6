package rotate

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/k3scert/k3scert/internal/check"
	"github.com/k3scert/k3scert/internal/datastore"
	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/report"
	corev1 "k8s.io/api/core/v1"
)

// Gather observes the node and returns the plan input: the node, its
// findings now, which leaves exist, and fingerprints of every file the
// plan will read (certificates, CAs, dynamic-cert.json).
func Gather(ctx context.Context, o check.Options, method, service, datastoreDesc string) (Input, error) {
	n, err := check.Resolve(o)
	if err != nil {
		return Input{}, err
	}
	r, _, err := check.RunNode(ctx, n, o)
	if err != nil {
		return Input{}, err
	}
	kc := o.AdminKubeconfig
	if kc == "" {
		kc = k3s.DefaultKubeconfig(n.Program)
	}
	in := Input{Node: r.Node, Program: n.Program, Profile: n.Profile, Method: method, Service: service, Datastore: datastoreDesc,
		Kubeconfig: kc, Now: o.At, Present: map[string]bool{}, Findings: r.Findings, NoOfflineSecret: !OfflineSecret(n.DataDir)}
	paths := []string{}
	for _, s := range k3s.Specs(n.Program, n.Profile) {
		if s.Role != k3s.RoleServer || s.Cert == "" {
			continue
		}
		p := filepath.Join(n.DataDir, filepath.FromSlash(s.Cert))
		if _, err := os.Stat(p); err == nil {
			in.Present[s.Cert] = true
			paths = append(paths, p)
		}
	}
	paths = append(paths, filepath.Join(n.DataDir, filepath.FromSlash(k3s.ListenerSpec(n.Program).JSONPath)))
	for _, p := range paths {
		if fs, err := Fingerprint(p); err == nil {
			in.Inputs = append(in.Inputs, fs)
		}
	}
	return in, nil
}

// Report exposes the check report a plan was built from.
func (in Input) Report() []report.Finding { return in.Findings }

// DatastoreSecrets opens the node's datastore offline (K3s stopped) for
// the serving secret.
func DatastoreSecrets(o datastore.NodeOptions) func(ctx context.Context) (SecretStore, error) {
	key := k3s.ListenerSpec(o.Program).SecretKey()
	return func(ctx context.Context) (SecretStore, error) {
		s, err := datastore.OpenNode(o)
		if err != nil {
			return nil, err
		}
		return dsSecrets{s: s, key: key}, nil
	}
}

type dsSecrets struct {
	s   datastore.Secrets
	key string
}

func (d dsSecrets) Get(ctx context.Context) (*corev1.Secret, error) {
	sec, _, err := d.s.Get(ctx, d.key)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil, nil
	}
	return sec, err
}

func (d dsSecrets) Put(ctx context.Context, s *corev1.Secret) error {
	_, err := d.s.Put(ctx, d.key, s)
	return err
}

func (d dsSecrets) Delete(ctx context.Context) error {
	_, err := d.s.Delete(ctx, d.key)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	return err
}

func (d dsSecrets) Close() error { return d.s.Store.Close() }

// OfflineSecret reports whether the serving secret can be written with
// K3s stopped: kine's SQLite can (through kine's library), embedded etcd
// cannot (it runs inside K3s).
func OfflineSecret(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "server", "db", "state.db"))
	return err == nil
}

// DescribeDatastore names the datastore for the plan.
func DescribeDatastore(dataDir string) string {
	if _, err := os.Stat(filepath.Join(dataDir, "server", "db", "state.db")); err == nil {
		return "sqlite server/db/state.db through kine's library, offline while K3s is stopped"
	}
	if _, err := os.Stat(filepath.Join(dataDir, "server", "db", "etcd")); err == nil {
		return "embedded etcd: stops with K3s, so the secret is not written offline (dynamiclistener re-syncs it on start)"
	}
	return "none found"
}
