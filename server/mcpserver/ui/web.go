package ui

import (
	"context"
	"errors"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
)

// Source answers a tool call for a page, as the caller p may make it: the tool result as JSON
// (structuredContent, content, _meta). An *AnswerError is the caller's to fix.
type Source func(ctx context.Context, p auth.Principal, tool string, args map[string]any) ([]byte, error)

// AnswerError is a tool's own refusal (an isError result), e.g. an unknown trace id.
type AnswerError struct{ Msg string }

func (e *AnswerError) Error() string { return e.Msg }

// WebConfig is what the /ui pages need.
type WebConfig struct {
	Auth      auth.Authenticator
	Source    Source
	PublicURL string
	Logger    *slog.Logger
	// OAuth, when set, offers signing in through the tenant's OAuth flow besides pasting a key.
	OAuth *OAuth
	// DB, when set, serves the keys page (/keys) and keeps the audit trail of sign-ins it refuses.
	DB *store.DB
}

// cookie holds the credential a browser signed in with; it is sent to /ui only and never readable by
// scripts.
const cookie = "tracekit_ui"

// signInFor is how long a browser stays signed in.
const signInFor = 12 * time.Hour

// Path is where the pages are served, under the public URL.
const Path = "/ui"

// Register mounts the pages: /ui/trace/<trace id>, /ui/service/<service>?start=&end=,
// /ui/llm?group_by=&start=&end= and /ui/rca/<anomaly id>, each the view of the same tool answer an
// assistant gets, for the signed-in caller's tenant and tool groups; /ui/signin takes an API key.
// A request with an Authorization header (an API key or an OAuth access token) needs no sign-in.
func Register(r gin.IRouter, cfg WebConfig) {
	w := &web{cfg: cfg, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.Default()
	}
	u, _ := url.Parse(cfg.PublicURL)
	if u != nil {
		w.prefix, w.secure, w.origin = strings.TrimRight(u.Path, "/"), u.Scheme == "https", u.Scheme+"://"+u.Host
	}
	w.public = strings.TrimRight(cfg.PublicURL, "/")
	g := r.Group(Path)
	if cfg.OAuth != nil {
		w.registerOAuth(g)
	}
	if cfg.DB != nil {
		w.registerKeys(r, g)
	}
	g.GET("/signin", w.signInForm)
	g.POST("/signin", w.signIn)
	g.POST("/signout", w.signOut)
	g.GET("/trace/:id", w.page("get_trace_detail", func(c *gin.Context) map[string]any {
		return map[string]any{"trace_id": c.Param("id")}
	}))
	g.GET("/service/:name", w.page("get_service_metrics", func(c *gin.Context) map[string]any {
		return query(c, map[string]any{"service": c.Param("name")}, "operation", "since", "start", "end", "step")
	}))
	g.GET("/llm", w.page("get_llm_stats", func(c *gin.Context) map[string]any {
		return query(c, map[string]any{}, "group_by", "service", "model", "since", "start", "end")
	}))
	g.GET("/rca/:id", w.page("get_rca", func(c *gin.Context) map[string]any {
		return map[string]any{"anomaly_id": c.Param("id")}
	}))
}

type web struct {
	cfg    WebConfig
	log    *slog.Logger
	prefix string // the public URL's path, e.g. /t/acme
	origin string // the public URL's scheme://host
	public string // the public URL, without a trailing slash
	secure bool
	oauth  *OAuth // nil: API keys only
}

// sameHost reports whether origin names host, the host the request was sent to.
func sameHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

func query(c *gin.Context, args map[string]any, names ...string) map[string]any {
	for _, n := range names {
		if v := c.Query(n); v != "" {
			args[n] = v
		}
	}
	return args
}

// principal authenticates the request's Authorization header or, failing that, the sign-in cookie.
func (w *web) principal(c *gin.Context) (auth.Principal, error) {
	req := c.Request
	if req.Header.Get("Authorization") == "" {
		v, err := req.Cookie(cookie)
		if err != nil {
			return auth.Principal{}, auth.ErrNoCredentials
		}
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+v.Value)
	}
	return w.cfg.Auth.Authenticate(req)
}

func (w *web) page(tool string, args func(*gin.Context) map[string]any) gin.HandlerFunc {
	v, _ := ForTool(tool)
	return func(c *gin.Context) {
		secureHeaders(c)
		p, err := w.principal(c)
		switch {
		case errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrInvalidCredentials):
			c.Redirect(http.StatusSeeOther, w.prefix+Path+"/signin?next="+url.QueryEscape(w.prefix+c.Request.URL.RequestURI()))
			return
		case err != nil:
			w.message(c, http.StatusServiceUnavailable, "Signing in is unavailable right now; try again shortly.")
			return
		}
		if !p.HasScope(store.ScopeRead) {
			w.message(c, http.StatusForbidden, "This credential lacks the 'read' scope; create a key with it: tracekit apikey create --scopes read")
			return
		}
		if msg := p.ToolRefusal(tool); msg != "" {
			w.message(c, http.StatusForbidden, msg)
			return
		}
		res, err := w.cfg.Source(c.Request.Context(), p, tool, args(c))
		var ae *AnswerError
		switch {
		case errors.As(err, &ae):
			w.message(c, http.StatusNotFound, ae.Msg)
			return
		case err != nil:
			w.log.Error("web view failed", "tool", tool, "tenant", p.TenantID, "err", err)
			w.message(c, http.StatusInternalServerError, "This view could not be drawn; it has been logged. Try again shortly.")
			return
		}
		c.Header("Content-Security-Policy", PageCSP)
		c.Data(http.StatusOK, "text/html; charset=utf-8", Document(v, res))
	}
}

func secureHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // none to other sites; the sign-in form still sends its Origin
	h.Set("X-Frame-Options", "DENY")
}

const formStyle = `body{font:14px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}` +
	`input{width:100%;padding:.5rem;margin:.5rem 0;font:inherit}button{padding:.5rem 1rem;font:inherit}.err{color:#c62828}`

var formCSP = "default-src 'none'; style-src '" + hash(formStyle) + "'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// message answers a page with one sentence.
func (w *web) message(c *gin.Context, status int, msg string) {
	c.Header("Content-Security-Policy", formCSP)
	c.Data(status, "text/html; charset=utf-8", []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>TraceKit</title><style>`+
		formStyle+`</style></head><body><h1>TraceKit</h1><p id="message">`+html.EscapeString(msg)+`</p></body></html>`))
}

// next is where to go after signing in: only a page of this server's /ui.
func (w *web) next(v string) string {
	if strings.HasPrefix(v, w.prefix+Path+"/") && !strings.HasPrefix(v, "//") && !strings.ContainsAny(v, "\\\r\n") {
		return v
	}
	return w.prefix + Path + "/llm"
}

func (w *web) signInForm(c *gin.Context) {
	secureHeaders(c)
	w.form(c, http.StatusOK, w.next(c.Query("next")), "")
}

func (w *web) form(c *gin.Context, status int, next, errMsg string) {
	c.Header("Content-Security-Policy", formCSP)
	errHTML := ""
	if errMsg != "" {
		errHTML = `<p class="err" id="signin-error">` + html.EscapeString(errMsg) + `</p>`
	}
	c.Data(status, "text/html; charset=utf-8", []byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · TraceKit</title><style>`+
		formStyle+`</style></head><body><h1>Sign in to TraceKit</h1>`+w.oauthLink(next)+`<p>Enter an API key of your team (<code>tracekit apikey create --scopes read</code>) to see its traces, charts and costs.</p>`+
		errHTML+`<form method="post" action="`+html.EscapeString(w.prefix+Path+"/signin")+`"><input type="hidden" name="next" value="`+html.EscapeString(next)+
		`"><input type="password" name="key" id="key" autocomplete="current-password" placeholder="tk_…" required><button type="submit" id="submit">Sign in</button></form></body></html>`))
}

// oauthLink offers the OAuth sign-in, when the server has it.
func (w *web) oauthLink(next string) string {
	if w.oauth == nil {
		return ""
	}
	return `<p><a id="oauth" href="` + html.EscapeString(w.prefix+Path+"/oauth/start?next="+url.QueryEscape(next)) +
		`">Sign in as in your assistant</a> (your team's sign-in page, choosing which tool groups to grant), or:</p>`
}

func (w *web) signIn(c *gin.Context) {
	secureHeaders(c)
	// Only this server's own form may sign a browser in (no login CSRF from another site).
	if o := c.GetHeader("Origin"); o != "" && o != w.origin && !sameHost(o, c.Request.Host) {
		w.message(c, http.StatusForbidden, "Sign in from this server's own sign-in page.")
		return
	}
	next, key := w.next(c.PostForm("next")), strings.TrimSpace(c.PostForm("key"))
	req := c.Request.Clone(c.Request.Context())
	req.Header.Set("Authorization", "Bearer "+key)
	p, err := w.cfg.Auth.Authenticate(req)
	if err != nil || key == "" {
		status, msg := http.StatusUnauthorized, "That is not a valid API key of this server; check it and try again."
		if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) && !errors.Is(err, auth.ErrNoCredentials) {
			status, msg = http.StatusServiceUnavailable, "Signing in is unavailable right now; try again shortly."
		}
		if refused := w.refusedKey(c, key); refused != "" {
			msg = "This API key " + refused + "; ask a member of your team for a new one."
		}
		w.form(c, status, next, msg)
		return
	}
	w.log.Info("web view sign-in", "tenant", p.TenantID)
	http.SetCookie(c.Writer, &http.Cookie{Name: cookie, Value: key, Path: w.prefix + Path, MaxAge: int(signInFor.Seconds()),
		HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode})
	c.Redirect(http.StatusSeeOther, next)
}

func (w *web) signOut(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: cookie, Path: w.prefix + Path, MaxAge: -1, HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode})
	c.Redirect(http.StatusSeeOther, w.prefix+Path+"/signin")
}

// refusedKey says why a key of a known tenant no longer signs in ("expired on …", "was revoked on …")
// and records the attempt in that tenant's audit trail; it is "" for any other key.
func (w *web) refusedKey(c *gin.Context, key string) string {
	if w.cfg.DB == nil || key == "" {
		return ""
	}
	k, err := w.cfg.DB.LookupAPIKey(c.Request.Context(), key)
	var why string
	switch {
	case errors.Is(err, store.ErrKeyExpired):
		why = "expired on " + time.Unix(0, k.ExpiresNS).UTC().Format(time.RFC3339)
	case errors.Is(err, store.ErrKeyRevoked):
		why = "was revoked on " + time.Unix(0, k.RevokedNS).UTC().Format(time.RFC3339)
	default:
		return ""
	}
	e := store.AuditEvent{Actor: "API key " + k.ID + " (" + k.Name + ", " + k.Prefix + "…)", Method: "api_key", Action: store.AuditSignInRefused,
		Target: Path + "/signin", Detail: "the key " + why, IP: oauth.ClientIP(c.Request), UserAgent: c.Request.UserAgent()}
	if err := w.cfg.DB.ForTenant(k.TenantID).RecordAudit(c.Request.Context(), e); err != nil {
		w.log.Error("audit event not recorded", "tenant", k.TenantID, "action", e.Action, "err", err)
	}
	return why
}
