# The two commands: `make run` and `make test`. See README.md.
GO      ?= go
BIN     := bin
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

.PHONY: run test check build deps bench bench-go clean proto filters filters-test

build:
	$(GO) build -o $(BIN)/sluice ./cmd/sluice

# Start the gateway with the standalone example: two echo backends on
# loopback, the manifests in examples/standalone/manifests, no cluster.
run: build
	$(GO) build -o $(BIN)/echo ./examples/standalone/echo
	./examples/standalone/run.sh

# Install what the tests need (when missing), check the tree, run every test.
test: deps check filters-test
	$(GO) test $(GOFLAGS_TEST) ./...
	cd sdk && $(GO) test $(GOFLAGS_TEST) ./...

deps:
	./scripts/deps.sh

# gofmt, go vet, go mod tidy: fails on any diff.
check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	cd sdk && $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm $(GO) vet ./...

# Vet and test the built-in filters (filters/NAME, Go + SDK) and rebuild
# their one module (filters/builtins) into filters/wasm/builtins.wasm, which
# the gateway binary embeds. The modules are
# committed, so a plain `go build` needs no wasm toolchain step;
# filters.TestModulesUpToDate fails when one is stale.
FILTERS := $(patsubst filters/%/go.mod,%,$(wildcard filters/*/go.mod))
filters:
	@for f in $(FILTERS); do \
		echo "filters: $$f"; \
		(cd filters/$$f && GOWORK=off $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test ./...) || exit 1; \
	done
	cd filters/builtins && GOOS=wasip1 GOARCH=wasm GOWORK=off $(GO) build -buildmode=c-shared -trimpath -o ../wasm/builtins.wasm .

# The built-ins' own modules, natively (vet for both targets, tests), without
# rebuilding the committed .wasm: fast and offline.
filters-test:
	@for f in $(FILTERS); do \
		(cd filters/$$f && GOWORK=off $(GO) vet ./... && GOOS=wasip1 GOARCH=wasm GOWORK=off $(GO) vet ./... && GOWORK=off $(GO) test $(GOFLAGS_TEST) ./...) || exit 1; \
	done

# Every Go microbenchmark; the previous run's results are kept as
# bin/bench-old.txt and compared with benchstat (installed into bin/).
BENCHSTAT := golang.org/x/perf/cmd/benchstat@latest
# A failed run keeps the previous results (its output: bin/bench-run.txt).
bench-go: $(BIN)/benchstat
	@echo "bench-go: running every benchmark, 6 times (output in $(BIN)/bench-run.txt)"
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./core/... ./wasm/... ./filters/ > $(BIN)/bench-run.txt || { cat $(BIN)/bench-run.txt; exit 1; }
	@if [ -f $(BIN)/bench-new.txt ]; then mv $(BIN)/bench-new.txt $(BIN)/bench-old.txt; fi
	@mv $(BIN)/bench-run.txt $(BIN)/bench-new.txt
	@if [ -f $(BIN)/bench-old.txt ]; then $(BIN)/benchstat $(BIN)/bench-old.txt $(BIN)/bench-new.txt; else $(BIN)/benchstat $(BIN)/bench-new.txt; echo "bench-go: first run, nothing to compare with yet"; fi

$(BIN)/benchstat:
	GOBIN=$(abspath $(BIN)) GOFLAGS= $(GO) install $(BENCHSTAT)

# Sluice against nginx, HAProxy and Caddy with wrk (issue 11): installs
# what is missing, writes bench/results/<date>/ and BENCHMARKS.bench.md.
# A quick run: make bench BENCHFLAGS="-rounds 1 -duration 2s"
bench:
	./bench/run.sh $(BENCHFLAGS)

# Regenerate the native plugin gRPC code (plugins/internal/pb) from its
# .proto. Needs protoc (Debian: protobuf-compiler); the Go generators are
# pinned and installed into bin/.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
proto:
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(abspath $(BIN)) GOFLAGS= $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(abspath $(BIN)) GOFLAGS= $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(abspath $(BIN)):$$PATH" protoc --proto_path=plugins/internal/pb \
		--go_out=paths=source_relative:plugins/internal/pb \
		--go-grpc_out=paths=source_relative:plugins/internal/pb \
		plugins/internal/pb/filter.proto

clean:
	rm -rf $(BIN)
