package datastore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
)

// NodeOptions locate a server's datastore.
type NodeOptions struct {
	DataDir string
	Program k3s.Program
	// Endpoint is K3s's --datastore-endpoint; "" = the embedded datastore
	// (embedded etcd when server/db/etcd exists, else SQLite). Only etcd
	// endpoints (https:// or http://) are supported.
	Endpoint string
	Timeout  time.Duration // etcd connect and request timeout
}

// OpenNode opens the datastore of a server node and its secrets
// encryption config. The caller closes the Store.
func OpenNode(o NodeOptions) (Secrets, error) {
	d := k3s.DatastoreSpec(o.Program)
	path := func(rel string) string { return filepath.Join(o.DataDir, filepath.FromSlash(rel)) }
	enc, err := LoadEncryption(path(d.EncryptionCfg))
	if err != nil {
		return Secrets{}, err
	}
	var st Store
	switch {
	case o.Endpoint != "":
		if !strings.HasPrefix(o.Endpoint, "https://") && !strings.HasPrefix(o.Endpoint, "http://") {
			return Secrets{}, fmt.Errorf("datastore endpoint %q: only etcd endpoints (https://, http://) are supported offline", redact(o.Endpoint))
		}
		st, err = openNodeEtcd(o, d, strings.Split(o.Endpoint, ","))
	case exists(path(d.EtcdDir)):
		// Embedded etcd wins: a node migrated from SQLite to etcd
		// (--cluster-init) may still have the old state.db.
		st, err = openNodeEtcd(o, d, []string{d.EtcdEndpoint})
	case exists(path(d.SQLite)):
		st, err = OpenSQLite(path(d.SQLite), path(d.KineSocket))
	default:
		return Secrets{}, fmt.Errorf("no datastore under %s: neither %s nor %s exists (an agent, or an external datastore: pass its endpoint)",
			o.DataDir, d.SQLite, d.EtcdDir)
	}
	if err != nil {
		return Secrets{}, err
	}
	return Secrets{Store: st, Encryption: enc}, nil
}

func openNodeEtcd(o NodeOptions, d k3s.Datastore, eps []string) (Store, error) {
	ca, ok1 := k3s.ByID(o.Program, k3s.ProfileCurrent, d.EtcdCA)
	cl, ok2 := k3s.ByID(o.Program, k3s.ProfileCurrent, d.EtcdClient)
	if !ok1 || !ok2 {
		return nil, errors.New("k3s table has no etcd certificates")
	}
	p := func(rel string) string { return filepath.Join(o.DataDir, filepath.FromSlash(rel)) }
	return OpenEtcd(EtcdOptions{Endpoints: eps, CAFile: p(ca.Cert), CertFile: p(cl.Cert), KeyFile: p(cl.Key), Timeout: o.Timeout})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// redact hides credentials in a DSN-like endpoint.
func redact(ep string) string {
	if i := strings.Index(ep, "@"); i >= 0 {
		if j := strings.Index(ep, "://"); j >= 0 && j < i {
			return ep[:j+3] + "***" + ep[i:]
		}
		return "***" + ep[i:]
	}
	return ep
}
