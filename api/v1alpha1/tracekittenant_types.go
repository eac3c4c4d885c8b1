package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TraceKitTenant is one team on the platform: the operator gives it a database role, an OAuth client
// in Dex and its own MCP server reachable at a per-team URL.
// The name is the tenant's id in the shared database and in Dex, so it must be unique in the cluster.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=tkt,categories=tracekit
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.mcpURL`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Database",type=string,JSONPath=`.status.database`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([a-z0-9-]{0,48}[a-z0-9])?$')",message="metadata.name is the tenant id: use 1-50 lowercase letters, digits or '-', starting and ending with a letter or digit"
type TraceKitTenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the team should have.
	// +required
	Spec TraceKitTenantSpec `json:"spec"`

	// status is what the operator has done about it.
	// +optional
	Status TraceKitTenantStatus `json:"status,omitempty"`
}

// TraceKitTenantSpec is the desired state of a tenant.
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.claims)",message="resources.claims is not supported: the MCP server uses no dynamic resources; set only requests and limits"
// +kubebuilder:validation:XValidation:rule="!has(self.llmPriceOverrides) || self.llmPriceOverrides.all(m, size(m) <= 128 && m.matches('^[A-Za-z0-9][A-Za-z0-9._:/-]*$'))",message="llmPriceOverrides: model names are 1-128 characters of letters, digits, '.', '_', ':', '/' or '-' (e.g. gpt-4o or claude-sonnet-4)"
type TraceKitTenantSpec struct {
	// displayName is the team's name as people read it; the MCP server shows it to assistants.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +required
	DisplayName string `json:"displayName"`

	// url is where the team reaches its MCP server (the MCP endpoint is <url>/mcp). Leave it empty to
	// use the operator's URL template (flag --tenant-url of `tracekit manager`).
	// +optional
	URL TenantURL `json:"url,omitempty"`

	// replicas is the number of MCP server pods. With more than one, a PodDisruptionBudget keeps at
	// least one running during node drains.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the MCP server container. Defaults to requests of 100m CPU and 128Mi memory and a
	// limit of 512Mi memory.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// image overrides the MCP server image (flag --server-image of `tracekit manager`), for example to
	// pin a digest or try a release on one team first.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// database says where the tenant's data lives; empty places it on a TraceKitDatabase.
	// +optional
	Database TenantDatabase `json:"database,omitempty"`

	// apiKeys imports API keys from a Secret, so a team's first key exists without running
	// `tracekit apikey create`.
	// +optional
	APIKeys *APIKeyBootstrap `json:"apiKeys,omitempty"`

	// alertRules are thresholds on the team's service metrics; the MCP server evaluates them and
	// assistants can list the alerts they raise.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=100
	// +optional
	AlertRules []AlertRule `json:"alertRules,omitempty"`

	// retention is how long spans are kept, as a duration in hours, minutes or seconds (e.g. 720h for
	// 30 days). Between 1h and 8760h (one year).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(h|m|s))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('8760h')",message="retention must be between 1h and 8760h (one year), e.g. 720h for 30 days"
	// +kubebuilder:default="720h"
	// +optional
	Retention *metav1.Duration `json:"retention,omitempty"`

	// llmPriceOverrides sets the price of LLM models, keyed by model name, in place of (or in addition
	// to) the built-in price table; the cost of LLM calls is computed with it at ingest.
	// +kubebuilder:validation:MaxProperties=200
	// +optional
	LLMPriceOverrides map[string]LLMPrice `json:"llmPriceOverrides,omitempty"`

	// attributeIndex adds span and resource attribute keys to those that search_traces finds by value
	// without reading every request of the window (docs/data-model.md lists the default keys), and
	// limits the distinct values indexed per key and day of data.
	// +optional
	AttributeIndex *AttributeIndex `json:"attributeIndex,omitempty"`

	// suspend takes the team's MCP server offline (zero pods) without deleting anything: data, the
	// database role, the OAuth client and API keys stay. Set it back to false to resume.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// access lets people sign in to the tenant with the platform's company identity providers
	// (OIDC, LDAP; configured once for the platform, see docs/auth.md): each rule admits the members
	// of some groups, or some people, with the tool groups they may grant an assistant. Someone no
	// rule admits is refused at sign-in, and loses access at the next token refresh once removed from
	// the groups. Empty admits nobody through company sign-in; API keys work either way.
	// +kubebuilder:validation:MaxItems=50
	// +optional
	Access []AccessRule `json:"access,omitempty"`
}

// AccessRule admits identity-provider groups or people to a tenant with some tool groups.
// +kubebuilder:validation:XValidation:rule="has(self.groups) || has(self.users)",message="an access rule admits groups or users: list at least one of them"
type AccessRule struct {
	// groups are group names exactly as the identity provider reports them (LDAP: the group's name
	// attribute, e.g. cn; OIDC: the groups claim, e.g. platform-team).
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	Groups []string `json:"groups,omitempty"`

	// users are people admitted by e-mail address or user name, whatever their groups.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	Users []string `json:"users,omitempty"`

	// toolGroups are the MCP tool groups these people may grant: traces, metrics, llm, and debugging
	// (live-debugging snapshots, which may hold personal or secret data).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Enum=traces;metrics;llm;debugging
	// +listType=set
	// +required
	ToolGroups []string `json:"toolGroups"`
}

// AttributeIndex tunes the attribute index of a tenant's spans.
type AttributeIndex struct {
	// additionalKeys are indexed besides the default keys (user.id, http.route, k8s.pod.name, …),
	// e.g. app.order_id: keys of entities the team asks about by value. Each key costs index rows on
	// every trace that carries it; values longer than 256 bytes are not indexed.
	// +kubebuilder:validation:MaxItems=48
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[^",\\]+$`
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k == 'tracekit.linked_trace')",message="additionalKeys: tracekit.linked_trace is reserved: TraceKit indexes the traces a span links to under it; remove it from the list"
	// +listType=set
	// +optional
	AdditionalKeys []string `json:"additionalKeys,omitempty"`

	// maxValuesPerDay is how many distinct values of one key are indexed per day of data; past it the
	// key's later values that day are found by reading the spans (slower, still correct). It keeps
	// keys like request ids from flooding the index. Default 100000.
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=10000000
	// +optional
	MaxValuesPerDay *int32 `json:"maxValuesPerDay,omitempty"`
}

