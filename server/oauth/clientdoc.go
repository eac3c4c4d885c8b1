package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP revision
// 2025-11-25): instead of registering, a client such as Claude Code, Claude.ai or VS Code presents an
// https URL as its client_id, and the document at that URL holds its metadata. The facade fetches the
// document when the client asks to sign in, holds it to the rules registration follows, and keeps a
// Dex client per document (DocumentClientID), so the rest of the flow is that of a registered client.
//
// Anyone can name a URL, so the fetch is narrow: https only; public addresses only, checked on the
// address actually dialled after DNS resolution, so a name that resolves elsewhere the second time
// (DNS rebinding) gains nothing; no proxy, no redirects; 5 KiB in 5 seconds; and each caller's
// fetches count against its registration budget.

// Limits of a document fetch. 5 KB is the draft's suggested cap; documents in the wild are ~500 B.
const (
	maxDocumentBytes = 5 << 10
	documentTimeout  = 5 * time.Second
	// A document is kept for its Cache-Control max-age within these bounds, or an hour without one.
	minDocumentTTL     = 5 * time.Minute
	maxDocumentTTL     = 24 * time.Hour
	defaultDocumentTTL = time.Hour
	// staleDocumentGrace keeps a document working while its host is down (claude.ai's documents had
	// outages that broke every server fetching them live).
	staleDocumentGrace = 24 * time.Hour
	maxCachedDocuments = 1000
)

// isDocumentURL tells a metadata document's URL from the id of a registered client.
func isDocumentURL(clientID string) bool { return strings.HasPrefix(clientID, "https://") }

// DocumentClientID is the id of the Dex client that stands for the metadata document at docURL among
// the clients of tenantClient. It derives from the URL, so every replica and every sign-in finds the
// same client; it has the prefix of the tenant's registered clients, which is what ties a client to
// its tenant in the Registrar.
func DocumentClientID(tenantClient, docURL string) string {
	sum := sha256.Sum256([]byte(docURL))
	return tenantClient + ".mcp." + DocumentClientMarker + "." + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

// DocumentClientMarker follows "<tenant client>.mcp." in the id of a document's client, where a
// registered client's id has its creation time.
const DocumentClientMarker = "doc"

// clientDocument is a Client ID Metadata Document: RFC 7591 client metadata plus its own URL.
type clientDocument struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// TokenEndpointAuthMethodsSupported is not RFC 7591 metadata, but ChatGPT's document lists
	// "none" there beside its preferred private_key_jwt.
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	clientMetadata
}

// DocumentError says why a metadata document cannot be used.
type DocumentError struct {
	URL    string
	Reason string
	// Unreachable means the document's host did not answer properly (network error, 5xx), as opposed
	// to answering something unusable.
	Unreachable bool
}

func (e *DocumentError) Error() string {
	return fmt.Sprintf("client metadata document %s: %s", e.URL, e.Reason)
}

// errDocumentThrottled refuses a fetch to a caller that has fetched or registered too often.
var errDocumentThrottled = errors.New("too many sign-in clients from this address; retry in a minute")

// DocumentFetcher fetches, checks and caches Client ID Metadata Documents.
type DocumentFetcher struct {
	client *http.Client
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]cachedDocument
}

type cachedDocument struct {
	doc     clientDocument
	expires time.Time
}

// NewDocumentFetcher returns the fetcher the facade uses unless configured otherwise.
func NewDocumentFetcher() *DocumentFetcher { return newDocumentFetcher(fetchOptions{}) }

// fetchOptions adjust the fetcher for tests, whose servers listen on loopback with their own CA.
// Production has none: the zero value is the production fetcher.
type fetchOptions struct {
	roots *x509.CertPool
	// alsoAllow admits addresses besides public ones.
	alsoAllow func(netip.Addr) bool
	timeout   time.Duration
}

func newDocumentFetcher(o fetchOptions) *DocumentFetcher {
	if o.timeout == 0 {
		o.timeout = documentTimeout
	}
	dialer := &net.Dialer{Timeout: o.timeout, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return err
		}
		if !publicAddress(ip) && (o.alsoAllow == nil || !o.alsoAllow(ip)) {
			return fmt.Errorf("%s is not a public address", ip)
		}
		return nil
	}}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would dial for us, past the address check
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: o.roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.timeout,
		ResponseHeaderTimeout:  o.timeout,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           10,
		IdleConnTimeout:        time.Minute,
	}
	return &DocumentFetcher{
		client: &http.Client{Transport: transport, Timeout: o.timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now: time.Now,
	}
}

// nonPublic are ranges that IsGlobalUnicast and IsPrivate let through but that are not the public
// internet: shared address space (often cluster-internal), benchmarking and documentation ranges,
// reserved space, and IPv6 ranges that embed an IPv4 address (IPv4-compatible, NAT64, 6to4,
// Teredo) and could smuggle a private one.
var nonPublic = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
		"2001::/32", "2001:db8::/32", "2002::/16"} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// publicAddress reports whether ip is on the public internet: not loopback, link-local (cloud
// metadata services live there), private, multicast or any range in nonPublic.
func publicAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// checkDocumentURL applies the draft's rules for a client_id URL: https, a path other than "/", no
// dot segments, no credentials, no fragment.
func checkDocumentURL(id string) error {
	u, err := url.Parse(id)
	switch {
	case err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "":
		return errors.New("the client_id is not an https URL")
	case len(id) > 2000:
		return errors.New("the client_id is longer than 2000 characters")
	case u.User != nil:
		return errors.New("the client_id URL contains credentials")
	case strings.Contains(id, "#"):
		return errors.New("the client_id URL contains a fragment")
	case u.Path == "" || u.Path == "/":
		return errors.New("the client_id URL has no path")
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." {
			return errors.New("the client_id URL contains a dot segment")
		}
	}
	return nil
}

