package rotate

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/k3scert/k3scert/internal/pki"
	"github.com/k3scert/k3scert/internal/source"
)

// leaves renews (or removes) every planned leaf. Every leaf with --method
// regenerate, and every pair in Plan.Removes, is removed so that its owner makes
// a new one on start: K3s for its own leaves, kube-controller-manager and
// kube-scheduler for the self-signed serving pairs in their --cert-dir
// (Plan.Removes).
func (e *Executor) leaves() (string, error) {
	removed, renewed := 0, 0
	dirs := map[string]bool{}
	var until []string
	cas := map[string]struct {
		bundle []*x509.Certificate
		key    any
	}{}
	type item struct {
		Leaf
		remove bool
	}
	var all []item
	for _, l := range e.Plan.Leaves {
		all = append(all, item{l, e.Plan.Method == MethodRegenerate})
	}
	for _, l := range e.Plan.Removes {
		all = append(all, item{l, true})
	}
	for _, l := range all {
		if l.remove {
			for _, p := range []string{l.Cert, l.Key} {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					return "", err
				}
			}
			dirs[filepath.Dir(l.Cert)] = true
			removed++
			continue
		}
		ca, ok := cas[l.Signer]
		if !ok {
			c, k, err := loadCA(l.Signer, l.CAKey)
			if err != nil {
				return "", err
			}
			b, _ := source.ReadFile(l.Signer)
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
		cb, err := source.ReadFile(l.Cert)
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
		// The validity K3s would give it: the plan's (from
		// CATTLE_NEW_SIGNED_CERT_EXPIRATION_DAYS), else its own span
		// (validityDays: not a span pinned to the CA's NotBefore).
		days := l.Days
		if days == 0 {
			days = e.Plan.ValidDays
		}
		if days == 0 {
			days = validityDays(old[0], ca.bundle[0])
		}
		nb := notBefore(e.now(), ca.bundle[0])
		na := nb.Add(pki.Days(days))
		rc, err := pki.Renew(old[0], key.Public(), ca.bundle[0], caKey, nb, na)
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
		chain := append([]*x509.Certificate{rc}, old[1:]...)
		if len(old) == 1 {
			chain = append([]*x509.Certificate{rc}, ca.bundle...)
		}
		if err := WriteAtomic(l.Cert, pki.EncodeCerts(chain...), modeOf(l.Cert, 0o644)); err != nil {
			return "", err
		}
		renewed++
		until = append(until, fmt.Sprintf("%s (%d days)", na.UTC().Format("2006-01-02"), days))
	}
	for d := range dirs {
		if err := syncDir(d); err != nil && !os.IsNotExist(err) {
			return "", err
		}
	}
	var parts []string
	if renewed > 0 {
		parts = append(parts, fmt.Sprintf("renewed %d leaves, valid until %s", renewed, summarize(until)))
	}
	if removed > 0 {
		parts = append(parts, fmt.Sprintf("removed %d leaves so their owners regenerate them on start", removed))
	}
	if len(parts) == 0 {
		return "no leaf to renew", nil
	}
	return strings.Join(parts, "; "), nil
}

// summarize lists distinct "until" values with their counts.
func summarize(v []string) string {
	n := map[string]int{}
	for _, s := range v {
		n[s]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for i, k := range keys {
		if i > 0 {
			out += ", "
		}
		if n[k] > 1 && len(keys) > 1 {
			out += fmt.Sprintf("%d× ", n[k])
		}
		out += k
	}
	return out
}
