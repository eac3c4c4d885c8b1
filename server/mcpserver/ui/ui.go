// Package ui holds TraceKit's pictures of tool answers — a trace waterfall, a service's latency and
// error chart, an LLM spend breakdown and a root-cause view — as self-contained HTML documents. The
// same document is an MCP Apps view (extension io.modelcontextprotocol/ui, served as a ui://
// resource and fed the tool result by the host over postMessage) and, with the result embedded, the
// page behind an answer's /ui link. The documents load nothing from anywhere.
package ui

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html"
)

// Extension is the MCP Apps extension identifier clients announce in their capabilities.
const Extension = "io.modelcontextprotocol/ui"

// MIMEType is the type of an MCP Apps HTML resource, which clients list in the extension's mimeTypes.
const MIMEType = "text/html;profile=mcp-app"

// MetaKey names, in a tool result's _meta, what a view draws besides the structured content
// (the web link, anomalies and deploys of a chart): it stays out of the model's context.
const MetaKey = "io.tracekit/view"

// View is one picture and the tool whose answer it draws.
type View struct {
	Name, URI, Tool, Title, Description string
}

// Views are the pictures, one per tool whose answer is naturally visual.
var Views = []View{
	{"trace", "ui://tracekit/trace", "get_trace_detail", "Trace waterfall",
		"Interactive waterfall of a trace: collapsible spans, critical path, self time, failed spans, span attributes."},
	{"metrics", "ui://tracekit/metrics", "get_service_metrics", "Service latency and errors",
		"Latency percentiles and error rate over time, with anomaly windows shaded and deploys marked."},
	{"llm", "ui://tracekit/llm", "get_llm_stats", "LLM spend",
		"LLM cost and tokens broken down by model, provider, service or day."},
	{"rca", "ui://tracekit/rca", "get_rca", "Root cause",
		"An anomaly on its chart with the ranked causes and their evidence."},
}

// ForTool returns the view of a tool's answers.
func ForTool(tool string) (View, bool) {
	for _, v := range Views {
		if v.Tool == tool {
			return v, true
		}
	}
	return View{}, false
}

var (
	//go:embed assets/views.js
	script string
	//go:embed assets/views.css
	style string
)

// ResourceMeta is the _meta.ui of every view resource: no external origin of any kind (the host's
// restrictive default CSP), and a bordered frame.
var ResourceMeta = map[string]any{
	"csp":           map[string]any{"connectDomains": []string{}, "resourceDomains": []string{}, "frameDomains": []string{}, "baseUriDomains": []string{}},
	"prefersBorder": true,
}

// Document returns the view's HTML. A non-nil result (a tool result as JSON: structuredContent,
// content, _meta) is embedded for the web route; without it the document waits for its host.
func Document(v View, result []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>TraceKit · `)
	b.WriteString(html.EscapeString(v.Title))
	b.WriteString(`</title><style>`)
	b.WriteString(style)
	b.WriteString(`</style></head><body data-view="`)
	b.WriteString(v.Name)
	b.WriteString(`"><div id="app"></div>`)
	if result != nil {
		// HTMLEscape turns <, > and & into \u escapes, so the data cannot close its script element.
		b.WriteString(`<script type="application/json" id="tk-data">`)
		json.HTMLEscape(&b, result)
		b.WriteString(`</script>`)
	}
	b.WriteString(`<script>`)
	b.WriteString(script)
	b.WriteString(`</script></body></html>`)
	return b.Bytes()
}

// PageCSP is the Content-Security-Policy of the web pages: the view's own inline script and style by
// hash, nothing else — no network, no frames, no other scripts.
var PageCSP = "default-src 'none'; script-src '" + hash(script) + "'; style-src '" + hash(style) + "'; img-src data:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}
