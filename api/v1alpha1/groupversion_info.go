// Package v1alpha1 holds the TraceKit API: TraceKitTenant, one tenant of the platform with its own MCP
// server, database role and OAuth client; and TraceKitDatabase, a PostgreSQL server tenants are placed on.
// +kubebuilder:object:generate=true
// +groupName=tracekit.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of the objects in this package.
	GroupVersion = schema.GroupVersion{Group: "tracekit.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &TraceKitTenant{}, &TraceKitTenantList{}, &TraceKitDatabase{}, &TraceKitDatabaseList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
