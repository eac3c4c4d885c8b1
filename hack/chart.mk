# The Helm chart (charts/tracekit) and the image it deploys. Included by the root Makefile after
# hack/tools.mk; also usable on its own: make -f hack/chart.mk chart-test

ifndef TOOLS_ROOT
include $(dir $(lastword $(MAKEFILE_LIST)))tools.mk
endif

CHART_DIR := $(TOOLS_ROOT)/charts/tracekit
CHART_APP_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' $(CHART_DIR)/Chart.yaml)
# The image the chart deploys by default: its repository at the chart's appVersion.
IMG ?= ghcr.io/tracekit/tracekit:$(CHART_APP_VERSION)
CONTAINER_TOOL ?= docker

.PHONY: docker-build docker-push chart-crds chart-rbac chart-lint chart-test chart-test-deps chart-golden chart-package

## docker-build: build the tracekit image as $(IMG) (default: the chart's appVersion tag)
docker-build:
	$(CONTAINER_TOOL) build -t $(IMG) $(TOOLS_ROOT)

## docker-push: push $(IMG)
docker-push:
	$(CONTAINER_TOOL) push $(IMG)

## chart-crds: copy the generated CRDs into the chart (never edit charts/tracekit/crds by hand)
chart-crds: manifests
	rm -f $(CHART_DIR)/crds/*.yaml
	cp $(TOOLS_ROOT)/config/crd/bases/*.yaml $(CHART_DIR)/crds/

## chart-rbac: copy the generated operator ClusterRole (config/rbac/role.yaml) into the chart
chart-rbac: manifests
	cp $(TOOLS_ROOT)/config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml

## chart-lint: helm lint --strict with the test values
chart-lint: $(HELM)
	@for f in $(CHART_DIR)/testdata/values/*.yaml; do \
		$(HELM) lint --strict --kube-version $(ENVTEST_K8S_VERSION) -f $$f $(CHART_DIR) || exit 1; done

chart-test-deps: envtest-assets $(HELM) $(CONTROLLER_GEN) chart-test-crds

## chart-test: lint, golden files, schema, and install/upgrade/uninstall into envtest with the operator
chart-test: chart-test-deps
	cd $(TOOLS_ROOT) && KUBEBUILDER_ASSETS=$(ENVTEST_ASSETS) go test -count=1 ./charts/...

## chart-golden: regenerate the chart's golden files after an intended change (review the diff)
chart-golden: $(HELM)
	cd $(TOOLS_ROOT) && go test -count=1 -run 'TestTemplate' ./charts/... -update

## chart-package: the chart as a .tgz in bin/
chart-package: $(HELM)
	$(HELM) package $(CHART_DIR) -d $(TOOLS_BIN)
