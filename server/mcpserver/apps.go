package mcpserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/mcpserver/ui"
	"github.com/tracekit/tracekit/server/store"
)

// MCP Apps (extension io.modelcontextprotocol/ui). A client that announces the extension gets the
// views: the four visual tools list _meta.ui.resourceUri, the ui:// resources are served, and those
// tools' results carry what the views draw besides the structured content in _meta. A client that
// does not sees the catalog it always saw, answers that differ only by their /ui link line (which
// every client gets), and no resources capability.
//
// The server is stateless, so whether the client announced the extension must be known from each
// request itself (see docs/mcp.md):
//   - initialize carries the client's capabilities;
//   - from protocol 2026-07-28 on, every request carries them in _meta;
//   - under earlier revisions later requests carry none, so the answer to an initialize that
//     announced the extension issues an Mcp-Session-Id that says so (appsSession…): clients send it
//     back with every request, and any replica reads it without keeping anything.

// appsSession prefixes the session id given to clients that announced the extension. It carries
// no authority: it only selects how answers are presented.
const appsSession = "tk-apps."

type appsKey struct{}

func withApps(ctx context.Context) context.Context { return context.WithValue(ctx, appsKey{}, true) }

func appsOn(ctx context.Context) bool { on, _ := ctx.Value(appsKey{}).(bool); return on }

// appsRequest reports whether a POST body of JSON-RPC announces the extension (or, under earlier
// protocol revisions, whether sessionID says its initialize did), and whether it is an initialize.
func appsRequest(body []byte, sessionID string) (on, initialize bool) {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Capabilities *mcp.ClientCapabilities    `json:"capabilities"`
			Meta         map[string]json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if !bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) || json.Unmarshal(body, &msg) != nil {
		return false, false
	}
	if msg.Method == "initialize" {
		return announces(msg.Params.Capabilities), true
	}
	if raw, ok := msg.Params.Meta[mcp.MetaKeyClientCapabilities]; ok {
		var caps mcp.ClientCapabilities
		return json.Unmarshal(raw, &caps) == nil && announces(&caps), false
	}
	return strings.HasPrefix(sessionID, appsSession), false
}

// announces reports whether capabilities include the extension with the HTML profile.
func announces(caps *mcp.ClientCapabilities) bool {
	if caps == nil {
		return false
	}
	settings, _ := caps.Extensions[ui.Extension].(map[string]any)
	types, _ := settings["mimeTypes"].([]any)
	return slices.Contains(types, any(ui.MIMEType))
}

func newAppsSession() string {
	b := make([]byte, 16)
	rand.Read(b)
	return appsSession + hex.EncodeToString(b)
}

// addViews registers the ui:// resources.
func addViews(s *mcp.Server) {
	for _, v := range ui.Views {
		doc := string(ui.Document(v, nil))
		s.AddResource(&mcp.Resource{URI: v.URI, Name: v.Name, Title: v.Title, Description: v.Description, MIMEType: ui.MIMEType,
			Meta: mcp.Meta{"ui": ui.ResourceMeta}},
			func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: v.URI, MIMEType: ui.MIMEType, Text: doc,
					Meta: mcp.Meta{"ui": ui.ResourceMeta}}}}, nil
			})
	}
}

// apps presents the views to clients that announced the extension and hides them from others (the
// resources methods are refused to those by undeclared).
func (tl *tools) apps(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		on := appsOn(ctx)
		res, err := next(ctx, method, req)
		if err != nil {
			return res, err
		}
		switch r := res.(type) {
		case *mcp.InitializeResult:
			if r.Capabilities == nil {
				return res, nil
			}
			out := *r
			out.Capabilities = appsCapabilities(r.Capabilities, on)
			return &out, nil
		case *mcp.DiscoverResult: // the sessionless initialize of 2026-07-28
			if r.Capabilities == nil {
				return res, nil
			}
			out := *r
			out.Capabilities = appsCapabilities(r.Capabilities, on)
			return &out, nil
		case *mcp.ListToolsResult:
			if !on {
				return res, nil
			}
			out := *r
			out.Tools = slices.Clone(r.Tools)
			out.CacheScope = "private" // the list depends on what the client announced
			for i, t := range out.Tools {
				if v, ok := ui.ForTool(t.Name); ok {
					withMeta := *t
					withMeta.Meta = mcp.Meta{"ui": map[string]any{"resourceUri": v.URI}}
					out.Tools[i] = &withMeta
				}
			}
			return &out, nil
		case *mcp.CallToolResult:
			call, _ := req.(*mcp.CallToolRequest)
			if !on || r.IsError || call == nil {
				return res, nil
			}
			p, _ := auth.FromContext(ctx)
			extra, err := tl.viewExtras(ctx, tl.db.ForTenant(p.TenantID), call.Params.Name, r.StructuredContent)
			if err != nil {
				// The answer stands without the picture's extras.
				tl.log.Error("MCP Apps view extras failed", "tool", call.Params.Name, "tenant", p.TenantID, "err", err)
				return res, nil
			}
			if extra == nil {
				return res, nil
			}
			out := *r
			out.Meta = mcp.Meta{ui.MetaKey: extra}
			return &out, nil
		}
		return res, nil
	}
}

