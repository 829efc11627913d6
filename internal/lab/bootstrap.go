package lab

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/datastore"
)

// K3s's bootstrap data: how servers of a cluster with an external datastore
// share the CAs (facts §5.3). The first server stores them, encrypted with
// the token, under /bootstrap/<first 12 hex of sha256(token)>; a joining
// server reads and decrypts them and writes the files before it generates
// its own leaves. Upstream, k3s-io/k3s:
//
//   - pkg/cluster/encrypt.go@0c5577a: storageKey, keyHash, encrypt (PBKDF2
//     SHA-1, 4096 iterations, 32-byte key, random salt; AES-GCM; stored as
//     "<salt>:" + base64(nonce‖ciphertext)), decrypt;
//   - pkg/bootstrap/bootstrap.go@03eb6ca: the plaintext is JSON of
//     ControlRuntimeBootstrap's field names → {Timestamp, Content} (File;
//     Content is []byte, so base64 in JSON); WriteToDiskFromStorage writes
//     each file 0600.
//
// The passphrase is the token's password part (the normalized token of
// pkg/cluster/storage.go). What the lab does not model: the reconcile of
// newer files at every restart (ReconcileBootstrapData) and the migration of
// older key variants; the lab re-saves the data when Cluster.Advance
// re-signs the CAs, so the datastore's copy stays byte-identical to the
// files.

// bootstrapFile is bootstrap.File.
type bootstrapFile struct {
	Timestamp time.Time
	Content   []byte
}

// bootstrapPaths are ControlRuntimeBootstrap's fields (pkg/daemons/config
// types.go) that a lab server has, by their data-dir paths.
var bootstrapPaths = map[string]string{
	"ServerCA":           "server/tls/server-ca.crt",
	"ServerCAKey":        "server/tls/server-ca.key",
	"ClientCA":           "server/tls/client-ca.crt",
	"ClientCAKey":        "server/tls/client-ca.key",
	"RequestHeaderCA":    "server/tls/request-header-ca.crt",
	"RequestHeaderCAKey": "server/tls/request-header-ca.key",
	"ServiceKey":         "server/tls/service.key",
	"ETCDServerCA":       "server/tls/etcd/server-ca.crt",
	"ETCDServerCAKey":    "server/tls/etcd/server-ca.key",
	"ETCDPeerCA":         "server/tls/etcd/peer-ca.crt",
	"ETCDPeerCAKey":      "server/tls/etcd/peer-ca.key",
}

func bootstrapKey(passphrase string) string {
	sum := sha256.Sum256([]byte(passphrase))
	return "/bootstrap/" + hex.EncodeToString(sum[:])[:12]
}

func bootstrapEncrypt(passphrase string, plain []byte) ([]byte, error) {
	saltB := make([]byte, 8)
	if _, err := rand.Read(saltB); err != nil {
		return nil, err
	}
	salt := hex.EncodeToString(saltB)
	key, err := pbkdf2.Key(sha1.New, passphrase, []byte(salt), 4096, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return []byte(salt + ":" + base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, plain, nil))), nil
}

func bootstrapDecrypt(passphrase string, data []byte) ([]byte, error) {
	salt, enc, ok := strings.Cut(string(data), ":")
	if !ok {
		return nil, errors.New("invalid cipher text, not : delimited")
	}
	key, err := pbkdf2.Key(sha1.New, passphrase, []byte(salt), 4096, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, err
	}
	if len(raw) < gcm.NonceSize() {
		return nil, errors.New("cipher text too short")
	}
	return gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], nil)
}

