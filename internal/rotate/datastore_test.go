package rotate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k3scert/k3scert/internal/rotate"
)

// The plan names its datastore the way datastore.OpenNode opens it: a node
// migrated from SQLite to embedded etcd may keep state.db beside etcd, and
// then the secret lives in etcd (which stops with K3s), not in the file.
func TestDatastoreOrderFollowsOpenNode(t *testing.T) {
	for _, tt := range []struct {
		name    string
		make    []string
		offline bool
		want    string
	}{
		{"sqlite", []string{"k3s/server/db/state.db"}, true, "sqlite"},
		{"etcd", []string{"k3s/server/db/etcd/"}, false, "embedded etcd, which stops with K3s"},
		{"migrated", []string{"k3s/server/db/etcd/", "k3s/server/db/state.db"}, false, "embedded etcd, which stops with K3s"},
		{"rke2 etcd", []string{"rke2/server/db/etcd/"}, true, "RKE2 static pod"},
		{"external", nil, false, "external datastore"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dataDir := filepath.Join(root, "k3s")
			for _, m := range tt.make {
				p := filepath.Join(root, m)
				if strings.HasSuffix(m, "/") {
					if err := os.MkdirAll(p, 0o700); err != nil {
						t.Fatal(err)
					}
					dataDir = filepath.Join(root, strings.Split(m, "/")[0])
					continue
				}
				os.MkdirAll(filepath.Dir(p), 0o700)
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := rotate.OfflineSecret(dataDir); got != tt.offline {
				t.Errorf("OfflineSecret = %v, want %v", got, tt.offline)
			}
			if got := rotate.DescribeDatastore(dataDir); !strings.Contains(got, tt.want) {
				t.Errorf("DescribeDatastore = %q, want %q", got, tt.want)
			}
		})
	}
}

// rotate --dry-run prints the same datastore as its JSON.
func TestPlanSummaryNamesDatastore(t *testing.T) {
	p := rotate.Plan{Datastore: "sqlite server/db/state.db (kine's table), written offline while K3s is stopped"}
	if s := p.Summary(); !strings.Contains(s, "datastore: "+p.Datastore+"\n") {
		t.Errorf("summary lacks the datastore:\n%s", s)
	}
}
