# Tools the operator needs, built from the Go module proxy (the only network CI has) and cached in
# bin/. Each tool is pinned by its own module under hack/tools/; a tool is rebuilt only when that
# module's go.mod or go.sum changes. Included by the root Makefile; also usable on its own:
#   make -f hack/tools.mk test-operator

TOOLS_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
TOOLS_BIN ?= $(TOOLS_ROOT)/bin

# Kept equal to the k8s.io/kubernetes version in hack/tools/kube/go.mod.
ENVTEST_K8S_VERSION ?= 1.37.2
ENVTEST_ASSETS := $(TOOLS_BIN)/k8s/$(ENVTEST_K8S_VERSION)
CONTROLLER_GEN := $(TOOLS_BIN)/controller-gen
HELM := $(TOOLS_BIN)/helm
STATICCHECK := $(TOOLS_BIN)/staticcheck
# CRDs of third-party APIs that the operator (HTTPRoute) and the chart (HTTPRoute, ServiceMonitor)
# can create, loaded into envtest by the tests.
CHART_TEST_CRDS := $(TOOLS_BIN)/chart-test-crds
# An OpenTelemetry Collector (one go.opentelemetry.io/collector release, see hack/tools/otelcol) for
# the tests that forward spans through a real Collector.
OTELCOL := $(TOOLS_BIN)/otelcol
THIRDPARTY := $(TOOLS_ROOT)/hack/chart/thirdparty

# GOWORK=off keeps a developer's go.work from changing which versions the tool modules resolve.
TOOLS_GO := GOWORK=off GOFLAGS=-mod=readonly go
TOOLS_BUILD = build -trimpath -ldflags='-s -w $(TOOLS_LDFLAGS)'

.PHONY: envtest-assets controller-gen helm staticcheck otelcol chart-test-crds manifests generate test-operator bench-operator

# Without these the binaries report v0.0.0-master to clients asking /version.
$(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/kubectl: TOOLS_LDFLAGS = \
	-X k8s.io/component-base/version.gitVersion=v$(ENVTEST_K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(ENVTEST_K8S_VERSION))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(ENVTEST_K8S_VERSION)))

## envtest-assets: kube-apiserver, etcd and kubectl for envtest in bin/k8s/<version> (cold: minutes)
envtest-assets: $(ENVTEST_ASSETS)/kube-apiserver $(ENVTEST_ASSETS)/kubectl $(ENVTEST_ASSETS)/etcd

$(ENVTEST_ASSETS)/kube-apiserver: $(TOOLS_ROOT)/hack/tools/kube/go.mod $(TOOLS_ROOT)/hack/tools/kube/go.sum
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/kube $(TOOLS_BUILD) -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(ENVTEST_ASSETS)/kubectl: $(TOOLS_ROOT)/hack/tools/kube/go.mod $(TOOLS_ROOT)/hack/tools/kube/go.sum
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/kube $(TOOLS_BUILD) -o $@ k8s.io/kubernetes/cmd/kubectl

$(ENVTEST_ASSETS)/etcd: $(wildcard $(TOOLS_ROOT)/hack/tools/etcd/*)
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/etcd $(TOOLS_BUILD) -o $@ .

## controller-gen: controller-gen in bin/
controller-gen: $(CONTROLLER_GEN)

$(CONTROLLER_GEN): $(TOOLS_ROOT)/hack/tools/controller-gen/go.mod $(TOOLS_ROOT)/hack/tools/controller-gen/go.sum
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/controller-gen $(TOOLS_BUILD) -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

## helm: helm in bin/
helm: $(HELM)

# Without it helm reports v3.22 (its source default) rather than the release it was built from.
$(HELM): TOOLS_LDFLAGS = -X helm.sh/helm/v3/internal/version.version=v3.22.0
$(HELM): $(TOOLS_ROOT)/hack/tools/helm/go.mod $(TOOLS_ROOT)/hack/tools/helm/go.sum
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/helm $(TOOLS_BUILD) -o $@ helm.sh/helm/v3/cmd/helm

## staticcheck: staticcheck in bin/ (make lint runs it)
staticcheck: $(STATICCHECK)

$(STATICCHECK): $(TOOLS_ROOT)/hack/tools/staticcheck/go.mod $(TOOLS_ROOT)/hack/tools/staticcheck/go.sum
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/staticcheck $(TOOLS_BUILD) -o $@ honnef.co/go/tools/cmd/staticcheck

## otelcol: the OpenTelemetry Collector of hack/tools/otelcol in bin/ (OTLP receiver, otlp_grpc and otlp_http exporters)
otelcol: $(OTELCOL)

$(OTELCOL): $(wildcard $(TOOLS_ROOT)/hack/tools/otelcol/*)
	$(TOOLS_GO) -C $(TOOLS_ROOT)/hack/tools/otelcol $(TOOLS_BUILD) -o $@ .

## chart-test-crds: the Gateway API's HTTPRoute and the Prometheus Operator's ServiceMonitor CRDs in
## bin/chart-test-crds, at the versions hack/chart/thirdparty pins
chart-test-crds: $(CHART_TEST_CRDS)/.stamp

$(CHART_TEST_CRDS)/.stamp: $(THIRDPARTY)/go.mod $(THIRDPARTY)/go.sum | $(CONTROLLER_GEN)
	rm -rf $(CHART_TEST_CRDS) && mkdir -p $(CHART_TEST_CRDS)
	cd $(THIRDPARTY) && $(TOOLS_GO) mod download
	cp "$$(cd $(THIRDPARTY) && $(TOOLS_GO) list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" $(CHART_TEST_CRDS)/
	cd $(THIRDPARTY) && GOWORK=off GOFLAGS=-mod=readonly $(CONTROLLER_GEN) crd \
		paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:artifacts:config=$(CHART_TEST_CRDS)/monitoring
	mv $(CHART_TEST_CRDS)/monitoring/monitoring.coreos.com_servicemonitors.yaml $(CHART_TEST_CRDS)/ && rm -rf $(CHART_TEST_CRDS)/monitoring
	touch $@

## manifests: regenerate the CRDs (config/crd/bases) and RBAC (config/rbac) from the markers
manifests: $(CONTROLLER_GEN)
	cd $(TOOLS_ROOT) && $(CONTROLLER_GEN) rbac:roleName=tracekit-manager crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

## generate: regenerate the deepcopy code in api/
generate: $(CONTROLLER_GEN)
	cd $(TOOLS_ROOT) && $(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

## test-operator: API and controller tests (envtest, PostgreSQL, in-process Dex) and the operator end-to-end test
test-operator: envtest-assets controller-gen chart-test-crds
	cd $(TOOLS_ROOT) && KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) CONTROLLER_GEN=$(CONTROLLER_GEN) go test -count=1 ./api/... ./controllers/... ./test/e2e/...

## bench-operator: 200 tenants applied at once on envtest: time to Ready, writes on resync (docs/benchmarks.md)
bench-operator: envtest-assets chart-test-crds
	cd $(TOOLS_ROOT) && KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test -count=1 -run '^$$' -bench BenchmarkTenants200 ./controllers/