// Document returns the checked metadata document at clientID, from the cache when fresh. mayFetch is
// asked before a fetch and may refuse it (errDocumentThrottled).
func (d *DocumentFetcher) Document(ctx context.Context, clientID string, mayFetch func() bool) (clientDocument, error) {
	if err := checkDocumentURL(clientID); err != nil {
		return clientDocument{}, &DocumentError{URL: clientID, Reason: err.Error()}
	}
	now := d.now()
	d.mu.Lock()
	c, cached := d.cache[clientID]
	d.mu.Unlock()
	if cached && now.Before(c.expires) {
		return c.doc, nil
	}
	if !mayFetch() {
		return clientDocument{}, errDocumentThrottled
	}
	doc, ttl, err := d.fetch(ctx, clientID)
	var de *DocumentError
	if err != nil && cached && errors.As(err, &de) && de.Unreachable && now.Before(c.expires.Add(staleDocumentGrace)) {
		return c.doc, nil
	}
	if err != nil {
		return clientDocument{}, err
	}
	d.mu.Lock()
	if d.cache == nil || len(d.cache) >= maxCachedDocuments {
		d.cache = map[string]cachedDocument{}
	}
	d.cache[clientID] = cachedDocument{doc: doc, expires: now.Add(ttl)}
	d.mu.Unlock()
	return doc, nil
}

func (d *DocumentFetcher) fetch(ctx context.Context, clientID string) (clientDocument, time.Duration, error) {
	fail := func(unreachable bool, format string, args ...any) (clientDocument, time.Duration, error) {
		return clientDocument{}, 0, &DocumentError{URL: clientID, Reason: fmt.Sprintf(format, args...), Unreachable: unreachable}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return fail(false, "not a URL that can be fetched")
	}
	req.Header.Set("Accept", "application/json")
	res, err := d.client.Do(req)
	if err != nil {
		return fail(true, "could not be fetched (%v)", unwrapURLError(err))
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode >= 500:
		return fail(true, "its server answered %s", res.Status)
	case res.StatusCode != http.StatusOK:
		// Redirects included: the draft forbids following them.
		return fail(false, "its server answered %s; it must answer 200 with the document", res.Status)
	}
	if mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err != nil ||
		(mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))) {
		return fail(false, "it is served as %q; it must be application/json", res.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxDocumentBytes+1))
	if err != nil {
		return fail(true, "could not be read (%v)", unwrapURLError(err))
	}
	if len(body) > maxDocumentBytes {
		return fail(false, "it is larger than %d bytes", maxDocumentBytes)
	}
	var doc clientDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return fail(false, "it is not a JSON object of client metadata (%v)", err)
	}
	if reason := checkDocument(&doc, clientID); reason != "" {
		return fail(false, "%s", reason)
	}
	return doc, documentTTL(res.Header.Get("Cache-Control")), nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkDocument holds a document to the rules of registration and of the draft, normalising it as
// registration does, and says what is wrong, or returns "".
func checkDocument(doc *clientDocument, clientID string) string {
	md := &doc.clientMetadata
	switch {
	case doc.ClientID != clientID:
		return fmt.Sprintf("its client_id is %q; it must be the document's own URL", doc.ClientID)
	case doc.ClientSecret != "":
		return "it contains a client_secret, which a public document cannot keep secret"
	}
	if _, desc := checkRedirectURIs(md.RedirectURIs); desc != "" {
		return desc
	}
	// Clients of a document are public: there is no way to share a secret with them. ChatGPT's
	// document prefers private_key_jwt and also lists none, which is what it gets here.
	switch md.TokenEndpointAuthMethod {
	case "", "none":
	case "private_key_jwt":
		if !slices.Contains(doc.TokenEndpointAuthMethodsSupported, "none") {
			return "its token_endpoint_auth_method is private_key_jwt; this server accepts documents of public clients (none)"
		}
	default:
		return fmt.Sprintf("its token_endpoint_auth_method is %q; a document's client must be public (none)", md.TokenEndpointAuthMethod)
	}
	md.TokenEndpointAuthMethod = "none"
	// A document describes its client to every server; grant types this one does not offer (device
	// code, JWT bearer) are simply never used here.
	if len(md.GrantTypes) > 0 && !slices.Contains(md.GrantTypes, "authorization_code") {
		return "its grant_types lack authorization_code, the only way to sign in here"
	}
	if len(md.ResponseTypes) > 0 && !slices.Contains(md.ResponseTypes, "code") {
		return "its response_types lack code"
	}
	md.ClientName = strings.TrimSpace(md.ClientName)
	if len(md.ClientName) > 200 {
		return "its client_name is longer than 200 characters"
	}
	return ""
}

// documentTTL is how long to keep a document, from its Cache-Control header.
// The facade must keep it at least minDocumentTTL even when told not to: otherwise every sign-in
// page load would be a fetch.
func documentTTL(cacheControl string) time.Duration {
	ttl := defaultDocumentTTL
	for _, d := range strings.Split(cacheControl, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "no-store" || d == "no-cache" {
			return minDocumentTTL
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if s, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil {
				ttl = min(max(time.Duration(s)*time.Second, minDocumentTTL), maxDocumentTTL)
			}
		}
	}
	return ttl
}
