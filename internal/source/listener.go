package source

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/k3scert/k3scert/internal/pki"
	corev1 "k8s.io/api/core/v1"
)

// DynamicCertJSON reads server/tls/dynamic-cert.json, dynamiclistener's file
// cache of the listener secret (a JSON-encoded v1.Secret).
type DynamicCertJSON struct {
	Path string
}

// Name implements Source.
func (d DynamicCertJSON) Name() string { return "dynamic-cert" }

// Read implements Source.
func (d DynamicCertJSON) Read(ctx context.Context, inv *Inventory) {
	b, err := readLimited(d.Path)
	if err != nil {
		if os.IsNotExist(err) {
			return // a node whose listener never started, or an agent
		}
		inv.AddProblem(Problem{Source: DynamicCert, Location: d.Path, Reason: classifyReadError(err), Detail: err.Error()})
		return
	}
	if len(b) == 0 {
		// dynamiclistener treats an empty file as no file.
		return
	}
	var s corev1.Secret
	if err := json.Unmarshal(b, &s); err != nil {
		inv.AddProblem(Problem{Source: DynamicCert, Location: d.Path, Reason: ReasonBadJSON, Detail: err.Error()})
		return
	}
	AddListenerSecret(inv, DynamicCert, d.Path, "file", &s)
}

// AddListenerSecret records the certificate chain of a listener secret (from
// dynamic-cert.json, the API or the datastore) and checks its key.
func AddListenerSecret(inv *Inventory, kind Kind, loc, via string, s *corev1.Secret) {
	crt := s.Data[corev1.TLSCertKey]
	if len(crt) == 0 {
		inv.AddProblem(Problem{Source: kind, Location: loc, Reason: ReasonBadCert, Detail: "no tls.crt in secret"})
		return
	}
	certs, err := pki.ParseCerts(crt)
	if err != nil {
		inv.AddProblem(Problem{Source: kind, Location: loc, Reason: certReason(err, len(certs)), Detail: "tls.crt: " + err.Error()})
		if len(certs) == 0 {
			return
		}
	}
	for i, c := range certs {
		inv.AddCert(Cert{Source: kind, Location: loc, Index: i, Via: via, SpecID: firstID(i, "listener"), Cert: c})
	}
	if k := s.Data[corev1.TLSPrivateKeyKey]; len(k) > 0 {
		key, n, err := pki.ParseKey(k)
		if err != nil {
			inv.AddProblem(Problem{Source: kind, Location: loc, Reason: ReasonBadKey, Detail: "tls.key: " + err.Error()})
			return
		}
		inv.AddKey(KeyCheck{Source: kind, Location: loc + " tls.key", CertLocation: loc, Matches: pki.KeyMatches(certs[0], key),
			Algorithm: pki.PublicKeyAlgorithm(key), Count: n})
	}
}

// SecretGetter fetches the listener secret. via says where it came from
// ("api" or "datastore"). A nil secret with nil error means it does not exist.
type SecretGetter func(ctx context.Context) (s *corev1.Secret, via string, err error)

// ServingSecret reads the kube-system/<program>-serving secret through a
// getter (API or datastore, see internal/kube and internal/datastore).
type ServingSecret struct {
	Namespace, SecretName string
	Get                   SecretGetter
}

// Name implements Source.
func (s ServingSecret) Name() string { return "secret" }

// Location is how the secret is named in reports.
func (s ServingSecret) Location() string {
	return fmt.Sprintf("secret %s/%s", s.Namespace, s.SecretName)
}

// Read implements Source.
func (s ServingSecret) Read(ctx context.Context, inv *Inventory) {
	if s.Get == nil {
		return
	}
	sec, via, err := s.Get(ctx)
	if err != nil {
		inv.AddProblem(Problem{Source: Secret, Location: s.Location(), Reason: ReasonSecret, Detail: err.Error()})
		return
	}
	if sec == nil {
		return
	}
	AddListenerSecret(inv, Secret, s.Location(), via, sec)
}
