package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TraceKitDatabase is one PostgreSQL database server that tenants can be placed on. A tenant that
// names no database (neither spec.database.name nor spec.database.adminSecretRef) is placed on the
// Ready database with room that holds the fewest tenants, and stays there: the placement is recorded
// in the tenant's annotation tracekit.dev/database and status.database.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tkdb,categories=tracekit
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Tenants",type=integer,JSONPath=`.status.tenants`
// +kubebuilder:printcolumn:name="Max",type=integer,JSONPath=`.spec.maxTenants`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TraceKitDatabase struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the database server and how many tenants it may take.
	// +required
	Spec TraceKitDatabaseSpec `json:"spec"`

	// status is what the operator found: whether the database answers and is migrated, and how many
	// tenants it holds.
	// +optional
	Status TraceKitDatabaseStatus `json:"status,omitempty"`
}

// TraceKitDatabaseSpec is a PostgreSQL database and its placement limits.
type TraceKitDatabaseSpec struct {
	// adminSecretRef is a Secret holding the database's admin postgres:// URL, with the right to
	// create roles. The operator migrates the schema, and creates each tenant placed here and its login
	// role confined to its rows by row-level security.
	// +required
	AdminSecretRef NamespacedSecretKeyRef `json:"adminSecretRef"`

	// maxTenants is the most tenants placed here automatically; unset means no limit. Tenants that
	// name this database in spec.database.name are placed even beyond it. Lowering it below the
	// current count moves nobody: it only stops new placements.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxTenants *int32 `json:"maxTenants,omitempty"`
}

// NamespacedSecretKeyRef names one key of a Secret in a given namespace.
type NamespacedSecretKeyRef struct {
	// namespace of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Namespace string `json:"namespace"`

	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key in the Secret's data.
	// +kubebuilder:default=url
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// TraceKitDatabaseStatus is what the operator observed of a database.
type TraceKitDatabaseStatus struct {
	// observedGeneration is the spec generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (the database answers and its schema is migrated; new tenants are placed only
	// on Ready databases), with a reason and a message saying what is wrong and what to do.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// tenants is the number of TraceKitTenants placed on this database.
	// +optional
	Tenants int32 `json:"tenants"`
}

// TraceKitDatabaseList is a list of TraceKitDatabases.
// +kubebuilder:object:root=true
type TraceKitDatabaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TraceKitDatabase `json:"items"`
}
