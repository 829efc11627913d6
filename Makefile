# k3scert — see README.md. Two commands matter:
#   make demo   the main job: build the lab and replay the reference verification
#   make test   every test (the lab tests need `make lab-bin` first; .ci/run does both)
GO        ?= go
LAB_BIN   ?= $(CURDIR)/bin
export K3SCERT_LAB_BIN ?= $(LAB_BIN)

.PHONY: all build test test-short lab-bin demo bench fuzz vet fmt clean

all: build

build:
	$(GO) build -o bin/k3scert ./cmd/k3scert

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
	bin/k3scert lab run all
	bin/k3scert lab run scenario1 --profile v1.18 --remedy rotate

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/ ./internal/...

fuzz:
	@for t in $$(grep -rl 'func Fuzz' --include='*_test.go' internal | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho 'func Fuzz[A-Za-z0-9_]*' $$t/*_test.go | cut -d' ' -f2); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s ./$$t || exit 1; done; done

clean:
	rm -rf bin/k3scert
