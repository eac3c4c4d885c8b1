package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Client is an MCP client as Dex knows it.
type Client struct {
	ID     string `json:"id"`
	Secret string `json:"secret,omitempty"`
	// Public clients (token_endpoint_auth_method "none") have no secret.
	Public bool   `json:"public"`
	Name   string `json:"name,omitempty"`
	// RedirectURIs are the facade's callback, which Dex redirects to, then the client's own.
	RedirectURIs []string `json:"redirect_uris"`
	// MetadataURL, in a RegisterClient request, makes the client the one standing for the Client ID
	// Metadata Document at that URL: created with the id DocumentClientID, or updated if it exists.
	MetadataURL string `json:"metadata_url,omitempty"`
}

// Registrar creates MCP clients at Dex, which has no dynamic registration of its own, and reads them
// back. A registrar acts for one tenant: it makes the tenant's client trust each client it creates,
// so the client may ask Dex for tokens whose audience is the tenant.
type Registrar interface {
	// RegisterClient creates c with a new id (and, unless c is public, a new secret) and returns it;
	// with a MetadataURL, it creates or updates the document's public client.
	RegisterClient(ctx context.Context, c Client) (Client, error)
	// Client returns a client the tenant registered, or ErrUnknownClient.
	Client(ctx context.Context, id string) (Client, error)
}

var (
	ErrUnknownClient  = errors.New("unknown client")
	ErrTooManyClients = errors.New("this tenant has as many registered clients as it may have, and every one has signed in")
)

// ClientAPIPath is where `tracekit auth` serves its client API, under the issuer URL. Tenant servers
// call it authenticated as their own Dex client (HTTP Basic), so a tenant can register and read only
// its own clients and needs no access to Dex's gRPC API.
const ClientAPIPath = "/tracekit/clients"

// Error codes of the client API, in an RFC 6749-style JSON body.
const (
	apiErrUnknownClient  = "unknown_client"
	apiErrTooManyClients = "too_many_clients"
)

// APIError is the JSON error body of the client API.
type APIError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// ErrorCode is the client API's error code for err, with its HTTP status.
func ErrorCode(err error) (code string, status int) {
	switch {
	case errors.Is(err, ErrUnknownClient):
		return apiErrUnknownClient, http.StatusNotFound
	case errors.Is(err, ErrTooManyClients):
		return apiErrTooManyClients, http.StatusForbidden
	}
	return "server_error", http.StatusInternalServerError
}

// RemoteRegistrar is the Registrar of a tenant server: it calls the client API of `tracekit auth`.
type RemoteRegistrar struct {
	Issuer, ClientID, ClientSecret string
	HTTPClient                     *http.Client
}

func (r *RemoteRegistrar) RegisterClient(ctx context.Context, c Client) (Client, error) {
	body, _ := json.Marshal(c)
	return r.do(ctx, http.MethodPost, r.Issuer+ClientAPIPath, body)
}

func (r *RemoteRegistrar) Client(ctx context.Context, id string) (Client, error) {
	return r.do(ctx, http.MethodGet, r.Issuer+ClientAPIPath+"/"+url.PathEscape(id), nil)
}

func (r *RemoteRegistrar) do(ctx context.Context, method, u string, body []byte) (Client, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return Client{}, err
	}
	req.SetBasicAuth(url.QueryEscape(r.ClientID), url.QueryEscape(r.ClientSecret))
	req.Header.Set("Content-Type", "application/json")
	res, err := r.HTTPClient.Do(req)
	if err != nil {
		return Client{}, fmt.Errorf("reach the authorization server's client API: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Client{}, err
	}
	if res.StatusCode == http.StatusOK || res.StatusCode == http.StatusCreated {
		var c Client
		return c, json.Unmarshal(raw, &c)
	}
	var e APIError
	json.Unmarshal(raw, &e)
	switch e.Code {
	case apiErrUnknownClient:
		return Client{}, ErrUnknownClient
	case apiErrTooManyClients:
		return Client{}, ErrTooManyClients
	}
	return Client{}, fmt.Errorf("authorization server's client API: %s %s: %s", method, res.Status, e.Description)
}
