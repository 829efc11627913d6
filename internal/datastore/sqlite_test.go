package datastore

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSQLiteGetDeletePut(t *testing.T) {
	dir := t.TempDir()
	v1 := apiserverEncode(t, testSecret("CERT-1"))
	v2 := apiserverEncode(t, testSecret("CERT-2"))
	path := newKineDB(t, dir, testKey, v1, testKey, v2, "/registry/secrets/default/other", v1)

	st, err := OpenSQLite(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	sec := Secrets{Store: st}

	// Get: the newest row by id, decoded from protobuf.
	s, info, err := sec.Get(ctx, testKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s.Data["tls.crt"]); got != "CERT-2" {
		t.Fatalf("tls.crt = %q, want the newest row's CERT-2", got)
	}
	if s.Name != "k3s-serving" || s.Namespace != "kube-system" || s.Annotations["listener.cattle.io/fingerprint"] != "SHA1=00" {
		t.Fatalf("metadata not decoded: %+v", s.ObjectMeta)
	}
	before := rows(t, path, testKey)
	if len(before) != 2 || before[1].id != info.Revision || before[1].prev != before[0].id {
		t.Fatalf("rows before delete: %+v, revision %d", before, info.Revision)
	}

	// Delete: a tombstone row with a new id.
	rev, err := sec.Delete(ctx, testKey)
	if err != nil {
		t.Fatal(err)
	}
	after := rows(t, path, testKey)
	if len(after) != 3 {
		t.Fatalf("rows after delete: %d, want 3", len(after))
	}
	tomb := after[2]
	if tomb.deleted != 1 || tomb.id <= before[1].id || tomb.id != rev || tomb.prev != before[1].id {
		t.Fatalf("tombstone row = %+v (delete revision %d), previous id %d", tomb, rev, before[1].id)
	}
	if _, _, err := sec.Get(ctx, testKey); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}
	if _, _, err := sec.Get(ctx, "/registry/secrets/default/other"); err != nil {
		t.Fatalf("other key: %v", err)
	}

	// Put (what rotate does offline): a new row, readable again.
	if _, err := sec.Put(ctx, testKey, testSecret("CERT-3")); err != nil {
		t.Fatal(err)
	}
	// Replace it once more: an update row whose prev_revision is the create.
	if _, err := sec.Put(ctx, testKey, testSecret("CERT-4")); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	s, _, err = sec.Get(ctx, testKey)
	if err != nil || string(s.Data["tls.crt"]) != "CERT-4" {
		t.Fatalf("Get after Put: %v %v", s, err)
	}
	final := rows(t, path, testKey)
	if n := len(final); n != 5 || final[3].created != 1 || final[4].prev != final[3].id {
		t.Fatalf("rows after put: %+v", final)
	}
}

func TestSQLiteRefusesWriteWhileHeld(t *testing.T) {
	dir := t.TempDir()
	path := newKineDB(t, dir, testKey, apiserverEncode(t, testSecret("CERT-1")))
	pid := startHolder(t, path)

	st, err := OpenSQLite(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum := fileSum(t, path, path+"-wal")
	sec := Secrets{Store: st}
	// Reading is fine while K3s runs.
	if _, _, err := sec.Get(context.Background(), testKey); err != nil {
		t.Fatalf("read while held: %v", err)
	}
	_, err = sec.Delete(context.Background(), testKey)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Delete while another process holds the db: %v, want ErrBusy", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("error does not name the holder and the fix: %v", err)
	}
	_, err = sec.Put(context.Background(), testKey, testSecret("X"))
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Put while held: %v", err)
	}
	if got := fileSum(t, path, path+"-wal"); got != sum {
		t.Fatal("database changed although the write was refused")
	}
	if n := len(rows(t, path, testKey)); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	t.Logf("refusal: %v", err)
}

