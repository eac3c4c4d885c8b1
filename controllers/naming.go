package controllers

import (
	"fmt"
	"net/url"
	"strings"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// Names of the objects a tenant owns. The prefix keeps them apart from the team's own objects in the
// namespace; tenant names are at most 50 characters, so every name stays a valid DNS label.
func serverName(t *tracekitv1alpha1.TraceKitTenant) string   { return "tracekit-" + t.Name }
func dbSecretName(t *tracekitv1alpha1.TraceKitTenant) string { return "tracekit-" + t.Name + "-db" }
func oauthSecretName(t *tracekitv1alpha1.TraceKitTenant) string {
	return "tracekit-" + t.Name + "-oauth"
}
func alertRulesName(t *tracekitv1alpha1.TraceKitTenant) string {
	return "tracekit-" + t.Name + "-alert-rules"
}

// oauthClientID is the tenant's client in Dex; the tenant's server accepts only tokens issued to it.
func oauthClientID(t *tracekitv1alpha1.TraceKitTenant) string { return "tenant-" + t.Name }

// Labels on every owned object; selectorLabels is the subset the Deployment selects its pods by,
// which must never change once created.
func selectorLabels(t *tracekitv1alpha1.TraceKitTenant) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     "tracekit",
		"app.kubernetes.io/instance": t.Name,
	}
}

func objectLabels(t *tracekitv1alpha1.TraceKitTenant) map[string]string {
	l := selectorLabels(t)
	l["app.kubernetes.io/component"] = "server"
	l[managedByLabel] = fieldOwner
	l[tenantLabel] = t.Name
	return l
}

const tenantLabel = "tracekit.dev/tenant"

// publicURL is the tenant's external base URL: the operator's template (where {tenant} stands for the
// tenant's name) with the host and path the spec sets laid over it.
func publicURL(t *tracekitv1alpha1.TraceKitTenant, template string) (*url.URL, error) {
	u := &url.URL{Scheme: "https"}
	if template != "" {
		parsed, err := url.Parse(strings.ReplaceAll(template, "{tenant}", t.Name))
		if err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
			return nil, fmt.Errorf("the operator's --tenant-url %q is not an http(s) URL template like https://{tenant}.tracekit.example.com", template)
		}
		u = parsed
	}
	if h := t.Spec.URL.Host; h != "" {
		u.Host = h
		u.Path = ""
	}
	if p := t.Spec.URL.PathPrefix; p != "" {
		u.Path = p
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no URL for tenant %q: set spec.url.host, or start the operator with --tenant-url", t.Name)
	}
	if t.Spec.URL.TLSSecretName != "" {
		u.Scheme = "https"
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment, u.RawPath = "", "", ""
	return u, nil
}

// mcpURL is the endpoint an assistant connects to.
func mcpURL(base *url.URL) string { return base.String() + "/mcp" }
