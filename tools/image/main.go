// Command image assembles k3scert's container image from a static binary,
// offline and reproducibly: no registry, no base image, no container
// runtime. It writes an OCI image layout (a directory, and optionally the
// same as a tar that `podman load` reads as oci-archive) and a
// docker-archive tar (`docker load`, `podman load`, `k3s ctr images
// import`).
//
// The image is one layer holding /usr/local/bin/k3scert (and an empty
// /tmp), entrypoint k3scert, default command `serve`. Every byte is a
// function of the binary and the flags: tar entries are sorted with fixed
// owners, modes and times (--created, default the Unix epoch; the Makefile
// passes the commit's time, SOURCE_DATE_EPOCH), gzip carries no name or
// time, JSON is encoded in a fixed order. Building twice gives the same
// digests (tools/image tests it).
//
//	go run ./tools/image --binary bin/k3scert-static --tag ghcr.io/k3scert/k3scert:v0.2.0 \
//	    --oci bin/image/oci --oci-archive bin/image/k3scert-oci.tar --docker-archive bin/image/k3scert-docker.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types (OCI image spec v1.1).
const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
	// BinaryPath is where the binary lives in the image.
	BinaryPath = "/usr/local/bin/k3scert"
)

// Options say what to build.
type Options struct {
	Binary   []byte
	Tag      string // repository:tag, e.g. ghcr.io/k3scert/k3scert:v0.2.0
	Created  time.Time
	Version  string
	Revision string
	Arch     string
}