// TenantURL is the external address of a tenant's MCP server. Host-based (acme.tracekit.example.com)
// and path-based (tracekit.example.com/t/acme) URLs both work with MCP discovery. The operator routes
// it with an Ingress, or with a Gateway API HTTPRoute when gatewayRef (or the operator's default
// Gateway) applies.
// +kubebuilder:validation:XValidation:rule="!has(self.gatewayRef) || !has(self.tlsSecretName) || size(self.tlsSecretName) == 0",message="gatewayRef and tlsSecretName exclude each other: with a Gateway, TLS is terminated by its listener; put the certificate in the listener's tls.certificateRefs and remove tlsSecretName"
// +kubebuilder:validation:XValidation:rule="!has(self.gatewayRef) || !has(self.ingressClassName) || size(self.ingressClassName) == 0",message="gatewayRef and ingressClassName exclude each other: gatewayRef makes an HTTPRoute instead of an Ingress; remove one of them"
type TenantURL struct {
	// host is the DNS name the team connects to, e.g. acme.tracekit.example.com. Empty means the host
	// of the operator's URL template.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`
	// +optional
	Host string `json:"host,omitempty"`

	// pathPrefix serves the tenant under a path of the host, e.g. /t/acme; the Ingress or HTTPRoute
	// routes that prefix, unchanged, to the tenant's server. Empty means the path of the operator's
	// URL template when host is empty too, and the root of host otherwise.
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:Pattern=`^(/[A-Za-z0-9._~-]+)+$`
	// +optional
	PathPrefix string `json:"pathPrefix,omitempty"`

	// tlsSecretName is a kubernetes.io/tls Secret in this namespace with the certificate for the
	// host; setting it serves the tenant over HTTPS from an Ingress (even when the operator has a
	// default Gateway). Not with gatewayRef: a Gateway's listener holds its certificates.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// ingressClassName picks the Ingress controller; empty uses the cluster's default class. Setting
	// it asks for an Ingress even when the operator has a default Gateway. Not with gatewayRef.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	IngressClassName string `json:"ingressClassName,omitempty"`

	// gatewayRef attaches the tenant to a Gateway of the Gateway API: the operator makes an
	// HTTPRoute (gateway.networking.k8s.io/v1) named like the tenant's Service instead of an
	// Ingress, and deletes the Ingress. Empty means the operator's default Gateway (flag --gateway
	// of `tracekit manager`) when it has one and neither ingressClassName nor tlsSecretName is set,
	// and an Ingress otherwise. The cluster needs the Gateway API's CRDs.
	// +optional
	GatewayRef *GatewayRef `json:"gatewayRef,omitempty"`
}

