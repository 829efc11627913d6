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
