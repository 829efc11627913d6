package main

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `k3scert version`, `-o json` and `--version` agree and name
// the Go version; the stamped values win over the build info.
func TestVersion(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		root := newRoot()
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	text := run("version")
	if !strings.HasPrefix(text, "k3scert ") || !strings.Contains(text, runtime.Version()) {
		t.Errorf("version: %q", text)
	}
	if got := run("--version"); got != text {
		t.Errorf("--version %q != version %q", got, text)
	}
	var b buildInfo
	if err := json.Unmarshal([]byte(run("version", "-o", "json")), &b); err != nil {
		t.Fatal(err)
	}
	if b.GoVersion != runtime.Version() || b.Version == "" || b.Commit == "" || b.BuildDate == "" {
		t.Errorf("version -o json: %+v", b)
	}

	version, commit, buildDate = "v9.9.9", "abc123", "2026-01-02T03:04:05Z"
	defer func() { version, commit, buildDate = "", "", "" }()
	if got := run("version"); !strings.Contains(got, "k3scert v9.9.9 (commit abc123, built 2026-01-02T03:04:05Z, ") {
		t.Errorf("stamped version: %q", got)
	}
}
