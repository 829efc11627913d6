package rotate

import (
	"crypto/x509"
	"testing"
	"time"
)

// A certificate signed by dynamiclistener before v0.7.3 carries its CA's
// NotBefore: its span is the CA's age plus the validity. Keeping that span
// would renew a leaf of a 3-year-old cluster for 4 years (seen in the lab
// on the v0.3.4 listener: 786 days). Such a span gives way to K3s's
// default; a span that starts on its own stays.
func TestValidityDays(t *testing.T) {
	day := 24 * time.Hour
	caNB := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := &x509.Certificate{NotBefore: caNB, NotAfter: caNB.Add(3650 * day)}
	signed := caNB.Add(3 * 365 * day) // renewed three years after install
	cases := []struct {
		name string
		c    *x509.Certificate
		want int
	}{
		{"pinned to the CA's NotBefore, renewed late", &x509.Certificate{NotBefore: caNB, NotAfter: signed.Add(365 * day)}, 365},
		{"pinned to the CA's NotBefore, first install", &x509.Certificate{NotBefore: caNB, NotAfter: caNB.Add(365 * day)}, 365},
		{"pinned, shorter than the default", &x509.Certificate{NotBefore: caNB, NotAfter: caNB.Add(90 * day)}, 90},
		{"its own NotBefore (CalculateNotBefore)", &x509.Certificate{NotBefore: signed.Add(-time.Hour), NotAfter: signed.Add(-time.Hour).Add(730 * day)}, 730},
		{"no issuer known", &x509.Certificate{NotBefore: caNB, NotAfter: signed.Add(365 * day)}, 1460},
	}
	for _, tc := range cases {
		issuer := ca
		if tc.name == "no issuer known" {
			issuer = nil
		}
		if got := validityDays(tc.c, issuer); got != tc.want {
			t.Errorf("%s: %d days, want %d", tc.name, got, tc.want)
		}
	}
}
