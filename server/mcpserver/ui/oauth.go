package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// OAuth lets a browser sign in to the pages through the tenant's own OAuth flow — the sign-in page
// where a person enters an API key and chooses tool groups — as an assistant does. The pages are a
// public client identified by a metadata document (no registration, nothing stored): by default the
// one they serve at <public URL>/ui/oauth-client.json.
type OAuth struct {
	// ClientID is the pages' client_id, the URL of their metadata document; empty means
	// <public URL>/ui/oauth-client.json, which needs an https public URL.
	ClientID string
	// HTTPClient exchanges the code at the token endpoint; nil means one with a 10 s timeout.
	HTTPClient *http.Client
}

// flowCookie carries one sign-in's state, PKCE verifier and destination from /ui/oauth/start to
// /ui/callback; the browser alone holds it.
const flowCookie = "tracekit_ui_flow"

// signInFlowFor bounds a sign-in, from leaving for the sign-in page to coming back.
const signInFlowFor = 15 * time.Minute

func (w *web) registerOAuth(g gin.IRouter) {
	o := *w.cfg.OAuth
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.ClientID == "" {
		o.ClientID = w.public + Path + "/oauth-client.json"
		g.GET("/oauth-client.json", func(c *gin.Context) {
			c.Header("Cache-Control", "public, max-age=3600")
			c.JSON(http.StatusOK, gin.H{"client_id": o.ClientID, "client_name": "TraceKit web views",
				"redirect_uris": []string{w.public + Path + "/callback"}, "grant_types": []string{"authorization_code"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
		})
	}
	w.oauth = &o
	g.GET("/oauth/start", w.startOAuth)
	g.GET("/callback", w.finishOAuth)
}

func (w *web) startOAuth(c *gin.Context) {
	secureHeaders(c)
	state, verifier := randomToken(), randomToken()
	sum := sha256.Sum256([]byte(verifier))
	next := w.next(c.Query("next"))
	http.SetCookie(c.Writer, &http.Cookie{Name: flowCookie, Value: state + "." + verifier + "." + base64.RawURLEncoding.EncodeToString([]byte(next)),
		Path: w.prefix + Path, MaxAge: int(signInFlowFor.Seconds()), HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode})
	q := url.Values{"response_type": {"code"}, "client_id": {w.oauth.ClientID}, "redirect_uri": {w.public + Path + "/callback"},
		"state": {state}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"resource": {w.public + "/mcp"}}
	c.Redirect(http.StatusSeeOther, w.prefix+"/mcp/authorize?"+q.Encode())
}

func (w *web) finishOAuth(c *gin.Context) {
	secureHeaders(c)
	flow, err := c.Cookie(flowCookie)
	parts := strings.SplitN(flow, ".", 3)
	if err != nil || len(parts) != 3 || c.Query("state") == "" || c.Query("state") != parts[0] {
		w.message(c, http.StatusBadRequest, "This sign-in has expired or was started in another browser; open the page again to sign in.")
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: flowCookie, Path: w.prefix + Path, MaxAge: -1, HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode})
	if e := c.Query("error"); e != "" {
		w.message(c, http.StatusForbidden, "Sign-in did not complete ("+e+": "+c.Query("error_description")+"). Open the page again to retry.")
		return
	}
	next, _ := base64.RawURLEncoding.DecodeString(parts[2])
	token, ttl, err := w.exchange(c, c.Query("code"), parts[1])
	if err != nil {
		w.log.Warn("web view sign-in: code exchange failed", "err", err)
		w.message(c, http.StatusBadGateway, "Sign-in could not be completed: "+err.Error()+". Open the page again to retry.")
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: cookie, Value: token, Path: w.prefix + Path, MaxAge: int(min(ttl, signInFor).Seconds()),
		HttpOnly: true, Secure: w.secure, SameSite: http.SameSiteLaxMode})
	c.Redirect(http.StatusSeeOther, w.next(string(next)))
}

// exchange trades the code for an access token at the tenant's token endpoint, as any client does.
func (w *web) exchange(c *gin.Context, code, verifier string) (string, time.Duration, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {w.public + Path + "/callback"},
		"client_id": {w.oauth.ClientID}, "code_verifier": {verifier}}
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, w.public+"/mcp/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := w.oauth.HTTPClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("the token endpoint did not answer")
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&tok); err != nil || tok.AccessToken == "" {
		if tok.Error != "" {
			return "", 0, fmt.Errorf("%s: %s", tok.Error, tok.Description)
		}
		return "", 0, fmt.Errorf("the token endpoint answered %d without a token", resp.StatusCode)
	}
	ttl := time.Duration(tok.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = time.Hour
	}
	return tok.AccessToken, ttl, nil
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
