package dexauth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/tracekit/tracekit/server/oauth"
)

// clientAPI serves oauth.ClientAPIPath: tenant servers register and read their MCP clients here,
// authenticated as their tenant's Dex client, which confines each to its own clients.
func (s *Server) clientAPI(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	tc, err := s.storage.GetClient(id)
	if _, tenant := TenantOfClient(id); !ok || !tenant || err != nil || tc.Public || tc.Secret == "" ||
		subtle.ConstantTimeCompare([]byte(tc.Secret), []byte(secret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="tracekit"`)
		apiError(w, http.StatusUnauthorized, "invalid_client", "authenticate as a tenant's client at this authorization server")
		return
	}
	reg := s.Registrar(id)
	base := s.issuerPath + oauth.ClientAPIPath
	switch {
	case r.Method == http.MethodPost && r.URL.Path == base:
		var c oauth.Client
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&c); err != nil || len(c.RedirectURIs) == 0 {
			apiError(w, http.StatusBadRequest, "invalid_request", "send a client as JSON with its redirect_uris")
			return
		}
		c, err = reg.RegisterClient(r.Context(), c)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, c)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, base+"/"):
		cid, err := url.PathUnescape(strings.TrimPrefix(r.URL.Path, base+"/"))
		if err != nil {
			apiError(w, http.StatusBadRequest, "invalid_request", "malformed client id")
			return
		}
		c, err := reg.Client(r.Context(), cid)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, c)
	default:
		apiError(w, http.StatusNotFound, "not_found", "POST "+oauth.ClientAPIPath+" or GET "+oauth.ClientAPIPath+"/<id>")
	}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	code, status := oauth.ErrorCode(err)
	if status == http.StatusInternalServerError {
		s.logger.Error("client API", "err", err)
	}
	desc := err.Error()
	if errors.Is(err, oauth.ErrUnknownClient) {
		desc = "no such client for this tenant"
	}
	apiError(w, status, code, desc)
}

func apiError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, oauth.APIError{Code: code, Description: desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
