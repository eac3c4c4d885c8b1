# Two commands do all the set-up on a fresh machine:
#   make run    build tracekit and run it on the embedded default (SQLite, demo data, API key printed)
#   make test   build the test tools into bin/ and run every test (PostgreSQL on 127.0.0.1:5432 required)

GO ?= go
BIN := $(CURDIR)/bin

include hack/tools.mk
include hack/chart.mk

.PHONY: run build test test-deps lint bench-ingest smoke-mcp clean help

## run: start tracekit on SQLite with demo data (tracekit dev); state in ./.tracekit
run: build
	$(BIN)/tracekit dev $(ARGS)

## build: build bin/tracekit
build:
	$(GO) build -o $(BIN)/tracekit ./cmd/tracekit

## test: every test, against the real PostgreSQL, a real kube-apiserver (envtest), helm, Dex, Chromium
## and an OpenTelemetry Collector
test: chart-test-deps test-deps otelcol lint
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -count=1 ./...

TSCLIENT := server/oauth/testdata/tsclient

## test-deps: what the sign-in tests drive: Debian's chromium (apt-get, needs root or sudo) and the
## TypeScript MCP SDK (npm ci into the git-ignored node_modules of $(TSCLIENT))
test-deps: $(TSCLIENT)/node_modules/.package-lock.json
	@command -v chromium >/dev/null 2>&1 || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

$(TSCLIENT)/node_modules/.package-lock.json: $(TSCLIENT)/package.json $(TSCLIENT)/package-lock.json
	npm ci --prefix $(TSCLIENT) --no-audit --no-fund

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## bench-ingest: durable OTLP ingest throughput and RSS against PostgreSQL (see docs/benchmarks.md);
##   ARGS="-protocol grpc" for OTLP/gRPC, ARGS="-protocol both" for the two side by side
bench-ingest: build
	$(GO) run ./hack/ingestbench -tracekit $(BIN)/tracekit $(ARGS)

## smoke-mcp: a first session with the TypeScript MCP SDK against a running server:
##   make smoke-mcp MCP_URL=http://127.0.0.1:8080/mcp API_KEY=tk_…   (the two lines make run prints)
smoke-mcp: hack/mcpsmoke/node_modules/.package-lock.json
	node hack/mcpsmoke/smoke.mjs $(MCP_URL) $(API_KEY)

hack/mcpsmoke/node_modules/.package-lock.json: hack/mcpsmoke/package.json hack/mcpsmoke/package-lock.json
	npm ci --prefix hack/mcpsmoke --no-audit --no-fund

clean:
	rm -rf $(BIN)

help:
	@grep -h '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'
