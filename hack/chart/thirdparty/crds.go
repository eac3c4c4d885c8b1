// Package thirdparty pins the modules whose CRDs the chart's optional objects need in the test
// cluster: the Gateway API (HTTPRoute) and the Prometheus Operator (ServiceMonitor). `make
// chart-test-crds` copies or generates them into bin/; nothing imports this package.
package thirdparty

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
