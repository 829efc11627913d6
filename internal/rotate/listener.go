package rotate

import (
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
	corev1 "k8s.io/api/core/v1"
)

// How the listener step treats the :6443 listener certificate (Plan.Listener).
const (
	// ListenerBoth renews it and writes the same certificate to
	// dynamic-cert.json and to the secret in the datastore, which is
	// writable while K3s is stopped (kine/SQLite; RKE2's etcd static pod
	// keeps running while rke2-server is stopped).
	ListenerBoth = "both"
	// ListenerJSON renews dynamic-cert.json only: the datastore stops with
	// K3s, and dynamiclistener v0.3.4+ keeps the unexpired copy at start.
	ListenerJSON = "json"
	// ListenerTrigger writes server/tls/dynamic-cert-regenerate, as
	// `k3s certificate rotate` does: the listener signs a new certificate
	// (new key, same names) at start and writes it to both copies.
	ListenerTrigger = "trigger"
	// ListenerStatic leaves a user-managed (listener.cattle.io/static)
	// certificate alone: dynamiclistener never changes it, nor does rotate.
	ListenerStatic = "static"
	// ListenerAdopt (a cluster rotation's later servers): the shared
	// secret, renewed by an earlier server, is read from the datastore
	// (offline) and written as is to dynamic-cert.json; never re-signed.
	ListenerAdopt = "adopt"
	// ListenerAdoptRestart: the same where the secret cannot be read with
	// K3s stopped, on release lines whose dynamiclistener merge lets the
	// renewed secret replace the old dynamic-cert.json at start
	// (k3s.AdoptMergeEvidence): nothing is written.
	ListenerAdoptRestart = "adopt-restart"
)

// Annotations dynamiclistener keeps on the listener secret
// (rancher/dynamiclistener@2ad60ef4fd3c factory/gen.go:25-29).
const (
	annCNPrefix    = "listener.cattle.io/cn-"
	annStatic      = "listener.cattle.io/static"
	annFingerprint = "listener.cattle.io/fingerprint"
)

// IsStaticListener reports whether a listener secret is user-managed:
// dynamiclistener's IsStatic (factory/gen.go@2ad60ef4fd3c:320-327) — Merge
// keeps it, Renew refuses it (cert.ErrStaticCert).
func IsStaticListener(s *corev1.Secret) bool {
	return s != nil && s.Annotations[annStatic] == "true"
}