// GatewayRef names the Gateway (and optionally one of its listeners) an HTTPRoute attaches to.
type GatewayRef struct {
	// name of the Gateway.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	Name string `json:"name"`

	// namespace of the Gateway; empty means the tenant's namespace. A Gateway in another namespace
	// must admit routes from this one (its listeners' allowedRoutes.namespaces).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// sectionName attaches to one listener of the Gateway, by its name (e.g. https); empty attaches
	// to every listener that admits the route.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	SectionName string `json:"sectionName,omitempty"`
}

// TenantDatabase says where the tenant's data lives: on a TraceKitDatabase the operator picks (the
// default, when both fields are empty), on the TraceKitDatabase named by name, or, as before
// TraceKitDatabases existed, on the database of an admin Secret in this namespace. Once placed on a
// TraceKitDatabase a tenant stays there: moving it would leave its data behind.
// +kubebuilder:validation:XValidation:rule="!has(self.name) || !has(self.adminSecretRef)",message="spec.database: set name (a TraceKitDatabase) or adminSecretRef (a Secret in this namespace), not both"
type TenantDatabase struct {
	// name pins the tenant to this TraceKitDatabase (kubectl get tkdb), even beyond its maxTenants.
	// Empty lets the operator place it on the Ready database with room that holds the fewest
	// tenants. It cannot be changed to another database once the tenant is placed.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Name string `json:"name,omitempty"`

	// adminSecretRef is a Secret in this namespace holding a postgres:// URL with the right to create
	// roles, either of the shared platform database or of a database of the team's own. The operator
	// migrates the schema, creates the tenant and a login role confined to the tenant's rows by
	// row-level security, and gives the MCP server only that role's URL. Without it, the tenant is
	// placed on a TraceKitDatabase.
	// +optional
	AdminSecretRef *SecretKeyRef `json:"adminSecretRef,omitempty"`
}

