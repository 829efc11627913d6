package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/k3scert/k3scert/internal/source"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	_ "github.com/mattn/go-sqlite3" // the driver kine uses (cgo builds)
)

// SQLite is a Store over kine's SQLite database (server/db/state.db).
//
// Reads open the file read-only with plain SQL (safe while K3s runs: the
// database is in WAL mode, and a read-only connection never checkpoints
// the WAL). Writes append rows to kine's table with plain SQL, exactly the
// rows kine itself appends for a create, an update or a delete (see
// appendRow); they are refused while another process holds the database,
// so k3scert never writes, checkpoints or compacts under a running K3s.
// kine's library is not linked: it would bring every kine driver (NATS,
// Postgres, MySQL, t4) into the binary to open one SQLite file.
type SQLite struct {
	Path string
	// Socket is K3s's kine socket (server/kine.sock); when it answers, K3s
	// runs. "" skips that probe.
	Socket string

	mu sync.Mutex
	db *sql.DB // read-only
	w  *sql.DB // read-write, opened by the first write
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
	if !fi.Mode().IsRegular() {
		// A read-only open of a FIFO would wait for a writer forever.
		return nil, fmt.Errorf("kine database %s: %w", abs, source.ErrNotRegular)
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
	if s.w != nil { // after a write, read what was written on the same connection
		return s.w, nil
	}
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
// the name, unless that row is a deletion (facts §5.1; kine v0.17.5
// pkg/drivers/generic/generic.go:52 EqualsNameSQL "SELECT MAX(id) ... WHERE
// name = ?" then "deleted = 0").
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

// writeParams are the DSN parameters of kine's own connection that matter
// for one write (kine v0.17.5 pkg/drivers/sqlite/sqlite.go:23
// DefaultParams, v0.16.4 the same): WAL, a 30 s busy timeout, NORMAL
// synchronous, and BEGIN IMMEDIATE so the read-then-insert below holds the
// write lock from its first statement. Not kine's "cache=shared" (one
// connection here) and no checkpoint: kine's startup
// "PRAGMA wal_checkpoint(TRUNCATE)" (sqlite.go:135) and its startup VACUUM
// (sqlite.go:174) are exactly what k3scert must not do to a K3s database.
const writeParams = "_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate"

// writer opens a read-write connection after checking nobody else holds
// the file.
func (s *SQLite) writer() (*sql.DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		return s.w, nil
	}
	if s.db != nil { // our own read connection must not count as a holder
		s.db.Close()
		s.db = nil
	}
	if err := CheckNotBusy(s.Path, s.Socket); err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: s.Path, RawQuery: "mode=rw&" + writeParams}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("open %s for writing: %w", s.Path, err)
	}
	db.SetMaxOpenConns(1)
	s.w = db
	return db, nil
}

// Put implements Store: a create row (rev 0) or an update row.
func (s *SQLite) Put(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	w, err := s.writer()
	if err != nil {
		return 0, err
	}
	return s.appendRow(ctx, w, "put", key, value, rev)
}

// Delete implements Store: kine's tombstone row (deleted=1) with a new
// revision.
func (s *SQLite) Delete(ctx context.Context, key string, rev int64) (int64, error) {
	w, err := s.writer()
	if err != nil {
		return 0, err
	}
	return s.appendRow(ctx, w, "delete", key, nil, rev)
}

// insertSQL appends one row the way kine's generic driver does (kine
// v0.17.5 pkg/drivers/generic/generic.go:42-48 insertSQL, called from
// Insert at generic.go:541-568 with the columns
// key, created, deleted, prev_revision, lease, value): the create revision
// and old_value come from the previous row when it is live, and the insert
// happens only while the newest row of the name is still prev_revision —
// kine's compare-and-swap, so a concurrent writer makes it affect no row.
//
// One deliberate difference from v0.17.5: a create row gets
// create_revision 0, not NULL. v0.17.5's subquery yields NULL there; kine
// v0.16.4 writes 0 (logstructured.go:93-110 passes the zero
// KV.CreateRevision to generic.go:481 Insert), and kine v0.4 (K3s v1.18)
// scans create_revision into a plain int64 (sqllog/sql.go:489-507), which
// fails on NULL. Every kine version reports a create row's own id as its
// create revision (v0.17.5 sqllog/sql.go scan: "if event.Create").
const insertSQL = `
INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
WITH ikv AS (SELECT id, create_revision, value FROM kine WHERE id = ? AND deleted = 0)
SELECT ?, ?, ?, COALESCE((SELECT COALESCE(NULLIF(create_revision, 0), id) FROM ikv), 0), ?, 0, ?, (SELECT value FROM ikv)
WHERE COALESCE((SELECT MAX(id) FROM kine WHERE name = ?), 0) = ?`

