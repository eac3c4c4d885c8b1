package dexauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dexidp/dex/storage"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tracekit/tracekit/server/oauth"
)

// Refresh tokens as the guard treats them. A grant is one Dex refresh token: its id stays while its
// secret rotates on every refresh. Dex's own answers to a bad refresh are 400 invalid_request (RFC 6749
// §5.2 wants invalid_grant, and clients start a new sign-in only on that), it keeps a rotated-away
// token's grant alive, and on PostgreSQL two concurrent refreshes of one grant can fail one with a
// serialization error (500). So the guard checks the token first, with Dex's own rules, and:
//   - unknown, malformed, expired or another client's token: 400 invalid_grant;
//   - a rotated-away token outside Dex's reuse interval: the grant is revoked (OAuth 2.1 §4.3.1), and
//     the answer is invalid_grant; inside the interval Dex answers it with the current token, which is
//     what concurrent requests of one client need;
//   - the current token is always rotated, also inside the interval, where Dex alone would answer it
//     with itself: otherwise two requests with one token answered either side of the interval's end
//     get different tokens, and a client keeping the first (it cannot tell which is newer) loses its
//     grant at its next refresh. So a token's successor is always one token;
//   - a refresh that Dex fails with a server error is retried; if it keeps failing the answer is 503
//     temporarily_unavailable, never 500.

// maxRefreshAttempts bounds the retries of a refresh that lost a race in Dex's storage.
const maxRefreshAttempts = 4

func (g *guard) token(w http.ResponseWriter, r *http.Request) {
	if r.ParseForm() != nil {
		g.next.ServeHTTP(w, r) // Dex explains
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "refresh_token":
		g.refreshToken(w, r)
	case "authorization_code":
		g.authorizationCode(w, r)
	default:
		g.next.ServeHTTP(w, r)
	}
}

// requestClientID is the client a token request authenticates as.
func requestClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		return id
	}
	return r.PostForm.Get("client_id")
}

func (g *guard) refreshToken(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := parseRefreshToken(r.PostForm.Get("refresh_token"))
	if !ok {
		invalidGrant(w, "the refresh token is malformed; sign in again")
		return
	}
	clientID := requestClientID(r)
	for attempt := 1; ; attempt++ {
		rt, err := g.storage.GetRefresh(id)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			invalidGrant(w, "the refresh token is unknown, revoked or expired; sign in again")
			return
		case err != nil:
			g.logger.Error("read a refresh token", "err", err)
			unavailable(w)
			return
		case clientID != "" && rt.ClientID != clientID:
			invalidGrant(w, "the refresh token was issued to another client")
			return
		case rt.Token != secret && !(rt.ObsoleteToken == secret && g.refresh.AllowedToReuse(rt.LastUsed)):
			g.logger.Warn("a rotated-away refresh token was presented again: the grant is revoked", "client_id", rt.ClientID, "user", rt.Claims.UserID)
			g.revoke(rt)
			invalidGrant(w, "this refresh token was already used; for safety the sign-in it belongs to has ended: sign in again")
			return
		case g.refresh.CompletelyExpired(rt.CreatedAt) || g.refresh.ExpiredBecauseUnused(rt.LastUsed):
			g.revoke(rt)
			invalidGrant(w, "the refresh token expired; sign in again")
			return
		}
		if rt.Token == secret && g.refresh.AllowedToReuse(rt.LastUsed) {
			if err := g.endReuseInterval(rt.ID, secret); err != nil {
				if attempt < maxRefreshAttempts {
					time.Sleep(time.Duration(attempt) * 25 * time.Millisecond)
					continue
				}
				g.logger.Error("prepare a refresh token's rotation", "err", err)
				unavailable(w)
				return
			}
		}
		outcome := &refreshOutcome{}
		buf := &bufferedResponse{header: http.Header{}}
		g.next.ServeHTTP(buf, r.WithContext(context.WithValue(r.Context(), refreshKey{}, outcome)))
		switch {
		case outcome.ended != "":
			g.revoke(rt)
			invalidGrant(w, outcome.ended)
			return
		case buf.status >= 500 && attempt < maxRefreshAttempts:
			time.Sleep(time.Duration(attempt) * 25 * time.Millisecond)
			continue
		case buf.status >= 500:
			g.logger.Error("Dex failed a refresh repeatedly", "status", buf.status, "body", buf.body.String())
			unavailable(w)
			return
		case buf.status == http.StatusBadRequest:
			// What is left of Dex's invalid_request answers to a refresh concerns the token, except a
			// scope the grant does not include.
			var e oauth.APIError
			if json.Unmarshal(buf.body.Bytes(), &e) == nil && e.Code == "invalid_request" {
				e.Code = "invalid_grant"
				if strings.Contains(e.Description, "scope") {
					e.Code = "invalid_scope"
				}
				writeTokenError(w, http.StatusBadRequest, e)
				return
			}
		}
		buf.writeTo(w)
		return
	}
}

