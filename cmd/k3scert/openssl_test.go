package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/k3scert/k3scert/internal/k3s"
	"github.com/k3scert/k3scert/internal/k3s/k3sgen"
)

// refNode generates the reference scenario: K3s v1.18 first started on
// 2020-07-26, its clock moved 420 days, restarted: renewed files beside an
// expired dynamic-cert.json, and a k3s.yaml.
func refNode(t *testing.T) (dir, kc, cfg string, at time.Time) {
	t.Helper()
	tmp := t.TempDir()
	at = time.Date(2020, 7, 26, 10, 0, 0, 0, time.UTC)
	dir, kc, cfg = filepath.Join(tmp, "k3s"), filepath.Join(tmp, "k3s.yaml"), filepath.Join(tmp, "config.yaml")
	o := k3sgen.Options{DataDir: dir, Profile: k3s.ProfileV118, Listener: true, Kubeconfig: kc}
	if _, err := k3sgen.Start(o, at); err != nil {
		t.Fatal(err)
	}
	if _, err := k3sgen.Advance(dir, kc, 420); err != nil {
		t.Fatal(err)
	}
	if _, err := k3sgen.Start(o, at); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, kc, cfg, at
}

// checkJSON runs `k3scert check -o json` in process and returns its
// output and exit code.
func checkJSON(t *testing.T, args ...string) ([]byte, int) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"check", "-o", "json", "--no-endpoints", "--secret", "none"}, args...))
	code := 0
	if err := root.Execute(); err != nil {
		ee, ok := err.(exitError)
		if !ok {
			t.Fatalf("check: %v (%s)", err, errb.String())
		}
		code = ee.code
	}
	return out.Bytes(), code
}

// TestOpensslAgrees: for every certificate of every certificate file of a
// generated node (each PEM block of the bundles, and the listener
// certificate inside dynamic-cert.json), `openssl x509 -enddate -noout`
// gives the same NotAfter as `k3scert check -o json`, to the second.
// openssl is the operator's own tool: when it is missing, the test fails.
func TestOpensslAgrees(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl not found on PATH (install it; this cross-check never skips): %v", err)
	}
	dir, kc, cfg, at := refNode(t)
	out, code := checkJSON(t, "-d", dir, "--admin-kubeconfig", kc, "--config", cfg, "--at", at.Format(time.RFC3339))
	if code != 2 {
		t.Errorf("exit %d, want 2 (the reference failure)", code)
	}
	var r struct {
		Certificates []struct {
			Source, Location string
			Index            int
			NotAfter         string
		}
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	notAfter := map[string]string{} // location#index -> notAfter
	for _, c := range r.Certificates {
		notAfter[fmt.Sprintf("%s#%d", c.Location, c.Index)] = c.NotAfter
	}

	// Every PEM certificate block of every file the operator would look at.
	type block struct {
		loc string
		idx int
		der []byte
	}
	var blocks []block
	addPEM := func(loc string, data []byte) {
		i := 0
		for {
			var b *pem.Block
			b, data = pem.Decode(data)
			if b == nil {
				return
			}
			if b.Type == "CERTIFICATE" {
				blocks = append(blocks, block{loc, i, pem.EncodeToMemory(b)})
				i++
			}
		}
	}
	files := 0
	err = filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, ".crt"):
			files++
			addPEM(p, b)
		case strings.HasSuffix(p, "dynamic-cert.json"):
			files++
			var s k3sgen.ListenerSecret
			if err := json.Unmarshal(b, &s); err != nil {
				return err
			}
			addPEM(p, s.Data["tls.crt"])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 || len(blocks) < 2*files-10 {
		t.Fatalf("only %d files, %d certificates", files, len(blocks))
	}
	tmp := t.TempDir()
	distinct := map[string]bool{}
	for i, b := range blocks {
		name := fmt.Sprintf("%s#%d", b.loc, b.idx)
		// Bundles: the first block is the file itself, as the operator
		// runs it; later blocks are split out, since openssl reads one.
		in := b.loc
		if b.idx > 0 || strings.HasSuffix(b.loc, ".json") {
			in = filepath.Join(tmp, fmt.Sprintf("%d.pem", i))
			if err := os.WriteFile(in, b.der, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		o, err := exec.Command(openssl, "x509", "-enddate", "-noout", "-in", in).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", name, err, o)
		}
		v, ok := strings.CutPrefix(strings.TrimSpace(string(o)), "notAfter=")
		if !ok {
			t.Fatalf("openssl %s: %q", name, o)
		}
		want, err := time.Parse("Jan _2 15:04:05 2006 MST", v)
		if err != nil {
			t.Fatalf("openssl %s: %v", name, err)
		}
		got, ok := notAfter[name]
		if !ok {
			t.Errorf("%s: not in k3scert's report", name)
			continue
		}
		gt, err := time.Parse(time.RFC3339, got)
		if err != nil || !gt.Equal(want) || !strings.HasSuffix(got, "Z") {
			t.Errorf("%s: k3scert %s, openssl %s", name, got, want.Format(time.RFC3339))
		}
		distinct[got] = true
	}
	if len(distinct) < 3 {
		t.Errorf("only %d distinct NotAfter values: the scenario does not discriminate", len(distinct))
	}
	t.Logf("%d certificates in %d files agree with openssl", len(blocks), files)
}

