// Package v1alpha1 holds the TraceKitTenant API: one tenant of the platform, with its own MCP server,
// database role and OAuth client.
// +kubebuilder:object:generate=true
// +groupName=tracekit.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "tracekit.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
