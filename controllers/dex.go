package controllers

import (
	"context"
	"fmt"
	"slices"

	dexapi "github.com/dexidp/dex/api/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// DexClients manages OAuth clients through Dex's gRPC API.
type DexClients struct {
	api dexapi.DexClient
}

// NewDexClients talks to Dex over conn.
func NewDexClients(conn grpc.ClientConnInterface) *DexClients {
	return &DexClients{api: dexapi.NewDexClient(conn)}
}

// Ensure creates the client, updates its name and redirect URIs, or replaces it when its secret
// differs (Dex's UpdateClient cannot change a secret). Trusted peers are kept as they are. An
// unchanged client costs one read.
func (d *DexClients) Ensure(ctx context.Context, c OAuthClient) (bool, error) {
	resp, err := d.api.GetClient(ctx, &dexapi.GetClientReq{Id: c.ID})
	if err != nil && !dexNotFound(err) {
		return false, fmt.Errorf("get client %s: %w", c.ID, err)
	}
	if err != nil || resp.Client == nil {
		return true, d.create(ctx, c, nil)
	}
	cur := resp.Client
	if cur.Secret != c.Secret || cur.Public {
		if err := d.Delete(ctx, c.ID); err != nil {
			return false, err
		}
		return true, d.create(ctx, c, cur.TrustedPeers)
	}
	if cur.Name == c.Name && slices.Equal(cur.RedirectUris, c.RedirectURIs) {
		return false, nil
	}
	// Without TrustedPeers in the request Dex keeps them, so peers added meanwhile are not lost.
	up, err := d.api.UpdateClient(ctx, &dexapi.UpdateClientReq{Id: c.ID, Name: c.Name, RedirectUris: c.RedirectURIs})
	if err != nil {
		return false, fmt.Errorf("update client %s: %w", c.ID, err)
	}
	if up.NotFound {
		return true, d.create(ctx, c, nil)
	}
	return true, nil
}

func (d *DexClients) create(ctx context.Context, c OAuthClient, trustedPeers []string) error {
	resp, err := d.api.CreateClient(ctx, &dexapi.CreateClientReq{Client: &dexapi.Client{
		Id: c.ID, Secret: c.Secret, Name: c.Name, RedirectUris: c.RedirectURIs, TrustedPeers: trustedPeers,
	}})
	if err != nil {
		return fmt.Errorf("create client %s: %w", c.ID, err)
	}
	// Dex reports a duplicate in the response, not as an error: someone created it since GetClient.
	if resp.AlreadyExists {
		return fmt.Errorf("create client %s: it appeared concurrently; will compare again", c.ID)
	}
	return nil
}

// Delete removes the client; Dex answers NotFound in the response for a missing one.
func (d *DexClients) Delete(ctx context.Context, id string) error {
	if _, err := d.api.DeleteClient(ctx, &dexapi.DeleteClientReq{Id: id}); err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	return nil
}

// dexNotFound recognises GetClient's answer for a missing client: Dex returns its storage's
// ErrNotFound as is, which gRPC carries as code Unknown with message "not found".
func dexNotFound(err error) bool {
	s := grpcstatus.Convert(err)
	return s.Code() == codes.NotFound || (s.Code() == codes.Unknown && s.Message() == "not found")
}