// SecretKeyRef names one key of a Secret in the tenant's namespace.
type SecretKeyRef struct {
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

// APIKeyBootstrap names a Secret of API keys to import into the tenant.
type APIKeyBootstrap struct {
	// secretName is a Secret in this namespace: each data key is the API key's name, each value a key
	// starting with tk_ (from `tracekit apikey create`, or tk_ followed by 32+ random characters).
	// Keys added later are imported too; removing one from the Secret does not revoke it (use
	// `tracekit apikey revoke`).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	SecretName string `json:"secretName"`

	// scopes granted to the imported keys: read (MCP tools), ingest (OTLP), write (breakpoints).
	// +kubebuilder:default={read,ingest}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:Enum=read;ingest;write
	// +listType=set
	// +optional
	Scopes []string `json:"scopes,omitempty"`
}

// AlertMetric is a service metric an alert rule can watch.
// +kubebuilder:validation:Enum=error_rate;latency_p50;latency_p95;latency_p99;throughput;llm_cost;llm_tokens
type AlertMetric string

// Metrics an alert rule can watch.
const (
	MetricErrorRate  AlertMetric = "error_rate"
	MetricLatencyP50 AlertMetric = "latency_p50"
	MetricLatencyP95 AlertMetric = "latency_p95"
	MetricLatencyP99 AlertMetric = "latency_p99"
	MetricThroughput AlertMetric = "throughput"
	MetricLLMCost    AlertMetric = "llm_cost"
	MetricLLMTokens  AlertMetric = "llm_tokens"
)

// AlertRule raises an alert when a service's metric crosses a threshold over a window.
// +kubebuilder:validation:XValidation:rule="self.metric != 'error_rate' || double(self.threshold) <= 1.0",message="error_rate is a fraction: use a threshold between 0 and 1 (0.05 means 5%)"
type AlertRule struct {
	// name identifies the rule in alerts and in the MCP tools; unique within the tenant.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// service is the OpenTelemetry service.name the rule watches.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Service string `json:"service"`

	// metric is what is measured: error_rate (fraction of failed requests), latency_p50/p95/p99
	// (milliseconds), throughput (requests per second), llm_cost (USD) or llm_tokens (tokens) over
	// the window.
	// +required
	Metric AlertMetric `json:"metric"`

	// comparison fires the alert when the metric is greater than (gt) or less than (lt) the threshold.
	// +kubebuilder:validation:Enum=gt;lt
	// +required
	Comparison string `json:"comparison"`

	// threshold in the metric's unit, as a decimal number, e.g. "0.05" or "250".
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +required
	Threshold string `json:"threshold"`

	// window is the period the metric is computed over, between 1m and 24h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(h|m|s))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="window must be between 1m and 24h, e.g. 5m"
	// +kubebuilder:default="5m"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`

	// severity of the alerts the rule raises.
	// +kubebuilder:validation:Enum=info;warning;critical
	// +kubebuilder:default=warning
	// +optional
	Severity string `json:"severity,omitempty"`
}

// LLMPrice is the price of one model in USD per million tokens, each a decimal number like "2.50".
type LLMPrice struct {
	// input is USD per million input (prompt) tokens.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +required
	Input string `json:"input"`

	// output is USD per million output (completion) tokens.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +required
	Output string `json:"output"`

	// cachedInput is USD per million input tokens served from the provider's prompt cache; defaults
	// to the input price.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	CachedInput string `json:"cachedInput,omitempty"`
}

// Condition types of a TraceKitTenant.
const (
	// ConditionReady is true when the team can use its MCP URL: every other condition is true.
	ConditionReady = "Ready"
	// ConditionDatabaseReady is true when the tenant and its database role are provisioned.
	ConditionDatabaseReady = "DatabaseReady"
	// ConditionAuthClientReady is true when the tenant's OAuth client exists in Dex.
	ConditionAuthClientReady = "AuthClientReady"
	// ConditionAvailable is true when at least one MCP server pod is available.
	ConditionAvailable = "Available"
)

// TraceKitTenantStatus is what the operator observed and did.
type TraceKitTenantStatus struct {
	// observedGeneration is the spec generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, DatabaseReady, AuthClientReady and Available, each with a reason and a
	// message saying what is wrong and what to do.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// mcpURL is the MCP endpoint to give the team's assistant.
	// +optional
	MCPURL string `json:"mcpURL,omitempty"`

	// oauthClientID is the tenant's OAuth client in Dex.
	// +optional
	OAuthClientID string `json:"oauthClientID,omitempty"`

	// database is the TraceKitDatabase the tenant is placed on; empty for a tenant with
	// spec.database.adminSecretRef. It never changes once set.
	// +optional
	Database string `json:"database,omitempty"`

	// availableReplicas is the number of MCP server pods ready to serve.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`
}

// TraceKitTenantList is a list of TraceKitTenants.
// +kubebuilder:object:root=true
type TraceKitTenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TraceKitTenant `json:"items"`
}
