{{/* Names and labels shared by every template. */}}

{{- define "tracekit.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name; kept to 40 characters so that suffixes like -postgresql fit. */}}
{{- define "tracekit.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tracekit.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tracekit
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: operator, auth or postgresql. Never change them: Deployments'
selectors are immutable. */}}
{{- define "tracekit.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tracekit.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tracekit.componentLabels" -}}
{{ include "tracekit.labels" .root }}
{{ include "tracekit.selectorLabels" . }}
{{- end }}

{{- define "tracekit.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{- define "tracekit.operatorName" -}}{{ include "tracekit.fullname" . }}-operator{{- end }}
{{- define "tracekit.authName" -}}{{ include "tracekit.fullname" . }}-auth{{- end }}
{{- define "tracekit.postgresqlName" -}}{{ include "tracekit.fullname" . }}-postgresql{{- end }}

{{/* The Secret and key holding the platform database's admin URL. */}}
{{- define "tracekit.databaseSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{ include "tracekit.fullname" . }}-database
{{- else -}}
{{ .Values.database.existingSecret.name }}
{{- end }}
{{- end }}

{{- define "tracekit.databaseSecretKey" -}}
{{- if .Values.postgresql.enabled -}}url{{- else -}}{{ .Values.database.existingSecret.key }}{{- end }}
{{- end }}

{{/* The issuer URL, parsed; validated once here so every template can rely on it. */}}
{{- define "tracekit.issuerHost" -}}
{{- (urlParse .Values.auth.issuer).hostname }}
{{- end }}

{{- define "tracekit.issuerPath" -}}
{{- (urlParse .Values.auth.issuer).path | trimSuffix "/" }}
{{- end }}

{{- define "tracekit.podSecurityContext" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tracekit.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* Values the schema cannot check alone: what depends on another value. */}}
{{- define "tracekit.validate" -}}
{{- if not .Values.auth.issuer }}
{{- fail "auth.issuer is required: the external URL of the sign-in server, e.g. --set auth.issuer=https://auth.tracekit.example.com/dex" }}
{{- end }}
{{- if not .Values.operator.tenantURL }}
{{- fail "operator.tenantURL is required: the URL template of tenants' MCP servers with {tenant} in it, e.g. --set operator.tenantURL=https://{tenant}.tracekit.example.com" }}
{{- end }}
{{- if and (not .Values.postgresql.enabled) (not .Values.database.existingSecret.name) }}
{{- fail "database.existingSecret.name is required when postgresql.enabled is false: create a Secret with your PostgreSQL admin URL (kubectl create secret generic tracekit-db --from-literal=url=postgres://…) and name it here" }}
{{- end }}
{{- if and .Values.auth.grpcTLS.enabled (not (and .Values.auth.grpcTLS.serverSecretName .Values.auth.grpcTLS.clientSecretName)) }}
{{- fail "auth.grpcTLS.enabled needs auth.grpcTLS.serverSecretName and auth.grpcTLS.clientSecretName: TLS Secrets (tls.crt, tls.key, ca.crt) of the sign-in server and of the operator" }}
{{- end }}
{{- if and .Values.auth.httpRoute.enabled (not .Values.auth.httpRoute.parentRefs) }}
{{- fail "auth.httpRoute.enabled needs auth.httpRoute.parentRefs: the Gateway(s) the route attaches to, e.g. [{name: public, namespace: gateway-system}]" }}
{{- end }}
{{- if and .Values.auth.httpRoute.enabled (not (.Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1/HTTPRoute")) }}
{{- fail "auth.httpRoute.enabled: this cluster has no Gateway API (gateway.networking.k8s.io/v1 HTTPRoute); install its CRDs or use auth.ingress" }}
{{- end }}
{{- if and .Values.operator.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}
{{- fail "operator.metrics.serviceMonitor.enabled: this cluster has no ServiceMonitor CRD (monitoring.coreos.com/v1); install the Prometheus Operator or leave it disabled" }}
{{- end }}
{{- end }}