// appsCapabilities declares the extension and resources to a client that announced the extension,
// and no resources to one that did not.
func appsCapabilities(c *mcp.ServerCapabilities, on bool) *mcp.ServerCapabilities {
	caps := *c
	caps.Resources = nil // the SDK adds it, with listChanged, for the registered views
	if on {
		caps.Resources = &mcp.ResourceCapabilities{} // no list changes: the views are fixed
		caps.Extensions = maps.Clone(caps.Extensions)
		caps.AddExtension(ui.Extension, map[string]any{})
	}
	return &caps
}

// viewAnswer is what the views' links and extras read of an answer.
type viewAnswer struct {
	TraceID string     `json:"trace_id"`
	Service string     `json:"service"`
	GroupBy string     `json:"group_by"`
	Window  *TimeRange `json:"window"`
	Anomaly *struct {
		ID      string `json:"id"`
		Service string `json:"service"`
		Started string `json:"started"`
		Ended   string `json:"ended"`
	} `json:"anomaly"`
}

// viewFields are the answer fields each tool's link and extras need. They come first in the
// answers, so decoding stops there: a whole trace's answer is megabytes of waterfall after them.
var viewFields = map[string][]string{
	"get_trace_detail": {"trace_id"}, "get_service_metrics": {"service", "window"}, "get_llm_stats": {"group_by", "window"},
	"get_rca": {"anomaly"}, "search_traces": {"window"}, "search_anomalies": {"window"},
}

func decodeView(tool string, structured any) (viewAnswer, bool) {
	var a viewAnswer
	raw, ok := structured.(json.RawMessage)
	need := viewFields[tool]
	if !ok || len(need) == 0 {
		return a, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return a, false
	}
	fields := map[string]any{"trace_id": &a.TraceID, "service": &a.Service, "group_by": &a.GroupBy, "window": &a.Window, "anomaly": &a.Anomaly}
	for seen := 0; seen < len(need) && dec.More(); {
		t, err := dec.Token()
		if err != nil {
			return a, false
		}
		key, _ := t.(string)
		dst, ok := fields[key]
		if !ok {
			dst = new(json.RawMessage)
		} else if slices.Contains(need, key) {
			seen++
		}
		if dec.Decode(dst) != nil {
			return a, false
		}
	}
	return a, true
}

// viewPath is the /ui page showing a tool's answer, or "": the same window, so the page shows what
// the answer said. args are the call's arguments as JSON.
func viewPath(tool, args string, structured any) string {
	a, ok := decodeView(tool, structured)
	if !ok {
		return ""
	}
	switch tool {
	case "search_traces", "search_anomalies": // searches of one service: its chart, anomalies shaded
		var in struct {
			Service string `json:"service"`
		}
		if json.Unmarshal([]byte(args), &in) == nil && in.Service != "" && a.Window != nil {
			return "/service/" + url.PathEscape(in.Service) + "?start=" + a.Window.From + "&end=" + a.Window.To
		}
	case "get_trace_detail":
		if a.TraceID != "" {
			return "/trace/" + url.PathEscape(a.TraceID)
		}
	case "get_service_metrics":
		if a.Service != "" && a.Window != nil {
			return "/service/" + url.PathEscape(a.Service) + "?start=" + a.Window.From + "&end=" + a.Window.To
		}
	case "get_llm_stats":
		if a.Window != nil {
			return "/llm?group_by=" + url.QueryEscape(a.GroupBy) + "&start=" + a.Window.From + "&end=" + a.Window.To
		}
	case "get_rca":
		if a.Anomaly != nil && a.Anomaly.ID != "" {
			return "/rca/" + url.PathEscape(a.Anomaly.ID)
		}
	}
	return ""
}

// viewLink is the line every client reads at the end of a visual tool's answer.
func (tl *tools) viewLink(tool, args string, structured any) string {
	if tl.ui == "" {
		return ""
	}
	if p := viewPath(tool, args, structured); p != "" {
		return "View: " + tl.ui + p + "\n"
	}
	return ""
}

