# Two commands do all the set-up on a fresh machine:
#   make run    build tracekit and run it on the embedded default (SQLite, demo data, API key printed)
#   make test   build the test tools into bin/ and run every test (PostgreSQL on 127.0.0.1:5432 required)

GO ?= go
BIN := $(CURDIR)/bin

include hack/tools.mk

.PHONY: run build test lint bench-ingest clean help

## run: start tracekit on SQLite with demo data (tracekit dev); state in ./.tracekit
run: build
	$(BIN)/tracekit dev $(ARGS)

## build: build bin/tracekit
build:
	$(GO) build -o $(BIN)/tracekit ./cmd/tracekit

## test: every test, against the real PostgreSQL and a real kube-apiserver (envtest)
test: envtest-assets lint
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -count=1 ./...

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench-ingest: durable OTLP ingest throughput and RSS against PostgreSQL (see docs/benchmarks.md)
bench-ingest: build
	$(GO) run ./hack/ingestbench -tracekit $(BIN)/tracekit $(ARGS)

clean:
	rm -rf $(BIN)

help:
	@grep -h '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'