// endReuseInterval makes Dex rotate the grant's current token secret at its next refresh, by dating
// the token's last use before the reuse interval. A concurrent refresh may have rotated it already:
// then Dex answers secret with its successor and nothing is changed.
func (g *guard) endReuseInterval(id, secret string) error {
	err := g.storage.UpdateRefreshToken(id, func(old storage.RefreshToken) (storage.RefreshToken, error) {
		if old.Token == secret {
			old.LastUsed = time.Now().Add(-g.reuse - time.Second)
		}
		return old, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil // revoked meanwhile: Dex answers invalid_grant
	}
	return err
}

// authorizationCode passes a code exchange to Dex after checking that an MCP client sends its PKCE
// verifier, and remembers which grant each code started: a replayed code ends that grant (RFC 6749
// §4.1.2: the code may have been stolen).
func (g *guard) authorizationCode(w http.ResponseWriter, r *http.Request) {
	code := r.PostForm.Get("code")
	if isMCPClient(requestClientID(r)) && r.PostForm.Get("code_verifier") == "" {
		invalidGrant(w, "code_verifier is required (PKCE)")
		return
	}
	buf := &bufferedResponse{header: http.Header{}}
	g.next.ServeHTTP(buf, r)
	switch buf.status {
	case http.StatusOK:
		var t struct {
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(buf.body.Bytes(), &t) == nil {
			if id, _, ok := parseRefreshToken(t.RefreshToken); ok {
				g.codes.spend(code, id, time.Now())
			}
		}
	case http.StatusBadRequest:
		if id, ok := g.codes.spent(code); ok {
			if rt, err := g.storage.GetRefresh(id); err == nil {
				g.logger.Warn("an authorization code was replayed: the grant it started is revoked", "client_id", rt.ClientID)
				g.revoke(rt)
			}
		}
	}
	buf.writeTo(w)
}

// revoke ends a grant: its refresh token and its offline session (one per grant, see identity).
func (g *guard) revoke(rt storage.RefreshToken) {
	if err := endGrant(g.storage, rt); err != nil {
		g.logger.Error("end a grant", "err", err)
	}
}

// parseRefreshToken reads a refresh token as Dex issues it: base64url of a protobuf message with the
// grant's id (field 1) and the current secret (field 2).
func parseRefreshToken(s string) (id, secret string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", "", false
	}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 || typ != protowire.BytesType {
			return "", "", false
		}
		raw = raw[n:]
		v, n := protowire.ConsumeBytes(raw)
		if n < 0 {
			return "", "", false
		}
		raw = raw[n:]
		switch num {
		case 1:
			id = string(v)
		case 2:
			secret = string(v)
		}
	}
	return id, secret, id != "" && secret != ""
}

// spentCodes remembers, for codeMemory, which grant each exchanged authorization code started. It is
// per process: a replay that reaches another replica of `tracekit auth` is refused by Dex but does
// not end the grant.
type spentCodes struct {
	mu sync.Mutex
	m  map[string]spentCode
}

type spentCode struct {
	refreshID string
	at        time.Time
}

// codeMemory outlasts the facade's codes (2 minutes) with room to spare.
const codeMemory = 10 * time.Minute

func (s *spentCodes) spend(code, refreshID string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]spentCode{}
	}
	for c, sc := range s.m {
		if now.Sub(sc.at) > codeMemory {
			delete(s.m, c)
		}
	}
	s.m[code] = spentCode{refreshID, now}
}

func (s *spentCodes) spent(code string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.m[code]
	return sc.refreshID, ok
}

func invalidGrant(w http.ResponseWriter, desc string) {
	writeTokenError(w, http.StatusBadRequest, oauth.APIError{Code: "invalid_grant", Description: desc})
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeTokenError(w, http.StatusServiceUnavailable, oauth.APIError{Code: "temporarily_unavailable", Description: "the authorization server is busy; retry shortly"})
}

func writeTokenError(w http.ResponseWriter, status int, e oauth.APIError) {
	body, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
