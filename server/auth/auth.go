// Package auth answers one question for every handler: who is calling, for which tenant. Handlers
// take the tenant from the Principal it puts in the request context, never from request arguments.
package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
)

// Principal is an authenticated caller.
type Principal struct {
	TenantID string
	// Subject identifies the credential: an API key id, or an OAuth token's subject.
	Subject string
	Scopes  []string
	// ToolGroups are the MCP tool groups (ToolGroups) an OAuth sign-in granted; nil means every tool,
	// as for API keys.
	ToolGroups []string
	// Method is "api_key" or "oauth".
	Method string
	// User names the person behind an OAuth token from company sign-in (their e-mail address, else
	// their user name at the identity provider), and IdPGroups the groups of theirs that admitted
	// them; both empty for API keys and API-key sign-ins. For the audit trail only: authorization
	// never depends on them.
	User      string
	IdPGroups []string
	// Name is the credential as people know it: an API key's name and prefix, or the name or email
	// an OAuth token carries in its standard claims. The keys page and the audit trail show it (Actor).
	Name string
}

// Actor names the caller in the audit trail: the person of a company sign-in, else the credential.
func (p Principal) Actor() string {
	switch {
	case p.User != "":
		if len(p.IdPGroups) > 0 {
			return p.User + " (company sign-in, group " + strings.Join(p.IdPGroups, ", ") + ")"
		}
		return p.User + " (company sign-in)"
	case p.Method == "api_key":
		return "API key " + p.Subject + " (" + p.Name + ")"
	case p.Name != "":
		return p.Name
	}
	return p.Method + " subject " + p.Subject
}

// HasScope reports whether the caller was granted scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Authenticator checks a request's credentials.
type Authenticator interface {
	// Authenticate returns ErrNoCredentials when the request carries none, and an error wrapping
	// ErrInvalidCredentials when they are wrong, revoked or for another tenant.
	Authenticate(r *http.Request) (Principal, error)
}

var (
	ErrNoCredentials      = errors.New("no credentials: send your TraceKit API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
	ErrInvalidCredentials = errors.New("invalid credentials")
)

// UnavailableError is a credential that could not be checked because the database did not answer.
// Its message is what an unauthenticated caller may see: the cause names the database's user, name
// and address, so it is only for logs (errors.Unwrap).
type UnavailableError struct{ Cause error }

func (e *UnavailableError) Error() string {
	return "database unavailable: the credential could not be checked; retry in a few seconds"
}

func (e *UnavailableError) Unwrap() error { return e.Cause }

// Chain tries each authenticator in turn, so API keys and OAuth tokens can sit side by side.
type Chain []Authenticator

// Authenticate returns the first success; otherwise the most specific failure.
func (c Chain) Authenticate(r *http.Request) (Principal, error) {
	err := ErrNoCredentials
	for _, a := range c {
		p, e := a.Authenticate(r)
		if e == nil {
			return p, nil
		}
		if !errors.Is(e, ErrNoCredentials) {
			err = e
		}
	}
	return Principal{}, err
}

// BearerToken returns the token of an 'Authorization: Bearer' header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the caller put there by the authentication middleware.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok && p.TenantID != ""
}
