package datastore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

const (
	testKey   = "/registry/secrets/kube-system/k3s-serving"
	holdDBEnv = "K3SCERT_TEST_HOLD_DB"
)

// TestMain lets the test binary act as "another process holding the
// database" (K3s's kine): it opens the file with K3s's DSN, reads, says
// "ready" and holds it until stdin closes.
func TestMain(m *testing.M) {
	if p := os.Getenv(holdDBEnv); p != "" {
		os.Exit(holdDB(p))
	}
	os.Exit(m.Run())
}

func holdDB(path string) int {
	db, err := sql.Open("sqlite3", path+"?"+kineTestParams)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM kine`).Scan(&n); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// startHolder runs a second process that holds path open; it is stopped
// at test end.
func startHolder(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdDBEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("holder process: %q %v", line, err)
	}
	return cmd.Process.Pid
}

// apiserverEncode encodes obj as kube-apiserver's storage codec does: the
// protobuf serializer the client-go scheme offers for
// application/vnd.kubernetes.protobuf, at version v1.
func apiserverEncode(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	enc := scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion)
	var buf bytes.Buffer
	if err := enc.Encode(obj, &buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte("k8s\x00")) {
		t.Fatalf("encoding lacks the k8s\\x00 prefix: %q", buf.Bytes()[:8])
	}
	return buf.Bytes()
}

func testSecret(crt string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "k3s-serving", Namespace: "kube-system", UID: "0b0e5e2c-1111-2222-3333-444455556666",
			Annotations: map[string]string{"listener.cattle.io/fingerprint": "SHA1=00"}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte(crt), "tls.key": []byte("KEY")},
	}
}

// newKineDB creates state.db with kine's library (in-process endpoint) and
// writes key=value for each pair through the etcd client, then stops kine.
func newKineDB(t testing.TB, dir string, kvs ...any) string {
	t.Helper()
	path := filepath.Join(dir, "state.db")
	k, err := startKine(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i+1 < len(kvs); i += 2 {
		key := kvs[i].(string)
		val := kvs[i+1].([]byte)
		var rev int64
		if kv, err := k.store.Get(ctx, key); err == nil {
			rev = kv.Revision
		}
		if _, err := k.store.Put(ctx, key, val, rev); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.stop(); err != nil {
		t.Fatal(err)
	}
	return path
}

type row struct {
	id, created, deleted, prev int64
	value                      []byte
}

func rows(t testing.TB, path, key string) []row {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT id, created, deleted, prev_revision, value FROM kine WHERE name = ? ORDER BY id`, key)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.id, &r.created, &r.deleted, &r.prev, &r.value); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func fileSum(t testing.TB, paths ...string) string {
	t.Helper()
	var b bytes.Buffer
	for _, p := range paths {
		d, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%d:%x;", filepath.Base(p), len(d), sha256.Sum256(d))
	}
	return b.String()
}
