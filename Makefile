# k3scert — see README.md. Two commands matter:
#   make demo   the main job: build the lab and replay the reference verification
#               (bin/k3scert-lab run all, then k3scert rotate on the expired node)
#   make test   every test (the lab tests need `make lab-bin` first; .ci/run does both)
GO        ?= go
LAB_BIN   ?= $(CURDIR)/bin
export K3SCERT_LAB_BIN ?= $(LAB_BIN)

.PHONY: clean-lab all build test test-short lab-bin demo bench bench-budget bench-peer fuzz vet fmt clean

all: build

# Two binaries: k3scert, the product an operator copies onto a node, and
# k3scert-lab, the emulated K3s node (dynamiclistener, kine, kube-apiserver
# binaries), which the product must not link (cmd/k3scert/deps_test.go).
build:
	$(GO) build -o bin/k3scert ./cmd/k3scert
	$(GO) build -o bin/k3scert-lab ./cmd/k3scert-lab

clean: clean-lab
clean-lab:
	rm -f bin/k3scert-lab

# Builds kube-apiserver and kine from the pins in tools/labbin, once per pin.
lab-bin:
	OUT=$(K3SCERT_LAB_BIN) tools/labbin/build.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }

test: vet
	$(GO) test -count=1 -timeout 45m ./...

test-short:
	$(GO) test -short ./...

# The reference verification on real parts (v1.18 and current), then the
# fix: k3scert rotate on the expired v1.18 node, clock untouched.
demo: build lab-bin
	bin/k3scert-lab run all
	bin/k3scert-lab run scenario1 --profile v1.18 --remedy rotate
	bin/k3scert-lab run ha-expired --remedy rotate
	bin/k3scert-lab run ha-preventive

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/ ./internal/...

# Issue 11's budgets, each against its baseline in the same run (bench/README.md).
# BEFORE=path/to/an/older/k3scert measures that binary too, interleaved.
bench-budget:
	K3SCERT_BENCH_BEFORE=$(BEFORE) $(GO) test -run '^TestSameReport$$' -v -bench 'Budget' -benchtime 10x -timeout 30m ./bench/

# Both exporters on the same generated certificates, interleaved, paired ratios.
# PEER=path/to/x509-certificate-exporter (see bench/README.md); skips without it.
bench-peer:
	K3SCERT_BENCH_PEER=$(PEER) $(GO) test -run '^$$' -bench 'Peer' -benchtime 5x -timeout 60m ./bench/

fuzz:
	@for t in $$(grep -rl 'func Fuzz' --include='*_test.go' internal | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho 'func Fuzz[A-Za-z0-9_]*' $$t/*_test.go | cut -d' ' -f2); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s ./$$t || exit 1; done; done

clean:
	rm -rf bin/k3scert

# --- exporter: static binary, container image, Helm chart tests (w-exporter) ---
# `make image` builds the static binary and assembles the image offline
# (tools/image: no registry, no base image), reproducibly: the same commit
# gives the same digests (times come from the commit, SOURCE_DATE_EPOCH).
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
BUILD_DATE  ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
IMAGE       ?= ghcr.io/k3scert/k3scert:$(VERSION)
STATIC_TAGS ?= netgo,osusergo,sqlite_omit_load_extension
LDFLAGS_VERSION = -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

.PHONY: static image helm-test

# cgo stays (mattn/go-sqlite3 for kine's SQLite), linked statically: `ldd` says "not a dynamic executable".
static:
	CGO_ENABLED=1 $(GO) build -trimpath -tags $(STATIC_TAGS) \
	  -ldflags '-s -w -linkmode external -extldflags -static $(LDFLAGS_VERSION)' -o bin/k3scert-static ./cmd/k3scert
	@ldd bin/k3scert-static 2>&1 | grep -q 'not a dynamic executable' || { ldd bin/k3scert-static; echo 'static: bin/k3scert-static is dynamic'; exit 1; }

image: static
	$(GO) run ./tools/image --binary bin/k3scert-static --tag $(IMAGE) --version $(VERSION) --revision $(COMMIT) \
	  --created $(SOURCE_DATE_EPOCH) --oci bin/image/oci --oci-archive bin/image/k3scert-oci.tar --docker-archive bin/image/k3scert-docker.tar
	@echo "load: podman load -i bin/image/k3scert-docker.tar   (k3s: k3s ctr images import bin/image/k3scert-docker.tar)"

# The Helm chart's lint/template tests live in their own module (Helm's dependencies stay out of go.mod).
helm-test:
	cd deploy/helmtest && GOWORK=off $(GO) test -count=1 ./...

test: helm-test
