package k3s_test

import (
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/k3s"
)

func TestListenerAnnotationKey(t *testing.T) {
	cur := k3s.ProfileCurrent
	v034, _ := k3s.ProfileByName("v1.24.3")
	v02x, _ := k3s.ProfileByName("v1.19.1")
	long := strings.Repeat("a", 50) + ".example.com"
	tests := []struct {
		prof k3s.Profile
		name string
		want string
		ok   bool
	}{
		{cur, "10.0.0.1", "listener.cattle.io/cn-10.0.0.1", true},
		{cur, "kubernetes.default.svc", "listener.cattle.io/cn-kubernetes.default.svc", true},
		{cur, "::1", "listener.cattle.io/cn-__1-", true},
		{cur, "*.example.com", "listener.cattle.io/cn-_.example.com-", true},
		{v034, "*.example.com", "", false},
		{v034, "fd00::10", "listener.cattle.io/cn-fd00__10-", true},
		{v02x, "fd00::10", "", false},
		{cur, long, "listener.cattle.io/cn-" + long[:34] + "-", true},
	}
	for _, tt := range tests {
		got, ok := k3s.ListenerAnnotationKey(tt.prof, tt.name)
		if ok != tt.ok || (ok && !strings.HasPrefix(got, tt.want)) || len(got) > 63 && ok {
			t.Errorf("%s %q = %q, %v; want prefix %q, %v", tt.prof.DynamicListener, tt.name, got, ok, tt.want, tt.ok)
		}
		if ok && strings.HasSuffix(tt.want, "-") && len(got) != len(tt.want)+6 {
			t.Errorf("%q: hash suffix missing in %q", tt.name, got)
		}
	}
}
