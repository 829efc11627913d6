package rotate

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	corev1 "k8s.io/api/core/v1"
)

func dirOf(p string) string { return filepath.Dir(p) }

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteAtomic replaces path with data: temp file in the same directory,
// fsync, chmod, rename, fsync the directory. A reader sees the old or the
// new file, never a half-written one.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".k3scert-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func modeOf(path string, def os.FileMode) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return def
}

// leaves renews (or removes) every planned leaf.
func (e *Executor) leaves() (string, error) {
	if e.Plan.Method == MethodRegenerate {
		for _, l := range e.Plan.Leaves {
			for _, p := range []string{l.Cert, l.Key} {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					return "", err
				}
			}
		}
		return fmt.Sprintf("removed %d leaves; K3s regenerates them on start", len(e.Plan.Leaves)), syncDir(e.dataPath("server/tls"))
	}
	now := e.now()
	nb := now.Add(-60 * 60 * 1e9)
	na := nb.Add(pki.Days(e.Plan.ValidDays))
	cas := map[string]struct {
		bundle []*x509.Certificate
		key    any
	}{}
	for _, l := range e.Plan.Leaves {
		ca, ok := cas[l.Signer]
		if !ok {
			c, k, err := loadCA(l.Signer, l.CAKey)
			if err != nil {
				return "", err
			}
			b, _ := os.ReadFile(l.Signer)
			bundle, err := pki.ParseCerts(b)
			if err != nil || !bundle[0].Equal(c) {
				return "", fmt.Errorf("CA %s changed while rotating", l.Signer)
			}
			ca = struct {
				bundle []*x509.Certificate
				key    any
			}{bundle, k}
			cas[l.Signer] = ca
		}
		cb, err := os.ReadFile(l.Cert)
		if err != nil {
			return "", err
		}
		old, err := pki.ParseCerts(cb)
		if err != nil {
			return "", fmt.Errorf("%s: %w (restore it from a backup or use --method regenerate)", l.Cert, err)
		}
		key, err := pki.NewECKey()
		if err != nil {
			return "", err
		}
		caKey, ok := ca.key.(cryptoSigner)
		if !ok {
			return "", fmt.Errorf("CA key %s cannot sign", l.CAKey)
		}
		leafNB := nb
		if leafNB.Before(ca.bundle[0].NotBefore) {
			leafNB = ca.bundle[0].NotBefore
		}
		renewed, err := pki.Renew(old[0], key.Public(), ca.bundle[0], caKey, leafNB, na)
		if err != nil {
			return "", fmt.Errorf("%s: %w", l.Cert, err)
		}
		kp, err := pki.EncodeKey(key)
		if err != nil {
			return "", err
		}
		if err := WriteAtomic(l.Key, kp, modeOf(l.Key, 0o600)); err != nil {
			return "", err
		}
		chain := append([]*x509.Certificate{renewed}, old[1:]...)
		if len(old) == 1 {
			chain = append([]*x509.Certificate{renewed}, ca.bundle...)
		}
		if err := WriteAtomic(l.Cert, pki.EncodeCerts(chain...), modeOf(l.Cert, 0o644)); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("renewed %d leaves, valid until %s", len(e.Plan.Leaves), na.UTC().Format("2006-01-02 15:04 MST")), nil
}

// listener renews the listener certificate and writes the same one to
// dynamic-cert.json and the secret (renew), or removes both (regenerate).
func (e *Executor) listener(ctx context.Context) (string, error) {
	var st SecretStore
	if e.Secrets != nil {
		var err error
		if st, err = e.Secrets(ctx); err != nil {
			return "", fmt.Errorf("open datastore: %w", err)
		}
		defer st.Close()
	}
	if e.Plan.Method == MethodRegenerate {
		if err := os.Remove(e.Plan.ListenerJSON); err != nil && !os.IsNotExist(err) {
			return "", err
		}
		if st != nil {
			if err := st.Delete(ctx); err != nil {
				return "", err
			}
		}
		return "removed dynamic-cert.json and the secret; the listener signs a new certificate on start", nil
	}
	var cur *corev1.Secret
	if b, err := os.ReadFile(e.Plan.ListenerJSON); err == nil && len(b) > 0 {
		cur = &corev1.Secret{}
		if err := json.Unmarshal(b, cur); err != nil {
			return "", fmt.Errorf("%s: %w", e.Plan.ListenerJSON, err)
		}
	}
	var stored *corev1.Secret
	if st != nil {
		var err error
		if stored, err = st.Get(ctx); err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
	}
	if cur == nil {
		cur = stored
	}
	if cur == nil {
		return "no listener certificate yet: the listener signs one on start", nil
	}
	leaf, err := pki.ParseCerts(cur.Data[corev1.TLSCertKey])
	if err != nil {
		return "", fmt.Errorf("listener tls.crt: %w", err)
	}
	keyPEM := cur.Data[corev1.TLSPrivateKeyKey]
	key, _, err := pki.ParseKey(keyPEM)
	if err != nil {
		return "", fmt.Errorf("listener tls.key: %w", err)
	}
	if !pki.KeyMatches(leaf[0], key) {
		// A mismatched pair cannot be served: give it a fresh key.
		if key, err = pki.NewECKey(); err != nil {
			return "", err
		}
		if keyPEM, err = pki.EncodeKey(key); err != nil {
			return "", err
		}
	}
	serverCA := e.dataPath("server/tls/server-ca.crt")
	ca, caKey, err := loadCA(serverCA, e.dataPath("server/tls/server-ca.key"))
	if err != nil {
		return "", err
	}
	cb, _ := os.ReadFile(serverCA)
	bundle, _ := pki.ParseCerts(cb)
	now := e.now()
	nb := now.Add(-60 * 60 * 1e9)
	renewed, err := pki.Renew(leaf[0], key.Public(), ca, caKey.(cryptoSigner), nb, nb.Add(pki.Days(e.Plan.ValidDays)))
	if err != nil {
		return "", err
	}
	out := cur.DeepCopy()
	if stored != nil {
		// Keep the stored object's identity (uid, creation time); the
		// resource version belongs to the datastore.
		out.ObjectMeta = *stored.ObjectMeta.DeepCopy()
	}
	out.ResourceVersion = ""
	out.Type = corev1.SecretTypeTLS
	out.Data = map[string][]byte{corev1.TLSCertKey: pki.EncodeCerts(append([]*x509.Certificate{renewed}, bundle...)...), corev1.TLSPrivateKeyKey: keyPEM}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations["listener.cattle.io/fingerprint"] = k3sgen.SHA1Fingerprint(renewed)
	jb, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	if err := WriteAtomic(e.Plan.ListenerJSON, append(jb, '\n'), 0o600); err != nil {
		return "", err
	}
	if st != nil {
		if err := st.Put(ctx, out); err != nil {
			return "", fmt.Errorf("write secret: %w", err)
		}
	}
	names := pki.SANs(renewed)
	sort.Strings(names)
	return fmt.Sprintf("listener certificate renewed until %s (%d names) in dynamic-cert.json and the secret", renewed.NotAfter.UTC().Format("2006-01-02 15:04 MST"), len(names)), nil
}

type cryptoSigner = interface {
	Public() crypto.PublicKey
	Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}
