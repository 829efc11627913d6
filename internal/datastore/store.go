// Package datastore reads and writes Kubernetes objects where K3s keeps
// them, without the API: kine's SQLite database (server/db/state.db) and
// etcd (embedded or --datastore-endpoint). It decodes the Kubernetes
// protobuf encoding and the secrets-encryption envelope, so that k3scert
// can read the listener secret on a node whose API does not answer, and
// replace or delete it offline.
//
// Writes to SQLite append the rows kine itself appends (a new revision per
// write, tombstone rows for deletions, kine's compare-and-swap on the
// newest row), with database/sql on kine's table; the tests check them
// against real kine in both directions. kine's library is not linked into
// the product. Writes are refused while another process holds the
// database, and nothing here checkpoints or compacts a K3s database.
//
// It must not read the clock (callers pass deadlines through ctx) and must
// not import internal/kube, internal/check or internal/source: it knows
// storage, not policy. Reads use mattn/go-sqlite3, kine's driver in cgo
// builds.
package datastore

import (
	"context"
	"errors"
	"fmt"
)

// KV is one stored value with its etcd revisions (for kine: row ids).
type KV struct {
	Key            string
	Value          []byte
	Revision       int64 // mod revision: kine's row id
	CreateRevision int64
}

// Store is a key-value datastore as kube-apiserver sees it. Writes are
// conditional on the revision, the way kube-apiserver writes.
type Store interface {
	// Kind is "sqlite" or "etcd".
	Kind() string
	// Location names the database file or the endpoints for messages.
	Location() string
	// Get returns the current value of key, or ErrNotFound.
	Get(ctx context.Context, key string) (*KV, error)
	// Put writes value under key. rev 0 creates the key and fails with
	// ErrConflict when it exists; otherwise the key is replaced only if its
	// current revision is rev. It returns the new revision.
	Put(ctx context.Context, key string, value []byte, rev int64) (int64, error)
	// Delete removes key if its current revision is rev (ErrConflict
	// otherwise; ErrNotFound when it does not exist). It returns the
	// revision of the deletion.
	Delete(ctx context.Context, key string, rev int64) (int64, error)
	// Close releases connections and stops any in-process server.
	Close() error
}

// Errors callers can test with errors.Is.
var (
	ErrNotFound    = errors.New("not found in the datastore")
	ErrConflict    = errors.New("changed concurrently (revision mismatch)")
	ErrBusy        = errors.New("database in use by another process")
	ErrNotProtobuf = errors.New("not a Kubernetes protobuf value")
	ErrEncrypted   = errors.New("encrypted value cannot be decrypted")
	ErrUnreachable = errors.New("datastore did not answer")
)

// BusyError says who holds a SQLite database that k3scert was about to
// write.
type BusyError struct {
	Path    string
	Holders []string // "k3s (pid 1234)", "kine socket /var/lib/.../kine.sock answers", ...
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is in use (%s): refusing to write while K3s runs; stop it first (systemctl stop k3s), or change the secret through the API",
		e.Path, joinHolders(e.Holders))
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(t error) bool { return t == ErrBusy }

func joinHolders(h []string) string {
	out := ""
	for i, s := range h {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}