// TestJSONShape pins the -o json field names of issue 2.
func TestJSONShape(t *testing.T) {
	dir, kc, cfg, at := refNode(t)
	out, _ := checkJSON(t, "-d", dir, "--admin-kubeconfig", kc, "--config", cfg, "--at", at.Format(time.RFC3339))
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	has := func(what string, obj map[string]json.RawMessage, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s lacks %q", what, k)
			}
		}
	}
	has("report", doc, "at", "node", "certificates", "findings")
	var atS string
	if err := json.Unmarshal(doc["at"], &atS); err != nil || atS != "2020-07-26T10:00:00Z" {
		t.Errorf("at = %s", doc["at"])
	}
	var node map[string]json.RawMessage
	if err := json.Unmarshal(doc["node"], &node); err != nil {
		t.Fatal(err)
	}
	has("node", node, "dataDir", "program", "role")
	var certs, finds []map[string]json.RawMessage
	if err := json.Unmarshal(doc["certificates"], &certs); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc["findings"], &finds); err != nil {
		t.Fatal(err)
	}
	if len(certs) == 0 || len(finds) == 0 {
		t.Fatalf("%d certificates, %d findings", len(certs), len(finds))
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		_ = json.Unmarshal(m[k], &s)
		return s
	}
	for _, c := range certs {
		has("certificate", c, "source", "location", "name", "subject", "issuer", "isCA", "notBefore", "notAfter", "status", "sha256", "sans", "usages")
		if s := str(c, "source"); !slices.Contains([]string{"file", "kubeconfig", "dynamic-cert", "secret", "endpoint"}, s) {
			t.Errorf("source %q", s)
		}
		for _, k := range []string{"notBefore", "notAfter"} {
			v := str(c, k)
			if _, err := time.Parse(time.RFC3339, v); err != nil || !strings.HasSuffix(v, "Z") {
				t.Errorf("%s %q is not RFC3339 UTC", k, v)
			}
		}
		if s := str(c, "status"); !slices.Contains([]string{"OK", "WARNING", "EXPIRED", "NOT YET VALID"}, s) {
			t.Errorf("status %q", s)
		}
		for _, k := range []string{"sans", "usages"} {
			var l []string
			if err := json.Unmarshal(c[k], &l); err != nil || l == nil {
				t.Errorf("%s is not a list: %s", k, c[k])
			}
		}
	}
	for _, f := range finds {
		has("finding", f, "code", "severity", "location", "message", "remedy")
		if s := str(f, "severity"); !slices.Contains([]string{"critical", "warning", "info"}, s) {
			t.Errorf("severity %q", s)
		}
	}
}
