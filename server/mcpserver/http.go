package mcpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/mcpserver/ui"
	"github.com/tracekit/tracekit/server/store"
)

// Path is where the endpoint is mounted.
const Path = "/mcp"

// maxBody bounds a JSON-RPC request; tool arguments are small.
const maxBody = 1 << 20

// Register mounts the MCP endpoint on r: POST for JSON-RPC, GET and DELETE answered by the SDK
// (405 in stateless mode: there is no server-initiated stream nor session to end), OPTIONS for CORS
// preflight. Checks run in this order: Origin, preflight, authentication, then the SDK.
//
// The server is stateless: every POST carries everything needed to serve it, so any replica of a
// tenant's server can answer any request and nothing is lost when a pod goes away. The tools are
// request/response reads; nothing needs a session (see docs/mcp.md).
func Register(r gin.IRouter, cfg Config) {
	e := newEndpoint(cfg)
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodOptions} {
		r.Handle(m, Path, e.checkOrigin, e.authenticate, e.serve)
	}
	ui.Register(r, ui.WebConfig{Auth: cfg.Auth, Source: e.tools.webView, PublicURL: cfg.PublicURL, Logger: cfg.Logger, OAuth: cfg.WebOAuth, DB: cfg.DB})
}

type endpoint struct {
	auth             auth.Authenticator
	origins          map[string]bool
	resourceMetadata string
	sdk              http.Handler
	tools            *tools
}

func newEndpoint(cfg Config) *endpoint {
	e := &endpoint{auth: cfg.Auth, origins: map[string]bool{}}
	base := strings.TrimSuffix(cfg.PublicURL, "/")
	e.resourceMetadata = base + "/.well-known/oauth-protected-resource"
	for _, o := range append([]string{base}, cfg.AllowedOrigins...) {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			e.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
		}
	}
	srv, tl := newServer(cfg)
	e.tools = tl
	e.sdk = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		Logger:       cfg.Logger,
		// The SDK's guard rejects requests reaching a loopback address with another Host, which is how
		// service-mesh sidecars forward; the Origin allow-list below is what stops DNS rebinding.
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        maxBody,
	})
	return e
}

