package rotate

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/k3scert/k3scert/internal/pki"
)

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
