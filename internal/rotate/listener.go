package rotate

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
	"github.com/k3scert/k3scert/internal/pki"
	corev1 "k8s.io/api/core/v1"
)

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
