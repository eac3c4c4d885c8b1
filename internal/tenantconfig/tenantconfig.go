// Package tenantconfig is the contract between the operator and a tenant's server: the environment
// variables the operator sets on the server's container, the file it mounts there and that file's
// format. The operator writes it in the server's own terms (it translates the TraceKitTenant's
// spelling); the server reads it as it is. It imports nothing of ours, so both sides can.
package tenantconfig

import (
	"encoding/json"
	"fmt"
)

// Environment variables of a tenant's server (`tracekit server`), each the default of the flag of
// the same name.
const (
	EnvAddr           = "TRACEKIT_ADDR"
	EnvGRPCAddr       = "TRACEKIT_GRPC_ADDR"
	EnvDatabaseURL    = "TRACEKIT_DATABASE_URL"
	EnvTenant         = "TRACEKIT_TENANT"
	EnvPublicURL      = "TRACEKIT_PUBLIC_URL"
	EnvAllowedOrigins = "TRACEKIT_ALLOWED_ORIGINS"
	EnvAlertRules     = "TRACEKIT_ALERT_RULES"
	EnvRetention      = "TRACEKIT_RETENTION"
	// EnvIndexedAttributes lists attribute keys indexed besides the server's defaults, comma-separated.
	EnvIndexedAttributes = "TRACEKIT_INDEXED_ATTRIBUTES"
	// EnvAttributeValuesPerDay is the distinct values per key and day of data the index takes.
	EnvAttributeValuesPerDay = "TRACEKIT_ATTRIBUTE_VALUES_PER_DAY"
	EnvAuthIssuer            = "TRACEKIT_AUTH_ISSUER"
	EnvOAuthClientID         = "TRACEKIT_OAUTH_CLIENT_ID"
	EnvOAuthClientSecret     = "TRACEKIT_OAUTH_CLIENT_SECRET"
)

// Files the operator mounts into the server's container.
const (
	ConfigDir      = "/etc/tracekit"    // read-only, from the tenant's ConfigMap
	AlertRulesFile = "alert-rules.json" // its key in the ConfigMap
	AlertRulesPath = ConfigDir + "/" + AlertRulesFile
)

// AlertRule is one rule of the alert rules file, in the server's terms: the fields and values of the
// store's alert_rules rows (metric latency_p95_ms, comparison ">", severity "medium", …).
type AlertRule struct {
	ID            string  `json:"id"`
	Service       string  `json:"service"`
	Metric        string  `json:"metric"`
	Comparison    string  `json:"comparison"`
	Threshold     float64 `json:"threshold"`
	WindowSeconds int     `json:"window_seconds"`
	Severity      string  `json:"severity"`
	Enabled       *bool   `json:"enabled,omitempty"` // absent: enabled
}

// EncodeAlertRules renders rules as the file's contents.
func EncodeAlertRules(rules []AlertRule) ([]byte, error) {
	if rules == nil {
		rules = []AlertRule{}
	}
	return json.MarshalIndent(rules, "", "  ")
}

// DecodeAlertRules parses the file's contents.
func DecodeAlertRules(b []byte) ([]AlertRule, error) {
	var rules []AlertRule
	if err := json.Unmarshal(b, &rules); err != nil {
		return nil, fmt.Errorf("alert rules: want a JSON array of {id, service, metric, comparison, threshold, window_seconds, severity, enabled}: %w", err)
	}
	return rules, nil
}
