# Two commands do all the set-up on a fresh machine:
#   make run    build tracekit and run it on the embedded default (SQLite, demo data, API key printed)
#   make test   build the test tools into bin/ and run every test (PostgreSQL on 127.0.0.1:5432 required)

GO ?= go
BIN := $(CURDIR)/bin
# A failing command in a pipe fails the recipe, as does any failing line.
SHELL := bash
.SHELLFLAGS := -o pipefail -ec

include hack/tools.mk
include hack/chart.mk

.PHONY: run build test test-deps lint fuzz bench-ingest smoke-mcp clean help

## run: start tracekit on SQLite with demo data (tracekit dev); state in ./.tracekit
run: build
	$(BIN)/tracekit dev $(ARGS)

## build: build bin/tracekit
build:
	$(GO) build -o $(BIN)/tracekit ./cmd/tracekit

# Modules of their own, which the root's ./... does not enter: the Go agent SDK (applications
# import it without the server) and the example application.
MODULES := sdk/go examples/shop

## test: every test, against the real PostgreSQL, a real kube-apiserver (envtest), helm, Dex, Chromium
## and an OpenTelemetry Collector, then each fuzz target for FUZZTIME
test: chart-test-deps test-deps otelcol lint
	KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) $(GO) test -count=1 ./...
	for m in $(MODULES); do (cd $$m && $(GO) test -count=1 ./...) || exit 1; done
	$(MAKE) fuzz

# Fuzz targets as package:target; go test fuzzes one target per run. Their seed corpora
# (testdata/fuzz) also run with every plain go test.
FUZZ_TARGETS := server/mcpserver:FuzzWindow server/mcpserver:FuzzCursor server/mcpserver:FuzzDecodeArgs server/mcpserver:FuzzAnomalyRef \
	server/ingest:FuzzDecodeProto server/ingest:FuzzDecodeJSON
FUZZTIME ?= 10s

## fuzz: run each fuzz target for FUZZTIME (default 10s): make fuzz FUZZTIME=5m for a longer hunt
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} ($${t%%:*}, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*}; \
	done

TSCLIENT := server/oauth/testdata/tsclient
CONFORMANCE := hack/conformance
EXTAPPS := server/mcpserver/ui/testdata/extapps

## test-deps: what the sign-in and view tests drive: Debian's chromium, and OpenLDAP's slapd with
## ldap-utils for the company sign-in tests (apt-get, needs root or sudo),
## the TypeScript MCP SDK and the MCP Apps reference package (npm ci into git-ignored node_modules);
## the official MCP conformance suite with the Node 22 it needs, from npm, into $(CONFORMANCE) (the
## machine's node stays)
test-deps: $(TSCLIENT)/node_modules/.package-lock.json $(EXTAPPS)/node_modules/.package-lock.json $(CONFORMANCE)/node_modules/.package-lock.json
	@command -v chromium >/dev/null 2>&1 || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
	@{ command -v slapd || [ -x /usr/sbin/slapd ]; } >/dev/null 2>&1 && command -v ldapmodify >/dev/null 2>&1 || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils; }

$(TSCLIENT)/node_modules/.package-lock.json: $(TSCLIENT)/package.json $(TSCLIENT)/package-lock.json
	npm ci --prefix $(TSCLIENT) --no-audit --no-fund

$(EXTAPPS)/node_modules/.package-lock.json: $(EXTAPPS)/package.json $(EXTAPPS)/package-lock.json
	npm ci --prefix $(EXTAPPS) --no-audit --no-fund

$(CONFORMANCE)/node_modules/.package-lock.json: $(CONFORMANCE)/package.json $(CONFORMANCE)/package-lock.json
	npm ci --prefix $(CONFORMANCE) --no-audit --no-fund

## lint: gofmt, go vet and staticcheck must be clean (every module)
lint: $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	for m in $(MODULES); do (cd $$m && $(GO) vet ./... && $(STATICCHECK) ./...) || exit 1; done

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