// Image is the assembled image: blobs by digest and the top-level files.
type Image struct {
	Layer, LayerGz []byte // the layer, uncompressed and gzip
	Config         []byte
	Manifest       []byte
	Index          []byte
	// Digests are "sha256:<hex>".
	LayerDiffID, LayerDigest, ConfigDigest, ManifestDigest string
	Tag                                                    string
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type imageConfig struct {
	Created      string `json:"created"`
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Env        []string          `json:"Env"`
		WorkingDir string            `json:"WorkingDir"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	} `json:"history"`
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func hexOf(d string) string { return strings.TrimPrefix(d, "sha256:") }

// Build assembles the image in memory.
func Build(o Options) (*Image, error) {
	if len(o.Binary) == 0 {
		return nil, errors.New("image: no binary")
	}
	if o.Tag == "" || !strings.Contains(o.Tag, ":") {
		return nil, fmt.Errorf("image: tag %q is not repository:tag", o.Tag)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	created := o.Created.UTC()
	layer, err := layerTar(o.Binary, created)
	if err != nil {
		return nil, err
	}
	gz, err := gzipBytes(layer)
	if err != nil {
		return nil, err
	}
	img := &Image{Layer: layer, LayerGz: gz, LayerDiffID: digest(layer), LayerDigest: digest(gz), Tag: o.Tag}

	var cfg imageConfig
	cfg.Created = created.Format(time.RFC3339)
	cfg.Architecture, cfg.OS = o.Arch, "linux"
	cfg.Config.Entrypoint = []string{BinaryPath}
	cfg.Config.Cmd = []string{"serve"}
	cfg.Config.Env = []string{"PATH=/usr/local/bin", "TMPDIR=/tmp"}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "k3scert",
		"org.opencontainers.image.source":   "https://github.com/k3scert/k3scert",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.created":  created.Format(time.RFC3339),
	}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{img.LayerDiffID}
	cfg.History = append(cfg.History, struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}{cfg.Created, "tools/image: " + BinaryPath})
	if img.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	img.ConfigDigest = digest(img.Config)

	man := struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{2, mediaManifest,
		descriptor{MediaType: mediaConfig, Digest: img.ConfigDigest, Size: len(img.Config)},
		[]descriptor{{MediaType: mediaLayerGz, Digest: img.LayerDigest, Size: len(gz)}}}
	if img.Manifest, err = json.Marshal(man); err != nil {
		return nil, err
	}
	img.ManifestDigest = digest(img.Manifest)

	idx := struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaIndex, []descriptor{{MediaType: mediaManifest, Digest: img.ManifestDigest, Size: len(img.Manifest),
		Platform: &platform{Architecture: o.Arch, OS: "linux"},
		Annotations: map[string]string{
			"org.opencontainers.image.ref.name": o.Tag, // skopeo/podman oci: name
			"io.containerd.image.name":          o.Tag, // containerd/ctr import
			"org.opencontainers.image.version":  o.Version,
		}}}}
	if img.Index, err = json.Marshal(idx); err != nil {
		return nil, err
	}
	return img, nil
}

// layerTar is the single layer: the directories down to the binary, the
// binary (0755), and /tmp (1777) for the read-only root file system's
// emptyDir or tmpfs.
func layerTar(bin []byte, at time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: at, Format: tar.FormatUSTAR})
	}
	for _, d := range []struct {
		name string
		mode int64
	}{{"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/local/", 0o755}, {"usr/local/bin/", 0o755}} {
		if err := dir(d.name, d.mode); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(BinaryPath, "/"), Mode: 0o755,
		Size: int64(len(bin)), ModTime: at, Format: tar.FormatUSTAR}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.ModTime = time.Unix(0, 0) // no time, no name: reproducible
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// file is one entry of an archive written by writeTar.
type file struct {
	name string
	data []byte
}

// writeTar writes files (and their parent directories) in name order with
// fixed metadata.
func writeTar(path string, files []file, at time.Time) error {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(f.name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var ds []string
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: at, Format: tar.FormatUSTAR}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: at, Format: tar.FormatUSTAR}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return writeAtomic(path, buf.Bytes())
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ociFiles are the files of the OCI image layout.
func (img *Image) ociFiles() []file {
	return []file{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", img.Index},
		{"blobs/sha256/" + hexOf(img.ManifestDigest), img.Manifest},
		{"blobs/sha256/" + hexOf(img.ConfigDigest), img.Config},
		{"blobs/sha256/" + hexOf(img.LayerDigest), img.LayerGz},
	}
}

// WriteOCI writes the OCI image layout into dir (replacing its files).
func (img *Image) WriteOCI(dir string) error {
	for _, f := range img.ociFiles() {
		if err := writeAtomic(filepath.Join(dir, filepath.FromSlash(f.name)), f.data); err != nil {
			return err
		}
	}
	return nil
}

// WriteOCIArchive writes the OCI layout as one tar (podman's oci-archive).
func (img *Image) WriteOCIArchive(path string, at time.Time) error {
	return writeTar(path, img.ociFiles(), at)
}

// WriteDockerArchive writes the image as `docker save` does (manifest.json,
// the config, the uncompressed layer), loadable by docker and podman.
func (img *Image) WriteDockerArchive(path string, at time.Time) error {
	layer := hexOf(img.LayerDiffID) + "/layer.tar"
	cfg := hexOf(img.ConfigDigest) + ".json"
	man, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{cfg, []string{img.Tag}, []string{layer}}})
	if err != nil {
		return err
	}
	repo, tag, _ := strings.Cut(img.Tag[strings.LastIndex(img.Tag, "/")+1:], ":")
	repo = img.Tag[:strings.LastIndex(img.Tag, "/")+1] + repo
	repos, err := json.Marshal(map[string]map[string]string{repo: {tag: hexOf(img.LayerDiffID)}})
	if err != nil {
		return err
	}
	return writeTar(path, []file{
		{"manifest.json", man},
		{"repositories", repos},
		{cfg, img.Config},
		{layer, img.Layer},
	}, at)
}

func main() {
	var binary, tag, oci, ociArchive, dockerArchive, version, revision, arch string
	var created int64
	flag.StringVar(&binary, "binary", "bin/k3scert-static", "the static k3scert binary")
	flag.StringVar(&tag, "tag", "ghcr.io/k3scert/k3scert:dev", "repository:tag of the image")
	flag.StringVar(&oci, "oci", "", "write the OCI image layout into this directory")
	flag.StringVar(&ociArchive, "oci-archive", "", "write the OCI image layout as this tar (podman load oci-archive)")
	flag.StringVar(&dockerArchive, "docker-archive", "", "write a docker-archive tar (docker/podman load, k3s ctr images import)")
	flag.StringVar(&version, "version", "", "org.opencontainers.image.version")
	flag.StringVar(&revision, "revision", "", "org.opencontainers.image.revision")
	flag.StringVar(&arch, "arch", runtime.GOARCH, "image architecture")
	flag.Int64Var(&created, "created", 0, "creation time, Unix seconds (SOURCE_DATE_EPOCH; default the epoch)")
	flag.Parse()
	if err := run(binary, tag, oci, ociArchive, dockerArchive, version, revision, arch, created); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(binary, tag, oci, ociArchive, dockerArchive, version, revision, arch string, created int64) error {
	b, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	if !isStaticELF(b) {
		return fmt.Errorf("%s is not a static ELF executable (the image has no libc): build it with make static", binary)
	}
	at := time.Unix(created, 0).UTC()
	img, err := Build(Options{Binary: b, Tag: tag, Created: at, Version: version, Revision: revision, Arch: arch})
	if err != nil {
		return err
	}
	if oci != "" {
		if err := img.WriteOCI(oci); err != nil {
			return err
		}
	}
	if ociArchive != "" {
		if err := img.WriteOCIArchive(ociArchive, at); err != nil {
			return err
		}
	}
	if dockerArchive != "" {
		if err := img.WriteDockerArchive(dockerArchive, at); err != nil {
			return err
		}
	}
	fmt.Printf("image %s\n  manifest %s\n  config   %s\n  layer    %s (%d bytes, %d gzip)\n",
		tag, img.ManifestDigest, img.ConfigDigest, img.LayerDigest, len(img.Layer), len(img.LayerGz))
	return nil
}
