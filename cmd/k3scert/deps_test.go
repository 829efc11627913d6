package main

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// forbidden are modules (or package trees) the product binary must not
// link: the lab's parts, kine and its drivers, the etcd server, client-go's
// typed clientset (issue 11 item 1). The lab has its own command,
// cmd/k3scert-lab; kine's table is written with database/sql
// (internal/datastore); the API is spoken to with client-go/rest and
// core/v1 (internal/kube).
var forbidden = []string{
	"github.com/rancher/dynamiclistener",
	"github.com/rancher/wrangler",
	"github.com/rancher/lasso",
	"github.com/k3s-io/kine",
	"go.etcd.io/etcd/server",
	"go.etcd.io/raft",
	"go.etcd.io/bbolt",
	"github.com/nats-io/",
	"github.com/t4db/",
	"github.com/cockroachdb/",
	"github.com/minio/",
	"github.com/jackc/",
	"github.com/go-sql-driver/mysql",
	"modernc.org/sqlite",
	"k8s.io/client-go/kubernetes", // package tree: the typed clientset and its scheme
	"k8s.io/client-go/informers",
	"github.com/k3scert/k3scert/internal/lab",
}

// maxModules is issue 11's budget for the product binary.
const maxModules = 90

// TestProductLinksOnlyTheProduct lists what `go build ./cmd/k3scert` links
// (`go list -deps`, the same set `go version -m` shows) and fails on any
// forbidden module or package, or on more modules than the budget.
func TestProductLinksOnlyTheProduct(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH: cannot list the product's dependencies")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	modules := map[string]bool{}
	var bad []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, mod, _ := strings.Cut(line, " ")
		if mod != "" {
			modules[mod] = true
		}
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) || strings.HasPrefix(mod, f) {
				bad = append(bad, pkg+" (module "+mod+")")
			}
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("cmd/k3scert links %d forbidden packages:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	// The main module is one of them; `go version -m` lists the others as dep lines.
	if n := len(modules); n > maxModules {
		t.Errorf("cmd/k3scert links %d modules, budget %d", n, maxModules)
	}
	t.Logf("cmd/k3scert links %d modules (budget %d)", len(modules), maxModules)
}
