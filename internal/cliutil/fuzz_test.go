package cliutil

import (
	"testing"
	"time"
)

// FuzzParseAt: ParseAt never panics, and a time it accepts is never a
// wrapped-around offset: "+..." is not before now, "-..." not after, and
// nothing lands more than ~292 years from now unless it was written as a
// date.
func FuzzParseAt(f *testing.F) {
	for _, s := range []string{"now", "+90d", "-12h", "+2w", "+1.5d", "+NaNd", "+Infd", "+106752d", "+1e300d", "2021-09-20",
		"2021-09-20T00:00:00Z", "+9999999999h", "--5h", "+.5d", "+5", "+0x1p3d"} {
		f.Add(s)
	}
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseAt(s, now)
		if err != nil {
			return
		}
		trimmed := s
		for len(trimmed) > 0 && (trimmed[0] == ' ' || trimmed[0] == '\t' || trimmed[0] == '\n' || trimmed[0] == '\r' || trimmed[0] == '\v' || trimmed[0] == '\f') {
			trimmed = trimmed[1:]
		}
		if len(trimmed) == 0 {
			return
		}
		switch trimmed[0] {
		case '+':
			if got.Before(now) {
				t.Fatalf("%q: %s is before now", s, got)
			}
		case '-':
			if got.After(now) {
				t.Fatalf("%q: %s is after now", s, got)
			}
		default:
			return
		}
		if y := got.Year(); y < now.Year()-293 || y > now.Year()+293 {
			t.Fatalf("%q: %s is more than 292 years from now", s, got)
		}
	})
}
