package check_test

import (
	"reflect"
	"testing"

	"github.com/k3scert/k3scert/internal/check"
)

func TestParseConfigSANs(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"tls-san: a.example,10.0.0.1", []string{"a.example", "10.0.0.1"}},
		{"tls-san:\n- a.example\n- 10.0.0.1\n", []string{"a.example", "10.0.0.1"}},
		{"write-kubeconfig-mode: \"0644\"\n", nil},
		{"tls-san: [1, b]", []string{"b"}},
	} {
		got, err := check.ParseConfigSANs([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseConfigSANs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := check.ParseConfigSANs([]byte("tls-san: [unclosed")); err == nil {
		t.Error("broken YAML accepted")
	}
}

// FuzzParseConfigSANs: K3s's config.yaml is outside input; it must never
// panic the parser.
func FuzzParseConfigSANs(f *testing.F) {
	for _, s := range []string{"tls-san: a,b", "tls-san:\n- a\n- b\n", "", "tls-san: {x: 1}", "- - -", "tls-san: !!binary aGk="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = check.ParseConfigSANs(b)
	})
}
