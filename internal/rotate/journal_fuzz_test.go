package rotate_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/k3scert/k3scert/internal/rotate"
)

// FuzzReadJournal: a journal may be torn by a crash or damaged on disk;
// reading it must return a state or an error, never panic.
func FuzzReadJournal(f *testing.F) {
	f.Add([]byte(`{"t":"plan","at":"2026-01-01T00:00:00Z","plan":{"steps":[{"index":0,"name":"preflight"}]}}` + "\n" +
		`{"t":"begin","step":0,"name":"preflight","at":"2026-01-01T00:00:00Z"}` + "\n" + `{"t":"done","st`))
	f.Add([]byte(""))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"t":"plan","plan":null}` + "\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "j")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = rotate.ReadJournal(p)
	})
}
