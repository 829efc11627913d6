package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/pki"
)

// TestRegistryFileBound: at most MaxRegistryFiles certificate files are
// read under certs.d, and the scan says when it stopped there; a bundle
// counts as one file whatever the number of certificates it holds.
func TestRegistryFileBound(t *testing.T) {
	key, err := pki.NewECKey()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, err := pki.NewCA("registry-ca", key, at, at.Add(pki.Days(365)))
	if err != nil {
		t.Fatal(err)
	}
	one, bundle := pki.EncodeCerts(ca), pki.EncodeCerts(ca, ca, ca)
	dataDir := t.TempDir()
	root := filepath.Join(dataDir, filepath.FromSlash(k3s.RegistryCertsDir))
	write := func(files int) {
		for i := 0; i < files; i++ {
			dir := filepath.Join(root, fmt.Sprintf("r%05d.example", i))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			b := one
			if i == 0 {
				b = bundle
			}
			if err := os.WriteFile(filepath.Join(dir, "ca.crt"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func() (files map[string]bool, certs int, problems []Problem) {
		var inv Inventory
		RegistryCerts{DataDir: dataDir}.Read(context.Background(), &inv)
		files = map[string]bool{}
		for _, c := range inv.Certs {
			files[c.Location] = true
		}
		return files, len(inv.Certs), inv.Problems
	}

	write(MaxRegistryFiles)
	files, certs, problems := read()
	if len(files) != MaxRegistryFiles || certs != MaxRegistryFiles+2 || len(problems) != 0 {
		t.Fatalf("at the bound: %d files, %d certificates, problems %v; want %d, %d, none", len(files), certs, problems, MaxRegistryFiles, MaxRegistryFiles+2)
	}

	write(MaxRegistryFiles + 2)
	files, _, problems = read()
	if len(files) != MaxRegistryFiles {
		t.Fatalf("past the bound: %d files read, want %d", len(files), MaxRegistryFiles)
	}
	if len(problems) != 1 || problems[0].Reason != ReasonTooLarge || problems[0].Location != root ||
		!strings.Contains(problems[0].Detail, fmt.Sprint(MaxRegistryFiles)) {
		t.Fatalf("past the bound: problems %+v; want one too_large on %s", problems, root)
	}
	if files[filepath.Join(root, fmt.Sprintf("r%05d.example", MaxRegistryFiles), "ca.crt")] {
		t.Fatal("a file past the bound was read")
	}
}