// saveBootstrap stores server 1's CAs as the cluster's bootstrap data
// (overwriting an older copy), as K3s's first server does.
func (c *Cluster) saveBootstrap(ctx context.Context) error {
	src := c.Servers[0].DataDir()
	files := map[string]bootstrapFile{}
	for field, rel := range bootstrapPaths {
		p := filepath.Join(src, filepath.FromSlash(rel))
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		files[field] = bootstrapFile{Timestamp: fi.ModTime(), Content: b}
	}
	plain, err := json.Marshal(files)
	if err != nil {
		return err
	}
	enc, err := bootstrapEncrypt(c.token, plain)
	if err != nil {
		return err
	}
	st, err := c.store()
	if err != nil {
		return err
	}
	defer st.Close()
	key := bootstrapKey(c.token)
	var rev int64
	if kv, err := st.Get(ctx, key); err == nil {
		rev = kv.Revision
	} else if !errors.Is(err, datastore.ErrNotFound) {
		return err
	}
	_, err = st.Put(ctx, key, enc, rev)
	return err
}

// join gives a joining server the cluster's CAs from the bootstrap data in
// the datastore (WriteToDiskFromStorage: every file 0600).
func (c *Cluster) join(ctx context.Context, n *Node) error {
	st, err := c.store()
	if err != nil {
		return err
	}
	defer st.Close()
	kv, err := st.Get(ctx, bootstrapKey(c.token))
	if err != nil {
		return fmt.Errorf("lab: %s: bootstrap data: %w", n.Name(), err)
	}
	plain, err := bootstrapDecrypt(c.token, kv.Value)
	if err != nil {
		return fmt.Errorf("lab: %s: decrypt bootstrap data: %w", n.Name(), err)
	}
	var files map[string]bootstrapFile
	if err := json.Unmarshal(plain, &files); err != nil {
		return fmt.Errorf("lab: %s: bootstrap data: %w", n.Name(), err)
	}
	for field, f := range files {
		rel, ok := bootstrapPaths[field]
		if !ok {
			continue
		}
		if err := writeAtomic(filepath.Join(n.DataDir(), filepath.FromSlash(rel)), f.Content, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) store() (*datastore.Etcd, error) {
	return datastore.OpenEtcd(datastore.EtcdOptions{Endpoints: []string{c.DatastoreEndpoint()}, Timeout: 5 * time.Second})
}

// SharedCopiesIdentical checks that every copy of a shared file is the same
// bytes: each CA and key on every server, in the bootstrap data, and the
// agents' CA files. It returns what differs.
func (c *Cluster) SharedCopiesIdentical(ctx context.Context) []string {
	var diffs []string
	ref := map[string][]byte{}
	for field, rel := range bootstrapPaths {
		b, err := os.ReadFile(filepath.Join(c.Servers[0].DataDir(), filepath.FromSlash(rel)))
		if err == nil {
			ref[field] = b
		}
	}
	for _, n := range c.Servers[1:] {
		for field, rel := range bootstrapPaths {
			b, _ := os.ReadFile(filepath.Join(n.DataDir(), filepath.FromSlash(rel)))
			if string(b) != string(ref[field]) {
				diffs = append(diffs, n.Name()+": "+rel)
			}
		}
	}
	if st, err := c.store(); err != nil {
		diffs = append(diffs, "bootstrap data: "+err.Error())
	} else {
		defer st.Close()
		kv, err := st.Get(ctx, bootstrapKey(c.token))
		var files map[string]bootstrapFile
		if err == nil {
			var plain []byte
			if plain, err = bootstrapDecrypt(c.token, kv.Value); err == nil {
				err = json.Unmarshal(plain, &files)
			}
		}
		if err != nil {
			diffs = append(diffs, "bootstrap data: "+err.Error())
		}
		for field := range ref {
			if err == nil && string(files[field].Content) != string(ref[field]) {
				diffs = append(diffs, "bootstrap data: "+field)
			}
		}
	}
	for _, a := range c.Agents {
		for f, field := range map[string]string{"server-ca.crt": "ServerCA", "client-ca.crt": "ClientCA"} {
			b, err := os.ReadFile(a.path(f))
			if err == nil && string(b) != string(ref[field]) {
				diffs = append(diffs, a.Name()+": agent/"+f)
			}
		}
	}
	return diffs
}