// allowed reports whether a browser page of origin may call: the public URL's origin, a configured
// one, or a loopback page (local tools such as the MCP Inspector). Callers still need a credential.
func (e *endpoint) allowed(origin string) bool {
	if e.origins[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var (
	// Mcp-Method and Mcp-Name are sent on every request of revision 2026-07-28.
	corsAllowHeaders  = "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID"
	corsExposeHeaders = "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version"
)

// checkOrigin refuses foreign browser origins (403) and answers CORS, including preflight, before
// authentication: a preflight carries no credentials.
func (e *endpoint) checkOrigin(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" {
		if c.Request.Method == http.MethodOptions {
			c.AbortWithStatus(http.StatusNoContent)
		}
		return
	}
	if !e.allowed(origin) {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": fmt.Sprintf("origin %q may not call this server; browser clients must be served from its public URL or a loopback address", origin)})
		return
	}
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	if c.Request.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "86400")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// authenticate puts the caller in the request context, or answers 401 with the protected-resource
// metadata URL that MCP clients follow to start OAuth.
func (e *endpoint) authenticate(c *gin.Context) {
	p, err := e.auth.Authenticate(c.Request)
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrNoCredentials):
		c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata=%q, scope=%q`, e.resourceMetadata, store.ScopeRead))
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": err.Error()})
		return
	case errors.Is(err, auth.ErrInvalidCredentials):
		c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer error="invalid_token", resource_metadata=%q, scope=%q`, e.resourceMetadata, store.ScopeRead))
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": err.Error()})
		return
	default:
		c.Header("Retry-After", "5")
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
		return
	}
	if !p.HasScope(store.ScopeRead) {
		c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q, resource_metadata=%q`, store.ScopeRead, e.resourceMetadata))
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "this credential lacks the 'read' scope the MCP tools need; create a key with it: tracekit apikey create --scopes read"})
		return
	}
	c.Request = c.Request.WithContext(auth.WithPrincipal(c.Request.Context(), p))
}

func (e *endpoint) serve(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		e.sdk.ServeHTTP(c.Writer, c.Request)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	if err != nil {
		writeRPCError(c.Writer, http.StatusRequestEntityTooLarge, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
			Message: fmt.Sprintf("request body over %d bytes", maxBody)})
		return
	}
	id, rerr := checkMessage(body)
	if rerr != nil {
		writeRPCError(c.Writer, http.StatusBadRequest, id, rerr)
		return
	}
	if v := c.GetHeader("Mcp-Protocol-Version"); v != "" && !slices.Contains(supportedVersions, v) {
		// The SDK takes a version later than its newest for a sessionless request and answers with
		// whatever check fails next; every client needs the list to fall back on.
		writeRPCError(c.Writer, http.StatusBadRequest, id, &jsonrpc.Error{Code: mcp.CodeUnsupportedProtocolVersion,
			Message: fmt.Sprintf("protocol version %q is not supported; this server speaks %s", v, strings.Join(supportedVersions, ", ")),
			Data:    mustJSON(mcp.UnsupportedProtocolVersionData{Supported: supportedVersions, Requested: v})})
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	if on, initialize := appsRequest(body, c.GetHeader("Mcp-Session-Id")); on {
		c.Request = c.Request.WithContext(withApps(c.Request.Context()))
		if initialize {
			c.Header("Mcp-Session-Id", newAppsSession())
		}
	}
	w := &rpcErrors{ResponseWriter: c.Writer, body: body}
	e.sdk.ServeHTTP(w, c.Request)
	w.finish()
}

// supportedVersions are the protocol revisions the SDK negotiates, newest first.
var supportedVersions = mcp.SupportedProtocolVersions()

// checkMessage refuses, before the SDK sees it, a body that is not a JSON-RPC message: invalid JSON,
// JSON other than an object or a batch, or an object that is neither a request (it has a method) nor
// a response (it has a result or an error). The SDK would answer these with Go's decoding errors or
// take them for responses (202). It returns the message's id, if any, for an error answer.
func checkMessage(body []byte) (json.RawMessage, *jsonrpc.Error) {
	if !json.Valid(body) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeParseError, Message: "the request body is not valid JSON"}
	}
	body = bytes.TrimSpace(body)
	if body[0] == '[' {
		return nil, nil // a batch: the SDK answers it
	}
	const example = `; send an object such as {"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	if body[0] != '{' {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "the request body is not a JSON-RPC message" + example}
	}
	var m struct {
		ID            json.RawMessage `json:"id"`
		Method        json.RawMessage `json:"method"`
		Result, Error json.RawMessage
	}
	_ = json.Unmarshal(body, &m) // valid JSON object: only duplicate or odd-typed fields can fail, seen below
	var method string
	switch {
	case m.Method == nil && (m.Result != nil || m.Error != nil):
		return nil, nil // a response to a server request
	case m.Method == nil:
		return m.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "the JSON-RPC message has no method" + example}
	case json.Unmarshal(m.Method, &method) != nil || method == "":
		return m.ID, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "the JSON-RPC method must be a non-empty string" + example}
	}
	return m.ID, nil
}

// rpcErrors turns the SDK's plain-text rejections of a POST (malformed JSON, unknown method, wrong
// content type) into JSON-RPC error responses with the request's id, so clients can show them.
type rpcErrors struct {
	http.ResponseWriter
	body      []byte
	status    int
	text      bytes.Buffer
	rewriting bool
}

func (w *rpcErrors) WriteHeader(code int) {
	if code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		w.rewriting, w.status = true, code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rpcErrors) Write(b []byte) (int, error) {
	if w.rewriting {
		return w.text.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *rpcErrors) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.rewriting {
		f.Flush()
	}
}

func (w *rpcErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *rpcErrors) finish() {
	if !w.rewriting {
		return
	}
	msg := strings.TrimSpace(w.text.String())
	code := int64(jsonrpc.CodeInvalidRequest)
	var req struct {
		ID json.RawMessage `json:"id"`
	}
	_ = json.Unmarshal(w.body, &req) // checkMessage let only objects and batches through
	if strings.Contains(msg, "not handled") {
		code = jsonrpc.CodeMethodNotFound
	}
	w.Header().Del("X-Content-Type-Options")
	writeRPCError(w.ResponseWriter, w.status, req.ID, &jsonrpc.Error{Code: code, Message: msg})
}

func writeRPCError(w http.ResponseWriter, status int, rawID json.RawMessage, rerr *jsonrpc.Error) {
	var v any
	_ = json.Unmarshal(rawID, &v)
	id, _ := jsonrpc.MakeID(v) // a missing or odd id answers with null, as JSON-RPC prescribes
	b, _ := jsonrpc.EncodeMessage(&jsonrpc.Response{ID: id, Error: rerr})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with types that marshal
	}
	return b
}
