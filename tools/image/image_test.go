package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTar(t *testing.T, b []byte) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var hs []*tar.Header
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		d, _ := io.ReadAll(tr)
		data[h.Name] = d
	}
	return hs, data
}

// TestBuildReproducible: the same binary gives the same bytes and digests;
// the layer holds exactly the binary, owned by root, at fixed times; the
// config runs it.
func TestBuildReproducible(t *testing.T) {
	bin := bytes.Repeat([]byte("not really an ELF "), 1000)
	o := Options{Binary: bin, Tag: "ghcr.io/k3scert/k3scert:v9", Created: time.Unix(1700000000, 0), Version: "v9", Revision: "abc", Arch: "amd64"}
	a, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if a.ManifestDigest != b.ManifestDigest || !bytes.Equal(a.LayerGz, b.LayerGz) || !bytes.Equal(a.Index, b.Index) {
		t.Fatal("two builds of the same binary differ")
	}
	o.Created = time.Unix(1700000001, 0)
	if c, _ := Build(o); c.ManifestDigest == a.ManifestDigest {
		t.Error("the creation time does not reach the digest")
	}

	hs, data := readTar(t, a.Layer)
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: uid %d gid %d uname %q mtime %s", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
	}
	if got := strings.Join(names, " "); got != "tmp/ usr/ usr/local/ usr/local/bin/ usr/local/bin/k3scert" {
		t.Errorf("layer entries: %s", got)
	}
	if !bytes.Equal(data["usr/local/bin/k3scert"], bin) || hs[4].Mode != 0o755 || hs[0].Mode != 0o1777 {
		t.Errorf("binary entry mode %o, tmp mode %o", hs[4].Mode, hs[0].Mode)
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.LayerGz))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, a.Layer) || zr.Name != "" || !(zr.ModTime.IsZero() || zr.ModTime.Equal(time.Unix(0, 0))) {
		t.Error("the gzip layer is not the layer, or carries a name or time")
	}

	var cfg imageConfig
	if err := json.Unmarshal(a.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != BinaryPath || strings.Join(cfg.Config.Cmd, " ") != "serve" ||
		cfg.RootFS.DiffIDs[0] != a.LayerDiffID || cfg.Config.Labels["org.opencontainers.image.revision"] != "abc" || cfg.OS != "linux" {
		t.Errorf("config %s", a.Config)
	}
	if !strings.Contains(string(a.Manifest), a.ConfigDigest) || !strings.Contains(string(a.Manifest), a.LayerDigest) ||
		!strings.Contains(string(a.Index), a.ManifestDigest) || !strings.Contains(string(a.Index), `"org.opencontainers.image.ref.name":"ghcr.io/k3scert/k3scert:v9"`) {
		t.Error("manifest/index do not reference their blobs")
	}

	// The archives are reproducible too.
	dir := t.TempDir()
	for i := range 2 {
		if err := a.WriteDockerArchive(filepath.Join(dir, "d"+string(rune('0'+i))+".tar"), o.Created); err != nil {
			t.Fatal(err)
		}
		if err := a.WriteOCIArchive(filepath.Join(dir, "o"+string(rune('0'+i))+".tar"), o.Created); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"d", "o"} {
		x, _ := os.ReadFile(filepath.Join(dir, p+"0.tar"))
		y, _ := os.ReadFile(filepath.Join(dir, p+"1.tar"))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s archive not reproducible", p)
		}
	}
	_, files := readTar(t, mustRead(t, filepath.Join(dir, "d0.tar")))
	if !strings.Contains(string(files["manifest.json"]), `"RepoTags":["ghcr.io/k3scert/k3scert:v9"]`) {
		t.Errorf("docker manifest.json: %s", files["manifest.json"])
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticBinary builds k3scert as `make static` does, stamped, into dir.
func staticBinary(t *testing.T, dir string) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "k3scert")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", StaticTags,
		"-ldflags", "-s -w -linkmode external -extldflags -static -X main.version=v0.0.0-imagetest -X main.commit=imagetest -X main.buildDate=1970-01-01T00:00:00Z",
		"-o", out, "./cmd/k3scert")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, b)
	}
	return out
}

// StaticTags are the build tags of the static binary (Makefile STATIC_TAGS).
const StaticTags = "netgo,osusergo,sqlite_omit_load_extension"

// TestImageRuns builds the static binary and the image, checks that ldd
// calls the binary static, and runs the image's entrypoint in podman
// (`podman load`, `podman run --network none IMAGE version`). Without
// podman it says so and skips (CI installs podman).
func TestImageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the static binary")
	}
	podman, perr := exec.LookPath("podman")
	if perr != nil && os.Getenv("CI") == "" {
		t.Skip("podman not on PATH (apt-get install podman): the image is not run")
	}
	if perr != nil {
		t.Fatal("CI: podman not on PATH; .ci/run must install it")
	}
	dir := t.TempDir()
	bin := staticBinary(t, dir)
	if out, _ := exec.Command("ldd", bin).CombinedOutput(); !strings.Contains(string(out), "not a dynamic executable") {
		t.Errorf("ldd %s: %s", bin, out)
	}
	b := mustRead(t, bin)
	if !isStaticELF(b) {
		t.Fatal("isStaticELF says the static build is dynamic")
	}
	tag := "localhost/k3scert-imagetest:" + time.Now().UTC().Format("20060102150405")
	archive := filepath.Join(dir, "image.tar")
	if err := run(bin, tag, filepath.Join(dir, "oci"), filepath.Join(dir, "oci.tar"), archive, "v0.0.0-imagetest", "imagetest", "", 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pm := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, podman, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := pm("load", "-i", archive); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	defer pm("rmi", "-f", tag)
	// Limits within the caller's hard limits (podman 4.3's rootful
	// defaults, nofile 1048576, are refused in sandboxes), and runc when
	// present: crun 1.8 refuses hybrid cgroup v1/v2 hosts such as this
	// machine ("cgroups in hybrid mode not supported").
	runArgs := []string{"run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	if _, err := exec.LookPath("runc"); err == nil {
		runArgs = append([]string{"--runtime", "runc"}, runArgs...)
	}
	out, err := pm(append(runArgs, tag, "version")...)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("podman run %s version: %v\n%s", tag, err, out)
		}
		t.Fatal(err)
	}
	if !strings.Contains(out, "k3scert v0.0.0-imagetest (commit imagetest, built 1970-01-01T00:00:00Z, go") {
		t.Errorf("podman run version: %q", out)
	}
	// The default command is serve; --help proves the entrypoint without a node.
	if out, err := pm(append(runArgs, "--read-only", tag, "serve", "--help")...); err != nil || !strings.Contains(out, "--api-kubeconfig") {
		t.Errorf("podman run serve --help: %v\n%s", err, out)
	}
	// The OCI archive loads too.
	if out, err := pm("load", "-i", filepath.Join(dir, "oci.tar")); err != nil {
		t.Errorf("podman load oci-archive: %v\n%s", err, out)
	}
	t.Logf("image %s: binary %d bytes", tag, len(b))
}