func TestSQLiteRefusesWhileKineSocketAnswers(t *testing.T) {
	dir := t.TempDir()
	path := newKineDB(t, dir, testKey, apiserverEncode(t, testSecret("CERT-1")))
	sock := filepath.Join(dir, "kine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() { l.Close(); <-done }()
	st, err := OpenSQLite(path, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = Secrets{Store: st}.Delete(context.Background(), testKey)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "kine socket") {
		t.Fatalf("got %v", err)
	}
	// A stale socket file (K3s crashed) does not block.
	l.Close()
	<-done
	if err := CheckNotBusy(path, sock); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
}

func TestSQLiteBadInput(t *testing.T) {
	ctx := context.Background()
	t.Run("not protobuf", func(t *testing.T) {
		dir := t.TempDir()
		path := newKineDB(t, dir, testKey, []byte(`{"kind":"Secret"}`))
		st, _ := OpenSQLite(path, "")
		defer st.Close()
		_, _, err := Secrets{Store: st}.Get(ctx, testKey)
		if !errors.Is(err, ErrNotProtobuf) || !strings.Contains(err.Error(), "JSON") || !strings.Contains(err.Error(), "revision") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("corrupt protobuf row", func(t *testing.T) {
		dir := t.TempDir()
		v := apiserverEncode(t, testSecret("CERT"))
		path := newKineDB(t, dir, testKey, v[:len(v)/2])
		st, _ := OpenSQLite(path, "")
		defer st.Close()
		if _, _, err := (Secrets{Store: st}).Get(ctx, testKey); !errors.Is(err, ErrNotProtobuf) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("another kind", func(t *testing.T) {
		dir := t.TempDir()
		v := []byte("k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x00\x1a\x00\"\x00")
		path := newKineDB(t, dir, testKey, v)
		st, _ := OpenSQLite(path, "")
		defer st.Close()
		if _, _, err := (Secrets{Store: st}).Get(ctx, testKey); !errors.Is(err, ErrNotProtobuf) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 512)), 0o600); err != nil {
			t.Fatal(err)
		}
		sum := fileSum(t, path)
		st, _ := OpenSQLite(path, "")
		defer st.Close()
		_, _, err := Secrets{Store: st}.Get(ctx, testKey)
		if err == nil || !strings.Contains(err.Error(), "not a database") {
			t.Fatalf("got %v", err)
		}
		if fileSum(t, path) != sum {
			t.Fatal("file changed")
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, err := OpenSQLite(filepath.Join(t.TempDir(), "state.db"), ""); err == nil || !os.IsNotExist(errors.Unwrap(err)) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		path := newKineDB(t, t.TempDir())
		st, _ := OpenSQLite(path, "")
		defer st.Close()
		if _, _, err := (Secrets{Store: st}).Get(ctx, testKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v", err)
		}
		if _, err := (Secrets{Store: st}).Delete(ctx, testKey); !errors.Is(err, ErrNotFound) {
			t.Fatalf("delete missing: %v", err)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		path := newKineDB(t, t.TempDir(), testKey, apiserverEncode(t, testSecret("A")))
		st, _ := OpenSQLite(path, "")
		defer st.Close()
		kv, err := st.Get(ctx, testKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Delete(ctx, testKey, kv.Revision+100); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale revision: %v", err)
		}
		if n := len(rows(t, path, testKey)); n != 1 {
			t.Fatalf("%d rows after refused delete", n)
		}
	})
}

func TestOpenNodeSQLiteEncrypted(t *testing.T) {
	// covered in encryption_test.go; here only the plain layout.
	dd := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dd, "server", "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	newKineDB(t, filepath.Join(dd, "server", "db"), testKey, apiserverEncode(t, testSecret("PLAIN")))
	sec, err := OpenNode(NodeOptions{DataDir: dd, Program: "k3s", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Store.Close()
	s, info, err := sec.Get(context.Background(), testKey)
	if err != nil || string(s.Data["tls.crt"]) != "PLAIN" || info.Encrypted != nil || sec.Store.Kind() != "sqlite" {
		t.Fatalf("%v %+v %v", s, info, err)
	}
}

// BenchmarkSQLiteGetSecret: open state.db read-only, read and decode the
// listener secret, close (what `check --secret datastore` does).
func BenchmarkSQLiteGetSecret(b *testing.B) {
	path := newKineDB(b, b.TempDir(), testKey, apiserverEncode(b, testSecret(strings.Repeat("C", 1500))))
	ctx := context.Background()
	for b.Loop() {
		st, err := OpenSQLite(path, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := (Secrets{Store: st}).Get(ctx, testKey); err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
}

// BenchmarkSQLiteDelete: open the file (busy check included), delete, close.
func BenchmarkSQLiteDelete(b *testing.B) {
	path := newKineDB(b, b.TempDir())
	ctx := context.Background()
	v := apiserverEncode(b, testSecret("C"))
	for b.Loop() {
		b.StopTimer()
		raw, _ := OpenSQLite(path, "")
		if _, err := raw.Put(ctx, testKey, v, 0); err != nil {
			b.Fatal(err)
		}
		raw.Close()
		b.StartTimer()
		st, _ := OpenSQLite(path, "")
		if _, err := (Secrets{Store: st}).Delete(ctx, testKey); err != nil {
			b.Fatal(err)
		}
		st.Close()
	}
}

// TestSQLiteReadDoesNotCheckpoint: reading the Secret (the online
// preflight, the exporter) never checkpoints or truncates kine's WAL, even
// as the only connection to a database whose newest rows are still in the
// WAL (a copy of a running K3s's files, taken while kine held them).
func TestSQLiteReadDoesNotCheckpoint(t *testing.T) {
	src := newKineDB(t, t.TempDir(), testKey, apiserverEncode(t, testSecret("IN-DB")))
	// A writer that keeps the database open: its new row stays in the WAL.
	w, err := sql.Open("sqlite3", "file:"+src+"?"+kineTestParams)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Exec(`PRAGMA wal_autocheckpoint = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(`INSERT INTO kine(name, created, deleted, create_revision, prev_revision, lease, value, old_value)
		SELECT name, 0, 0, id, id, 0, ?, value FROM kine WHERE name = ? ORDER BY id DESC LIMIT 1`, apiserverEncode(t, testSecret("IN-WAL")), testKey); err != nil {
		t.Fatal(err)
	}
	// Copy the three files while the writer holds them, as a crash would leave them.
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the copy has no WAL frames to protect: %v", err)
	}
	before := fileSum(t, path, path+"-wal")

	st, err := OpenSQLite(path, "")
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := Secrets{Store: st}.Get(context.Background(), testKey)
	if err != nil || string(s.Data["tls.crt"]) != "IN-WAL" {
		t.Fatalf("read %v, %v; want the row that is only in the WAL", s, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if after := fileSum(t, path, path+"-wal"); after != before {
		t.Fatalf("reading changed the database or its WAL (a checkpoint):\n before %s\n after  %s", before, after)
	}
}
