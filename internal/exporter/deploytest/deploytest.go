// Package deploytest checks k3scert's manifests under deploy/: that the
// Kustomize builds decode into valid Kubernetes objects, and that a
// server-side dry run against a real kube-apiserver accepts them. Tests
// use it; the lab's tests call DryRunServer with the lab's kubeconfig.
//
// It runs kubectl (v1.32 on the machine image) and never writes to a
// cluster: every apply is --dry-run=server.
package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Kustomize directories, relative to the repository root.
const (
	// Base holds only built-in kinds: it dry-runs on a bare apiserver.
	Base = "deploy/kustomize/base"
	// PrometheusOperator is the base plus ServiceMonitor and PrometheusRule;
	// it needs the prometheus-operator CRDs.
	PrometheusOperator = "deploy/kustomize/prometheus-operator"
	// PromQLCheck is the module that parses rule expressions.
	PromQLCheck = "deploy/promqlcheck"
)

// RepoRoot finds the repository root (the directory of k3scert's go.mod)
// from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/k3scert/k3scert\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("k3scert repository root not found above the working directory")
		}
		dir = parent
	}
}

func kubectl(ctx context.Context, args ...string) ([]byte, error) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		return nil, fmt.Errorf("kubectl not on PATH (the machine image ships v1.32; Debian: apt-get install kubectl): %w", err)
	}
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Kustomize returns `kubectl kustomize` of dir (relative to the root).
func Kustomize(ctx context.Context, root, dir string) ([]byte, error) {
	return kubectl(ctx, "kustomize", filepath.Join(root, dir))
}

// DryRun applies the Kustomize directory dir (relative to the repository
// root) with `kubectl apply --dry-run=server` to the cluster of kubeconfig
// and returns kubectl's `-o name` output: one kind/name per accepted
// object. Nothing is written to the cluster.
func DryRun(ctx context.Context, kubeconfig, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := kubectl(ctx, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict",
		"-k", filepath.Join(root, dir), "-o", "name")
	return string(out), err
}

// HelmRendered is the Helm chart rendered with every toggle on, kept
// current by deploy/helmtest (which renders with Helm's Go packages).
const HelmRendered = "deploy/helm/testdata/rendered-all.yaml"

// DryRunManifest applies the built-in kinds of a multi-document manifest
// (CRD kinds are left out: a bare apiserver has no prometheus-operator)
// with `kubectl apply --dry-run=server` and returns kubectl's `-o name`
// output and the kind/name of every object sent.
func DryRunManifest(ctx context.Context, kubeconfig string, manifest []byte) (string, []string, error) {
	objs, err := Decode(manifest)
	if err != nil {
		return "", nil, err
	}
	var keep [][]byte
	var names []string
	for _, o := range objs {
		if strings.HasPrefix(o.APIVersion, "monitoring.coreos.com/") {
			continue
		}
		keep = append(keep, o.Raw)
		names = append(names, o.Name())
	}
	f, err := os.CreateTemp("", "k3scert-dryrun-*.yaml")
	if err != nil {
		return "", nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(bytes.Join(keep, []byte("\n---\n"))); err != nil {
		f.Close()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		return "", nil, err
	}
	out, err := kubectl(ctx, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", f.Name(), "-o", "name")
	return string(out), names, err
}

// DryRunServer is the test helper: it server-side dry-runs each of dirs
// (default: Base) against the kube-apiserver of kubeconfig and fails t
// unless every object of the build was accepted.
func DryRunServer(t testing.TB, kubeconfig string, dirs ...string) {
	t.Helper()
	if len(dirs) == 0 {
		dirs = []string{Base}
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, dir := range dirs {
		built, err := Kustomize(ctx, root, dir)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Decode(built)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DryRun(ctx, kubeconfig, dir)
		if err != nil {
			t.Fatalf("server dry run of %s: %v\n%s", dir, err, out)
		}
		got := map[string]bool{}
		for _, l := range strings.Fields(out) {
			got[strings.ToLower(l)] = true
		}
		var missing []string
		for _, o := range objs {
			if !got[o.Name()] {
				missing = append(missing, o.Name())
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Fatalf("server dry run of %s did not accept %v; kubectl said:\n%s", dir, missing, out)
		}
		t.Logf("server dry run of %s: %d objects accepted", dir, len(objs))
	}
}
