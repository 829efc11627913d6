package render

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/k3scert/k3scert/internal/report"
)

func TestSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"system:admin", "system:admin"},
		{"k3s-server-ca@1735689600", "k3s-server-ca@1735689600"},
		{"节点-ñ-Ω", "节点-ñ-Ω"}, // other scripts are kept
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"row\nfile  forged  OK", `row\nfile  forged  OK`},
		{"cr\rtab\tnul\x00del\x7f", `cr\rtab\tnul\x00del\x7f`},
		{"c1 \u009b31m", `c1 \x9b31m`},
		{"\u202egnp.exe", `\u202egnp.exe`},
		{"\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c", `\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c`},
		{"zero\u200bwidth\u200c\u200d\u2060\ufeff", `zero\u200bwidth\u200c\u200d\u2060\ufeff`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"bad\xffutf8\xc3", `bad\xffutf8\xc3`},
		{`back\slash`, `back\slash`},
	}
	for _, tt := range tests {
		if got := Safe(tt.in); got != tt.want {
			t.Errorf("Safe(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// safeCopy escapes every string of a document, deep, and leaves the
// original alone (JSON and HTML render the raw values).
func TestSafeCopy(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := report.Report{At: at, Node: report.Node{DataDir: "/d\x1b"},
		Certificates: []report.Certificate{{Subject: "CN=\u202eevil", Usages: []string{"a\nb"}, NotAfter: at}},
		Findings:     []report.Finding{{Message: "m\x07", Remedy: "r\u2066"}}}
	s := safeCopy(r)
	if s.Node.DataDir != `/d\x1b` || s.Certificates[0].Subject != `CN=\u202eevil` || s.Certificates[0].Usages[0] != `a\nb` ||
		s.Findings[0].Message != `m\x07` || s.Findings[0].Remedy != `r\u2066` || !s.At.Equal(at) || !s.Certificates[0].NotAfter.Equal(at) {
		t.Errorf("not escaped: %+v", s)
	}
	if r.Node.DataDir != "/d\x1b" || r.Certificates[0].Usages[0] != "a\nb" || r.Findings[0].Message != "m\x07" {
		t.Errorf("original changed: %+v", r)
	}
	lo := at.Add(time.Hour)
	f := report.Forecast{LockOut: &report.LockOut{At: lo, Message: "x\ny"}, Unknown: []string{"u\x1b"}}
	sf := safeCopy(f)
	if sf.LockOut.Message != `x\ny` || sf.Unknown[0] != `u\x1b` || f.LockOut.Message != "x\ny" || !sf.LockOut.At.Equal(lo) {
		t.Errorf("forecast: %+v", sf)
	}
}

// FuzzSafe: the output never holds a character Safe exists to remove, is
// valid UTF-8, is a fixed point, and equals the input when nothing needed
// escaping.
func FuzzSafe(f *testing.F) {
	for _, s := range []string{"", "plain", "a\x1b[2J", "\u202e\u2066\u200b", "\xff\xfe", "x\ny", "\U000e0041", "节点"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Safe(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Safe(%q) = %q: not UTF-8", s, out)
		}
		for _, r := range out {
			if r < 0x20 || (r >= 0x7f && r < 0xa0) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r) {
				t.Fatalf("Safe(%q) = %q keeps %U", s, out, r)
			}
		}
		if Safe(out) != out {
			t.Fatalf("Safe is not idempotent on %q", s)
		}
		clean := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return unsafeRune(r, utf8.RuneLen(r)) })
		if clean != (out == s) {
			t.Fatalf("Safe(%q) = %q; input clean: %v", s, out, clean)
		}
	})
}
