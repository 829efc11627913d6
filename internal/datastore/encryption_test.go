package datastore

import (
	"bytes"
	"context"
	"crypto/aes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
	"k8s.io/apiserver/pkg/storage/value"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"
	"k8s.io/apiserver/pkg/storage/value/encrypt/secretbox"
)

var (
	cbcKey = []byte("0123456789abcdef0123456789abcdef")
	boxKey = []byte("fedcba9876543210fedcba9876543210")
)

// encConfig is what K3s writes to server/cred/encryption-config.json
// (aescbc key "aescbckey"), plus a secretbox key and identity.
func encConfig(first string) string {
	cbc := `{"aescbc":{"keys":[{"name":"aescbckey","secret":"` + base64.StdEncoding.EncodeToString(cbcKey) + `"}]}}`
	box := `{"secretbox":{"keys":[{"name":"boxkey","secret":"` + base64.StdEncoding.EncodeToString(boxKey) + `"}]}}`
	ps := cbc + "," + box
	if first == "secretbox" {
		ps = box + "," + cbc
	}
	return `{"kind":"EncryptionConfiguration","apiVersion":"apiserver.config.k8s.io/v1","resources":[{"resources":["secrets"],"providers":[` + ps + `,{"identity":{}}]}]}`
}

// apiserverEncrypt encrypts as kube-apiserver stores a secret: the
// provider's transformer with the etcd key as authenticated data, behind
// "k8s:enc:<provider>:v1:<key name>:".
func apiserverEncrypt(t testing.TB, provider, key string, plain []byte) []byte {
	t.Helper()
	var tr value.Transformer
	var prefix string
	switch provider {
	case "aescbc":
		block, err := aes.NewCipher(cbcKey)
		if err != nil {
			t.Fatal(err)
		}
		tr, prefix = aestransformer.NewCBCTransformer(block), "k8s:enc:aescbc:v1:aescbckey:"
	case "secretbox":
		tr, prefix = secretbox.NewSecretboxTransformer([32]byte(boxKey)), "k8s:enc:secretbox:v1:boxkey:"
	}
	out, err := tr.TransformToStorage(context.Background(), plain, value.DefaultContext(key))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(prefix), out...)
}

