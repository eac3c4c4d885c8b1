package oauth_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/server/oauth"
)

// A person opens a /ui link, signs in through the same flow an assistant uses (the API-key page,
// ticking only the LLM tool group) and lands on the page; the page then shows only what that sign-in
// granted. The pages are a public client identified by a metadata document.
func TestWebViews_SignInThroughTheOAuthFlowInChromium(t *testing.T) {
	var tenantURL string
	e := newEnv(t, webViewsClient(t, &tenantURL, envOptions{}), "acme")
	tn := e.tenants["acme"]
	tenantURL = tn.url

	b := browsertest.New(t)
	page := tn.url + "/ui/llm?since=24h"
	groups, err := b.SignInChoosingTools(tn.url+"/ui/oauth/start?next="+url.QueryEscape("/ui/llm?since=24h"), tn.key, []string{"llm"})
	if err != nil || len(groups) < 2 {
		t.Fatalf("sign-in page offered %v: %v", groups, err)
	}
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(`body[data-rendered]`))); err != nil {
		t.Fatalf("back from sign-in: %v", err)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != page {
		t.Errorf("signed in at %s, want %s", loc, page)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(tn.url+"/ui/trace/0123456789abcdef0123456789abcdef"), chromedp.WaitVisible(chromedp.ID("message"))); err != nil {
		t.Fatal(err)
	}
	if msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message"))); !strings.Contains(msg, "Traces and service health") {
		t.Errorf("a trace page under a sign-in without the traces group says %q", msg)
	}
}

// webViewsClient serves the /ui pages' client metadata document over https, as their public URL
// does in production (the pages' own document needs one), and returns opt set to trust it. The
// document's redirect URI is *tenantURL's, read when the document is fetched, at the first sign-in.
func webViewsClient(t *testing.T, tenantURL *string, opt envOptions) envOptions {
	docs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"client_id": "https://" + r.Host + "/web", "client_name": "TraceKit web views",
			"redirect_uris": []string{*tenantURL + "/ui/callback"}, "token_endpoint_auth_method": "none"})
	}))
	t.Cleanup(docs.Close)
	roots := x509.NewCertPool()
	roots.AddCert(docs.Certificate())
	opt.documents, opt.webClientID = oauth.NewTestDocumentFetcher(roots), docs.URL+"/web"
	return opt
}