// viewExtras is what a view draws besides the answer: the link, and for charts the anomalies and
// deploys of the window (a metrics chart), or the service's series around the anomaly (a root cause).
func (tl *tools) viewExtras(ctx context.Context, tn *store.Tenant, tool string, structured any) (map[string]any, error) {
	if _, ok := ui.ForTool(tool); !ok {
		return nil, nil
	}
	keys, err := tl.keys.forTenant(ctx, tn) // anomaly ids are shown sealed with the tenant's key
	if err != nil {
		return nil, err
	}
	ctx = withKeys(ctx, keys)
	extra := map[string]any{}
	if p := viewPath(tool, "", structured); p != "" && tl.ui != "" {
		extra["url"] = tl.ui + p
	}
	a, _ := decodeView(tool, structured)
	var service string
	var from, to time.Time
	switch {
	case tool == "get_service_metrics" && a.Window != nil:
		service = a.Service
		from, _ = time.Parse(time.RFC3339, a.Window.From)
		to, _ = time.Parse(time.RFC3339, a.Window.To)
	case tool == "get_rca" && a.Anomaly != nil:
		service = a.Anomaly.Service
		started, _ := time.Parse(time.RFC3339, a.Anomaly.Started)
		ended := tl.now()
		if a.Anomaly.Ended != "" {
			ended, _ = time.Parse(time.RFC3339, a.Anomaly.Ended)
		}
		// The anomaly with as much before it as it lasted (at least an hour) and a little after.
		lead := max(ended.Sub(started), time.Hour)
		from, to = started.Add(-lead), ended.Add(lead/4)
		if now := tl.now(); to.After(now) {
			to = now
		}
		m, _, err := tl.getServiceMetrics(ctx, tn, getServiceMetricsIn{Service: service, Window: Window{Start: stamp(from), End: stamp(to)}})
		var ae *argError
		if errors.As(err, &ae) {
			return extra, nil
		} else if err != nil {
			return nil, err
		}
		extra["series"], extra["from"], extra["to"] = m.Series, m.Window.From, m.Window.To
		from, _ = time.Parse(time.RFC3339, m.Window.From)
		to, _ = time.Parse(time.RFC3339, m.Window.To)
	}
	if service == "" || !from.Before(to) {
		return extra, nil
	}
	var ctxOut searchTracesOut
	if err := serviceContext(ctx, tn, service, from, to, &ctxOut); err != nil {
		return nil, err
	}
	// A version first seen after the window's first request was deployed then.
	sort.Slice(ctxOut.Versions, func(i, j int) bool { return ctxOut.Versions[i].First < ctxOut.Versions[j].First })
	deploys := []map[string]string{}
	for i, v := range ctxOut.Versions {
		if i > 0 {
			deploys = append(deploys, map[string]string{"version": v.Version, "at": v.First})
		}
	}
	anomalies := ctxOut.Anomalies
	if anomalies == nil {
		anomalies = []anomalyRef{}
	}
	extra["anomalies"], extra["deploys"] = anomalies, deploys
	return extra, nil
}

// webView answers a /ui page: the tool called as p, with the full waterfall of a trace (a page
// scrolls through every span; an assistant's answer keeps to its budget), and the view's extras.
func (tl *tools) webView(ctx context.Context, p auth.Principal, tool string, args map[string]any) ([]byte, error) {
	call := tl.calls[tool]
	if call == nil {
		return nil, &ui.AnswerError{Msg: "no view for " + tool}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	res, err := call(auth.WithPrincipal(ctx, p), raw, true)
	if err != nil {
		return nil, err
	}
	if res.IsError {
		var msg []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				msg = append(msg, t.Text)
			}
		}
		return nil, &ui.AnswerError{Msg: strings.Join(msg, " ")}
	}
	extra, err := tl.viewExtras(ctx, tl.db.ForTenant(p.TenantID), tool, res.StructuredContent)
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(map[string]any{ui.MetaKey: extra})
	if err != nil {
		return nil, err
	}
	// Spliced rather than marshalled: a whole trace's answer is megabytes of JSON already encoded.
	sc, ok := res.StructuredContent.(json.RawMessage)
	if !ok {
		return nil, errors.New(tool + " answered without structured content")
	}
	var b bytes.Buffer
	b.WriteString(`{"structuredContent":`)
	b.Write(sc)
	b.WriteString(`,"_meta":`)
	b.Write(meta)
	b.WriteString(`}`)
	return b.Bytes(), nil
}