func TestEncryptedSecretFromSQLite(t *testing.T) {
	for _, provider := range []string{"aescbc", "secretbox"} {
		t.Run(provider, func(t *testing.T) {
			dd := t.TempDir()
			d := k3s.DatastoreSpec(k3s.K3s)
			db := filepath.Join(dd, filepath.FromSlash(d.SQLite))
			cfg := filepath.Join(dd, filepath.FromSlash(d.EncryptionCfg))
			for _, p := range []string{db, cfg} {
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(cfg, []byte(encConfig(provider)), 0o600); err != nil {
				t.Fatal(err)
			}
			stored := apiserverEncrypt(t, provider, testKey, apiserverEncode(t, testSecret("SECRET-"+provider)))
			newKineDB(t, filepath.Dir(db), testKey, stored)
			if got := rows(t, db, testKey)[0].value; !strings.HasPrefix(string(got), "k8s:enc:"+provider+":v1:") {
				t.Fatalf("stored value is not encrypted: %q", got[:20])
			}

			sec, err := OpenNode(NodeOptions{DataDir: dd, Program: k3s.K3s})
			if err != nil {
				t.Fatal(err)
			}
			defer sec.Store.Close()
			ctx := context.Background()
			s, info, err := sec.Get(ctx, testKey)
			if err != nil {
				t.Fatal(err)
			}
			if string(s.Data["tls.crt"]) != "SECRET-"+provider || info.Encrypted == nil || info.Encrypted.Provider != provider {
				t.Fatalf("%v %+v", s.Data, info)
			}
			// Put writes with the first provider, as kube-apiserver does.
			if _, err := sec.Put(ctx, testKey, testSecret("NEW")); err != nil {
				t.Fatal(err)
			}
			rs := rows(t, db, testKey)
			if last := rs[len(rs)-1].value; !strings.HasPrefix(string(last), "k8s:enc:"+provider+":v1:") {
				t.Fatalf("Put stored %q", last[:20])
			}
			if s, _, err = sec.Get(ctx, testKey); err != nil || string(s.Data["tls.crt"]) != "NEW" {
				t.Fatalf("after put: %v", err)
			}
		})
	}
}

func TestDecryptErrors(t *testing.T) {
	ctx := context.Background()
	enc, err := ParseEncryption([]byte(encConfig("aescbc")))
	if err != nil {
		t.Fatal(err)
	}
	plain := apiserverEncode(t, testSecret("X"))
	good := apiserverEncrypt(t, "aescbc", testKey, plain)
	if out, err := enc.Decrypt(ctx, testKey, good); err != nil || string(out) != string(plain) {
		t.Fatalf("round trip: %v", err)
	}
	other := "0000000000000000" + "0000000000000000"
	wrongKeyCfg := strings.Replace(encConfig("aescbc"), base64.StdEncoding.EncodeToString(cbcKey), base64.StdEncoding.EncodeToString([]byte(other)), 1)
	wrong, err := ParseEncryption([]byte(wrongKeyCfg))
	if err != nil {
		t.Fatal(err)
	}
	wrongBox, err := ParseEncryption([]byte(strings.Replace(encConfig("aescbc"), base64.StdEncoding.EncodeToString(boxKey), base64.StdEncoding.EncodeToString([]byte(other)), 1)))
	if err != nil {
		t.Fatal(err)
	}
	box := apiserverEncrypt(t, "secretbox", testKey, plain)
	tamper := append([]byte{}, box...)
	tamper[len(tamper)-1] ^= 1
	cases := []struct {
		name string
		e    *Encryption
		in   []byte
		want string
	}{
		{"no config", nil, good, "no encryption config"},
		{"unknown key name", enc, []byte("k8s:enc:aescbc:v1:otherkey:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), `key "otherkey"`},
		{"kms", enc, []byte("k8s:enc:kms:v2:vault:abc"), "KMS plugin"},
		{"unknown provider", enc, []byte("k8s:enc:rot13:v1:k:abc"), "unknown provider"},
		{"malformed", enc, []byte("k8s:enc:aescbc"), "malformed"},
		{"secretbox tampered", enc, tamper, "does not decrypt"},
		{"secretbox wrong key", wrongBox, box, "does not decrypt"},
		{"aescbc one block", enc, []byte("k8s:enc:aescbc:v1:aescbckey:0123456789abcdef"), "whole AES blocks"},
		{"secretbox other resource key", enc, apiserverEncrypt(t, "secretbox", "/registry/secrets/default/x", plain), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.e.Decrypt(ctx, testKey, c.in)
			if c.want == "" {
				return // secretbox ignores the key; only must not panic
			}
			if !errors.Is(err, ErrEncrypted) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	// aescbc with the wrong key: CBC is not authenticated; the padding or
	// the protobuf decode must fail, never yield a secret.
	out, err := wrong.Decrypt(ctx, testKey, good)
	if err == nil {
		if _, err := DecodeSecret(out); err == nil {
			t.Fatal("wrong aescbc key produced a secret")
		}
	}
	for _, bad := range []string{`{"resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"k","secret":"!!"}]}}]}]}`,
		`{"resources":[{"resources":["secrets"],"providers":[{"aescbc":{"keys":[{"name":"k","secret":"c2hvcnQ="}]}}]}]}`,
		`{"resources":[{"resources":["secrets"],"providers":[{}]}]}`, `{"resources": 3}`} {
		if _, err := ParseEncryption([]byte(bad)); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}

// TestTransformersMatchKubeAPIServer: k3scert's own aescbc, aesgcm and
// secretbox (transform.go) decrypt what kube-apiserver's transformers
// (k8s.io/apiserver, linked into this test only) encrypt, and the other
// way round, with the datastore key as AES-GCM's authenticated data.
func TestTransformersMatchKubeAPIServer(t *testing.T) {
	ctx := context.Background()
	block, err := aes.NewCipher(cbcKey)
	if err != nil {
		t.Fatal(err)
	}
	apiGCM, err := aestransformer.NewGCMTransformer(block)
	if err != nil {
		t.Fatal(err)
	}
	ourGCM, err := newGCMTransformer(block)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		api  value.Transformer
		ours transformer
	}{
		{"aescbc", aestransformer.NewCBCTransformer(block), cbcTransformer{block}},
		{"aesgcm", apiGCM, ourGCM},
		{"secretbox", secretbox.NewSecretboxTransformer([32]byte(boxKey)), secretboxTransformer{[32]byte(boxKey)}},
	}
	plain := apiserverEncode(t, testSecret("CERT"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range [][]byte{plain, {}, []byte("0123456789abcdef")} {
				stored, err := c.api.TransformToStorage(ctx, p, value.DefaultContext(testKey))
				if err != nil {
					t.Fatal(err)
				}
				got, err := c.ours.fromStorage(stored, []byte(testKey))
				if err != nil || !bytes.Equal(got, p) {
					t.Fatalf("k3scert decrypts kube-apiserver's %d bytes: %v", len(p), err)
				}
				mine, err := c.ours.toStorage(p, []byte(testKey))
				if err != nil {
					t.Fatal(err)
				}
				back, _, err := c.api.TransformFromStorage(ctx, mine, value.DefaultContext(testKey))
				if err != nil || !bytes.Equal(back, p) {
					t.Fatalf("kube-apiserver decrypts k3scert's %d bytes: %v", len(p), err)
				}
			}
			if c.name == "aesgcm" { // the key is authenticated: another key's value does not open
				stored, _ := c.api.TransformToStorage(ctx, plain, value.DefaultContext("/registry/secrets/default/x"))
				if _, err := c.ours.fromStorage(stored, []byte(testKey)); err == nil {
					t.Fatal("aesgcm value of another key decrypted")
				}
			}
		})
	}
}