// kineSchema is kine's table and indexes as kine creates them at start-up
// (kine v0.17.5 pkg/drivers/sqlite/sqlite.go:26-45, run by setup at
// sqlite.go:142-148; v0.16.4 the same statements). A write to a database
// that has no kine table yet (an empty state.db) creates them first, as
// kine's own start would; kine's start-up checkpoint and VACUUM are not
// run. On any database K3s has used, these are no-ops.
var kineSchema = []string{
	`CREATE TABLE IF NOT EXISTS kine
			(
				id INTEGER PRIMARY KEY AUTOINCREMENT,
				name TEXT,
				created INTEGER,
				deleted INTEGER,
				create_revision INTEGER,
				prev_revision INTEGER,
				lease INTEGER,
				value BLOB,
				old_value BLOB
			)`,
	`CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`,
	`CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)`,
	`CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)`,
	`CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
	`CREATE INDEX IF NOT EXISTS kine_id_compact_rev_key_with_prev_revision_index ON kine(id, name, prev_revision) WHERE name != 'compact_rev_key' AND prev_revision != 0`,
}

// ensureTable creates kine's schema when the database has no kine table.
func ensureTable(ctx context.Context, tx *sql.Tx) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'kine'`).Scan(&n); err != nil || n > 0 {
		return err
	}
	for _, stmt := range kineSchema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// latestSQL is the newest row of a name, deletions included (kine's
// "includeDeleted" get that Create, Update and Delete fall back to,
// v0.17.5 pkg/logstructured/logstructured.go:62-71).
const latestSQL = `SELECT id, deleted FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1`

// appendRow writes one revision of key, with kine's semantics
// (v0.17.5 pkg/logstructured/logstructured.go; v0.16.4 the same rows):
//
//   - create (put, rev 0): only when the key is absent or its newest row is
//     a tombstone; created=1, prev_revision = the tombstone's id or 0
//     (Create, logstructured.go:83-115);
//   - update (put, rev > 0): only when the newest row is live and is rev;
//     created=0, prev_revision=rev (Update, logstructured.go:172-204);
//   - delete: the same condition; deleted=1, no value, old_value = the
//     deleted value (Delete, logstructured.go:117-146).
//
// The read and the insert run in one BEGIN IMMEDIATE transaction.
func (s *SQLite) appendRow(ctx context.Context, db *sql.DB, op, key string, value []byte, rev int64) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%s %s in %s: %w", op, key, s.Path, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := ensureTable(ctx, tx); err != nil {
		return 0, fmt.Errorf("%s %s in %s: kine table: %w", op, key, s.Path, err)
	}
	var latest, deleted sql.NullInt64
	err = tx.QueryRowContext(ctx, latestSQL, key).Scan(&latest, &deleted)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%s %s in %s: %w", op, key, s.Path, err)
	}
	live := err == nil && deleted.Int64 == 0
	var created, del int
	prev := rev
	switch {
	case op == "put" && rev == 0:
		if live {
			return 0, fmt.Errorf("put %s (create): %w: it exists at revision %d", key, ErrConflict, latest.Int64)
		}
		created, prev = 1, latest.Int64 // 0 when the name has no row
	case !live && op == "delete":
		return 0, fmt.Errorf("delete %s: %w", key, ErrNotFound)
	case !live || latest.Int64 != rev:
		return 0, fmt.Errorf("%s %s (expected revision %d): %w", op, key, rev, ErrConflict)
	}
	if op == "delete" {
		del = 1
	}
	res, err := tx.ExecContext(ctx, insertSQL, prev, key, created, del, prev, value, key, prev)
	if err != nil {
		return 0, fmt.Errorf("%s %s in %s: %w", op, key, s.Path, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%s %s (expected revision %d): %w", op, key, rev, ErrConflict)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("%s %s in %s: %w", op, key, s.Path, err)
	}
	return id, nil
}

// Close implements Store.
func (s *SQLite) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for _, db := range []**sql.DB{&s.db, &s.w} {
		if *db != nil {
			if e := (*db).Close(); e != nil && err == nil {
				err = e
			}
			*db = nil
		}
	}
	return err
}
