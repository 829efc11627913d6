package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	_ "github.com/mattn/go-sqlite3" // the driver kine uses (cgo builds)
)

// SQLite is a Store over kine's SQLite database (server/db/state.db).
//
// Reads open the file read-only with plain SQL (safe while K3s runs: the
// database is in WAL mode). Writes run kine's own library in-process over
// the file, on a private unix socket, and talk to it with the etcd client,
// exactly as kube-apiserver does; they are refused while another process
// holds the database.
type SQLite struct {
	Path string
	// Socket is K3s's kine socket (server/kine.sock); when it answers, K3s
	// runs. "" skips that probe.
	Socket string

	mu   sync.Mutex
	db   *sql.DB
	kine *kineServer
}

// OpenSQLite prepares access to a kine database. The file must exist.
func OpenSQLite(path, socket string) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("kine database: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("kine database %s is a directory", abs)
	}
	return &SQLite{Path: abs, Socket: socket}, nil
}

// Kind implements Store.
func (s *SQLite) Kind() string { return "sqlite" }

// Location implements Store.
func (s *SQLite) Location() string { return s.Path }

func (s *SQLite) reader() (*sql.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		return s.db, nil
	}
	u := url.URL{Scheme: "file", Path: s.Path, RawQuery: "mode=ro&_busy_timeout=5000"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s.db = db
	return db, nil
}

// getSQL is kine's notion of the current value: the newest row by id for
// the name, unless that row is a deletion (facts §5.1).
const getSQL = `SELECT id, create_revision, created, deleted, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1`

// Get implements Store.
func (s *SQLite) Get(ctx context.Context, key string) (*KV, error) {
	db, err := s.reader()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.Path, err)
	}
	var id, createRev, created, deleted sql.NullInt64
	var value []byte
	err = db.QueryRowContext(ctx, getSQL, key).Scan(&id, &createRev, &created, &deleted, &value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%s: %w (%s)", key, ErrNotFound, s.Path)
	case err != nil:
		return nil, fmt.Errorf("read %s from %s: %w", key, s.Path, err)
	}
	if deleted.Int64 != 0 {
		return nil, fmt.Errorf("%s: %w (deleted at revision %d in %s)", key, ErrNotFound, id.Int64, s.Path)
	}
	cr := createRev.Int64
	if created.Int64 != 0 {
		cr = id.Int64 // kine reports a create row's own id as its create revision
	}
	return &KV{Key: key, Value: value, Revision: id.Int64, CreateRevision: cr}, nil
}

// writer starts kine over the file after checking nobody else holds it.
func (s *SQLite) writer() (*Etcd, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kine != nil {
		return s.kine.store, nil
	}
	if s.db != nil { // our own read connection must not count as a holder
		s.db.Close()
		s.db = nil
	}
	if err := CheckNotBusy(s.Path, s.Socket); err != nil {
		return nil, err
	}
	k, err := startKine(s.Path)
	if err != nil {
		return nil, err
	}
	s.kine = k
	return k.store, nil
}

// Put implements Store through kine.
func (s *SQLite) Put(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	w, err := s.writer()
	if err != nil {
		return 0, err
	}
	return w.Put(ctx, key, value, rev)
}

// Delete implements Store through kine: kine appends a tombstone row
// (deleted=1) with a new revision.
func (s *SQLite) Delete(ctx context.Context, key string, rev int64) (int64, error) {
	w, err := s.writer()
	if err != nil {
		return 0, err
	}
	return w.Delete(ctx, key, rev)
}

// Close implements Store: it stops the in-process kine, if any, and waits
// for its goroutines and database connections to end.
func (s *SQLite) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	if s.kine != nil {
		if e := s.kine.stop(); e != nil && err == nil {
			err = e
		}
		s.kine = nil
	}
	return err
}
