package jsonl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type rec struct {
	T string `json:"t"`
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	var got []string
	if err := Lines(path, func(l []byte) error { got = append(got, strings.TrimSpace(string(l))); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// A crash mid-write leaves a torn last line: readers skip it, the next
// append cuts it first, so every later record is on its own line. A new
// journal keeps the ended one beside it under a sub-second name.
func TestTornLineAndSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "j")
	now := time.Date(2026, 12, 2, 1, 2, 3, 456, time.UTC)
	l, err := Create(path, "journal", rec{"plan"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(rec{"begin"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"t":"do`) // torn
	f.Close()
	if got := lines(t, path); strings.Join(got, ",") != `{"t":"plan"},{"t":"begin"}` {
		t.Fatalf("read with a torn line: %v", got)
	}
	l, err = Open(path, "journal")
	if err != nil {
		t.Fatal(err)
	}
	l.Append(rec{"done"})
	l.Close()
	if got := lines(t, path); strings.Join(got, ",") != `{"t":"plan"},{"t":"begin"},{"t":"done"}` {
		t.Fatalf("after the append: %v", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	for i := 0; i < 2; i++ {
		l, err = Create(path, "journal", rec{"plan"}, now)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	kept, _ := filepath.Glob(path + ".20261202T010203.000000456Z*")
	if len(kept) != 2 {
		t.Fatalf("ended journals kept beside: %v", kept)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none"), "cluster journal"); err == nil || !strings.HasPrefix(err.Error(), "cluster journal: ") {
		t.Fatalf("open of a missing journal: %v", err)
	}
}