// ListenerAnnotationKey is the `listener.cattle.io/cn-*` annotation key
// dynamiclistener uses for a name, which is how it decides whether the
// certificate already holds that name (NeedsUpdate).
//
// Current rule, getAnnotationKey (rancher/dynamiclistener@2ad60ef4fd3c
// factory/gen.go:430-448): the key is the prefix plus the name, unless it
// is 64 characters or longer or holds ':' (IPv6) or '*' (wildcard); then
// ':' and '*' become '_', the key is cut to 56 characters and "-" plus the
// first 6 hex digits of the SHA-256 of the full unmodified key is appended.
// The IPv6/long-name rule came with v0.3.1 (43f9c3ae0a4f, 2021-11-18), the
// '*' rule with wildcard SANs in v0.9.0 (416cd9c); a wildcard is never a
// SAN under an older release. raw selects dynamiclistener before v0.3.1
// (K3s before v1.21.8/v1.22.5), which used the prefix plus the name as is.
func ListenerAnnotationKey(name string, raw bool) string {
	k := annCNPrefix + name
	if raw {
		return k
	}
	n := len(k)
	if n < 64 && !strings.ContainsAny(k, ":*") {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	k = strings.NewReplacer(":", "_", "*", "_").Replace(k)
	if n > 56 {
		n = 56
	}
	return k[:n] + "-" + hex.EncodeToString(sum[:])[:6]
}

// ListenerAnnotations rebuilds every `listener.cattle.io/cn-*` annotation
// from the certificate's own SANs plus the fingerprint, so the annotations
// can only claim names the certificate holds (dynamiclistener trusts them,
// audit W5). An IP keeps the spelling of an existing annotation value for
// the same address (the key depends on the spelling); other annotations of
// the source copy are kept, stale cn-* annotations are dropped.
func ListenerAnnotations(src map[string]string, c *x509.Certificate, raw bool) map[string]string {
	out := map[string]string{}
	spelled := map[string]string{}
	for k, v := range src {
		if strings.HasPrefix(k, annCNPrefix) {
			if ip := net.ParseIP(v); ip != nil {
				spelled[ip.String()] = v
			}
			continue
		}
		out[k] = v
	}
	for _, d := range c.DNSNames {
		out[ListenerAnnotationKey(d, raw)] = d
	}
	for _, ip := range c.IPAddresses {
		v := ip.String()
		if s, ok := spelled[v]; ok {
			v = s
		}
		out[ListenerAnnotationKey(v, raw)] = v
	}
	out[annFingerprint] = fmt.Sprintf("SHA1=%X", sha1.Sum(c.Raw))
	return out
}

// listener renews the listener certificate the way the plan says: in both
// copies, in dynamic-cert.json only, by the regenerate trigger, or not at
// all (user-managed); with --method regenerate it removes both copies.
func (e *Executor) listener(ctx context.Context) (string, error) {
	mode := e.Plan.Listener
	if mode == "" { // plans journaled before Plan.Listener existed
		mode = ListenerBoth
		if e.Plan.SecretKey == "" {
			mode = ListenerJSON
		}
	}
	if mode == ListenerOnline {
		return "the listener certificate was renewed through the API before the stop", nil
	}
	if mode == ListenerAdoptRestart {
		return "nothing written: on start dynamiclistener takes the shared secret renewed by an earlier server over the old dynamic-cert.json; verify proves it", nil
	}
	var st SecretStore
	if e.Secrets != nil && (mode == ListenerBoth || mode == ListenerAdopt) {
		var err error
		if st, err = e.Secrets(ctx); err != nil {
			return "", fmt.Errorf("open datastore: %w", err)
		}
		defer st.Close()
	}
	if mode == ListenerBoth && st == nil {
		return "", fmt.Errorf("the plan writes the serving secret but this run has no datastore access (%s)", e.Plan.Datastore)
	}
	if mode == ListenerAdopt {
		if st == nil {
			return "", fmt.Errorf("the plan adopts the shared serving secret but this run has no datastore access (%s)", e.Plan.Datastore)
		}
		return e.adopt(ctx, st)
	}
	var cur *corev1.Secret
	if b, err := source.ReadFile(e.Plan.ListenerJSON); err == nil && len(b) > 0 {
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
	if mode == ListenerStatic || IsStaticListener(cur) || IsStaticListener(stored) {
		// dynamiclistener never changes it (Merge returns it, Renew
		// refuses it); neither does rotate, whatever the method.
		return "listener certificate is user-managed (listener.cattle.io/static): left unchanged in dynamic-cert.json and the secret", nil
	}
	if e.Plan.Method == MethodRegenerate && mode != ListenerTrigger {
		if err := os.Remove(e.Plan.ListenerJSON); err != nil && !os.IsNotExist(err) {
			return "", err
		}
		if st != nil {
			if err := st.Delete(ctx); err != nil {
				return "", err
			}
			return "removed dynamic-cert.json and the secret; the listener signs a new certificate on start", nil
		}
		return "removed dynamic-cert.json; the listener signs a new certificate on start", nil
	}
	if mode == ListenerTrigger {
		if err := WriteAtomic(e.Plan.Trigger, nil, 0o600); err != nil {
			return "", err
		}
		return "wrote " + e.Plan.Trigger + ": the listener signs a new certificate (new key, same names) on start and writes it to dynamic-cert.json and the secret", nil
	}
	// The certificate, its key and its annotations all come from ONE copy:
	// dynamic-cert.json (what the listener serves), else the secret.
	src, from := cur, "dynamic-cert.json"
	if src == nil {
		src, from = stored, "the secret"
	} else if e.Plan.ClusterListener == ClusterRenew && stored != nil && moreNames(stored, cur) {
		// The first server of a cluster renews the shared certificate once
		// for every server: the secret holds the names dynamiclistener
		// merged in from all of them; this server's copy may lack some,
		// and a later server adopting it would then serve a certificate
		// without its own address.
		src, from = stored, "the shared secret (it holds names this server's dynamic-cert.json lacks)"
	}
	if src == nil {
		return "no listener certificate yet: the listener signs one on start", nil
	}
	out, renewed, days, err := e.renewListener(src, from)
	if err != nil {
		return "", err
	}
	if stored != nil {
		// The stored object's identity (uid, creation time, labels,
		// owners) stays; the resource version belongs to the datastore.
		out.ObjectMeta.Name, out.ObjectMeta.Namespace, out.UID = stored.Name, stored.Namespace, stored.UID
		out.CreationTimestamp, out.Labels, out.OwnerReferences = stored.CreationTimestamp, stored.Labels, stored.OwnerReferences
	}
	out.ResourceVersion = ""
	jb, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	if err := WriteAtomic(e.Plan.ListenerJSON, append(jb, '\n'), 0o600); err != nil {
		return "", err
	}
	where := "dynamic-cert.json"
	if st != nil {
		if err := st.Put(ctx, out); err != nil {
			return "", fmt.Errorf("write secret: %w", err)
		}
		where += " and the secret"
	}
	return fmt.Sprintf("listener certificate renewed from %s until %s (%d days, %d names, annotations rebuilt from its SANs) in %s",
		from, renewed.NotAfter.UTC().Format("2006-01-02 15:04 MST"), days, len(pki.SANs(renewed)), where), nil
}

// renewListener re-signs src's certificate with server-ca: same names and
// key (a fresh key if the pair does not match), the plan's validity (else
// its own span), and the cn-* annotations rebuilt from the renewed
// certificate. Certificate, key and annotations all come from src.
func (e *Executor) renewListener(src *corev1.Secret, from string) (*corev1.Secret, *x509.Certificate, int, error) {
	leaf, err := pki.ParseCerts(src.Data[corev1.TLSCertKey])
	if err != nil {
		return nil, nil, 0, fmt.Errorf("listener tls.crt (%s): %w", from, err)
	}
	keyPEM := src.Data[corev1.TLSPrivateKeyKey]
	key, _, err := pki.ParseKey(keyPEM)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("listener tls.key (%s): %w", from, err)
	}
	if !pki.KeyMatches(leaf[0], key) {
		// A mismatched pair cannot be served: give it a fresh key.
		if key, err = pki.NewECKey(); err != nil {
			return nil, nil, 0, err
		}
		if keyPEM, err = pki.EncodeKey(key); err != nil {
			return nil, nil, 0, err
		}
	}
	serverCA := e.dataPath("server/tls/server-ca.crt")
	ca, caKey, err := loadCA(serverCA, e.dataPath("server/tls/server-ca.key"))
	if err != nil {
		return nil, nil, 0, err
	}
	cb, _ := source.ReadFile(serverCA)
	bundle, _ := pki.ParseCerts(cb)
	nb := notBefore(e.now(), ca)
	days := e.Plan.ListenerDays
	if days == 0 {
		days = spanDays(leaf[0])
	}
	renewed, err := pki.Renew(leaf[0], key.Public(), ca, caKey.(cryptoSigner), nb, nb.Add(pki.Days(days)))
	if err != nil {
		return nil, nil, 0, err
	}
	out := src.DeepCopy()
	out.Annotations = ListenerAnnotations(src.Annotations, renewed, e.Plan.ListenerRawKeys)
	out.Type = corev1.SecretTypeTLS
	out.Data = map[string][]byte{corev1.TLSCertKey: pki.EncodeCerts(append([]*x509.Certificate{renewed}, bundle...)...), corev1.TLSPrivateKeyKey: keyPEM}
	return out, renewed, days, nil
}

// notBefore is what K3s and dynamiclistener give a new certificate: an
// hour before now for clock skew, never before the CA (dynamiclistener
// cert/validity.go CalculateNotBefore).
func notBefore(now time.Time, ca *x509.Certificate) time.Time {
	nb := now.Add(-time.Hour)
	if nb.Before(ca.NotBefore) {
		nb = ca.NotBefore
	}
	return nb
}

// spanDays is a certificate's own validity in whole days (K3s signs
// NotBefore = max(now-1h, CA NotBefore), NotAfter = NotBefore + N days,
// so the span rounds to N).
func spanDays(c *x509.Certificate) int {
	d := int((c.NotAfter.Sub(c.NotBefore) + 12*time.Hour) / (24 * time.Hour))
	if d < 1 {
		return 1
	}
	return d
}

type cryptoSigner = interface {
	Public() crypto.PublicKey
	Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// adopt writes the shared secret, renewed by an earlier server of the
// cluster, as is to this server's dynamic-cert.json. The secret is not
// written; a static secret is left alone as everywhere.
func (e *Executor) adopt(ctx context.Context, st SecretStore) (string, error) {
	sec, err := st.Get(ctx)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	if IsStaticListener(sec) {
		return "listener certificate is user-managed (listener.cattle.io/static): left unchanged in dynamic-cert.json and the secret", nil
	}
	leaf, err := e.adoptable(sec)
	if err != nil {
		return "", err
	}
	out := sec.DeepCopy()
	out.ResourceVersion = ""
	jb, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	if err := WriteAtomic(e.Plan.ListenerJSON, append(jb, '\n'), 0o600); err != nil {
		return "", err
	}
	return fmt.Sprintf("adopted the shared listener certificate (valid until %s, %d names) into dynamic-cert.json; the secret was not changed",
		leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"), len(pki.SANs(leaf))), nil
}

// adoptable: the shared secret holds a certificate this server can serve
// as its own: present, its key matching, signed by this node's server-ca,
// valid now and for the verify window (else the earlier server's renewal
// did not happen: adopting would restart onto an expiring certificate).
func (e *Executor) adoptable(sec *corev1.Secret) (*x509.Certificate, error) {
	l := "the shared serving secret"
	if sec == nil {
		return nil, fmt.Errorf("%s does not exist: no earlier server renewed it; rotate the first server with --cluster-listener renew", l)
	}
	certs, err := pki.ParseCerts(sec.Data[corev1.TLSCertKey])
	if err != nil {
		return nil, fmt.Errorf("%s: tls.crt: %w", l, err)
	}
	key, _, err := pki.ParseKey(sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("%s: tls.key: %w", l, err)
	}
	if !pki.KeyMatches(certs[0], key) {
		return nil, fmt.Errorf("%s: its key does not match its certificate", l)
	}
	cb, err := source.ReadFile(e.dataPath("server/tls/server-ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("server CA: %w", err)
	}
	cas, err := pki.ParseCerts(cb)
	if err != nil {
		return nil, fmt.Errorf("server CA: %w", err)
	}
	if err := pki.SignedBy(certs[0], cas[0]); err != nil {
		return nil, fmt.Errorf("%s is not signed by this server's server-ca (%v): is this server in the same cluster?", l, err)
	}
	now := e.now()
	until := now.Add(time.Duration(e.Plan.VerifyDays) * 24 * time.Hour)
	if now.Before(certs[0].NotBefore) || until.After(certs[0].NotAfter) {
		return nil, fmt.Errorf("%s was not renewed: its certificate is valid %s to %s, not now and for %d more days; rotate the first server with --cluster-listener renew first",
			l, certs[0].NotBefore.UTC().Format(time.RFC3339), certs[0].NotAfter.UTC().Format(time.RFC3339), e.Plan.VerifyDays)
	}
	return certs[0], nil
}

// moreNames: a's certificate carries every name of b's and more.
func moreNames(a, b *corev1.Secret) bool {
	ac, err1 := pki.ParseCerts(a.Data[corev1.TLSCertKey])
	bc, err2 := pki.ParseCerts(b.Data[corev1.TLSCertKey])
	if err1 != nil || err2 != nil {
		return false
	}
	have := map[string]bool{}
	for _, n := range pki.SANs(ac[0]) {
		have[n] = true
	}
	bn := pki.SANs(bc[0])
	for _, n := range bn {
		if !have[n] {
			return false
		}
	}
	return len(have) > len(bn)
}
