package dexauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dexidp/dex/storage"

	"github.com/tracekit/tracekit/server/oauth"
)

// tenantClientPrefix starts the id of each tenant's confidential client at Dex, which the operator
// creates as "tenant-<tenant id>".
const tenantClientPrefix = "tenant-"

// TenantClientID is the id of tenant's client at Dex.
func TenantClientID(tenant string) string { return tenantClientPrefix + tenant }

// TenantOfClient is the tenant whose client id is id.
func TenantOfClient(id string) (string, bool) {
	t, ok := strings.CutPrefix(id, tenantClientPrefix)
	return t, ok && t != ""
}

// tenantClients is the Registrar of one tenant, working on Dex's storage. An MCP client's id starts
// with its tenant's client id and carries its creation time: "<tenant client>.mcp.<unix time in
// base 36>.<random>"; a metadata document's client has oauth.DocumentClientID instead. The tenant's client lists it among its trusted peers, which is what lets it
// ask Dex for tokens whose audience is the tenant; that trust is restored whenever it is found
// missing, because whoever manages the tenant's client (the operator) may rewrite its peers.
type tenantClients struct {
	s            storage.Storage
	tenantClient string
	max          int
	now          func() time.Time
}

// isMCPClient reports whether id is an MCP client's (registered or from a metadata document) rather
// than a tenant's own client: tenant ids have no dots.
func isMCPClient(id string) bool { return strings.Contains(id, ".mcp.") }

func (t *tenantClients) prefix() string { return t.tenantClient + ".mcp." }

func (t *tenantClients) RegisterClient(ctx context.Context, c oauth.Client) (oauth.Client, error) {
	if c.MetadataURL != "" {
		return t.documentClient(ctx, c)
	}
	evict, err := t.makeRoom()
	if err != nil {
		return oauth.Client{}, err
	}
	c.ID = t.prefix() + strconv.FormatInt(t.now().Unix(), 36) + "." + strings.ToLower(rand.Text())
	c.Secret = ""
	if !c.Public {
		c.Secret = rand.Text() + rand.Text()
	}
	err = t.s.CreateClient(ctx, storage.Client{ID: c.ID, Secret: c.Secret, RedirectURIs: c.RedirectURIs, Public: c.Public, Name: c.Name})
	if err != nil {
		return oauth.Client{}, fmt.Errorf("create client at Dex: %w", err)
	}
	if err := t.trust(c.ID, evict); err != nil {
		t.s.DeleteClient(c.ID)
		return oauth.Client{}, err
	}
	for _, id := range evict {
		t.s.DeleteClient(id)
	}
	return c, nil
}

// documentClient creates or updates the public client standing for a Client ID Metadata Document; the
// facade calls it when the document's copy here is missing or out of date.
func (t *tenantClients) documentClient(ctx context.Context, c oauth.Client) (oauth.Client, error) {
	c.ID, c.Secret, c.Public = oauth.DocumentClientID(t.tenantClient, c.MetadataURL), "", true
	err := t.s.UpdateClient(c.ID, func(old storage.Client) (storage.Client, error) {
		old.RedirectURIs, old.Name, old.Public, old.Secret = c.RedirectURIs, c.Name, true, ""
		return old, nil
	})
	var evict []string
	if errors.Is(err, storage.ErrNotFound) {
		if evict, err = t.makeRoom(); err != nil {
			return oauth.Client{}, err
		}
		err = t.s.CreateClient(ctx, storage.Client{ID: c.ID, RedirectURIs: c.RedirectURIs, Public: true, Name: c.Name})
		if errors.Is(err, storage.ErrAlreadyExists) {
			err = nil // another replica created it at the same moment, from the same document
		}
	}
	if err != nil {
		return oauth.Client{}, fmt.Errorf("store the client of %s at Dex: %w", c.MetadataURL, err)
	}
	if err := t.trust(c.ID, evict); err != nil {
		return oauth.Client{}, err
	}
	for _, id := range evict {
		t.s.DeleteClient(id)
	}
	return c, nil
}

// makeRoom returns the clients to drop so that one more fits under the cap: the oldest that never
// completed a sign-in (they hold no refresh token). Registration is unauthenticated, so spam must not
// lock real clients out; when every client has signed in, registration is refused.
func (t *tenantClients) makeRoom() ([]string, error) {
	all, err := t.s.ListClients()
	if err != nil {
		return nil, fmt.Errorf("list clients at Dex: %w", err)
	}
	var mine []string
	for _, c := range all {
		if strings.HasPrefix(c.ID, t.prefix()) {
			mine = append(mine, c.ID)
		}
	}
	if len(mine) < t.max {
		return nil, nil
	}
	tokens, err := t.s.ListRefreshTokens()
	if err != nil {
		return nil, fmt.Errorf("list refresh tokens at Dex: %w", err)
	}
	signedIn := map[string]bool{}
	for _, r := range tokens {
		signedIn[r.ClientID] = true
	}
	sort.Slice(mine, func(i, j int) bool { return t.created(mine[i]) < t.created(mine[j]) })
	var evict []string
	for _, id := range mine {
		if len(mine)-len(evict) < t.max {
			break
		}
		if !signedIn[id] {
			evict = append(evict, id)
		}
	}
	if len(mine)-len(evict) >= t.max {
		return nil, oauth.ErrTooManyClients
	}
	return evict, nil
}

// created is when a registered client was created. A document's client counts as the oldest: it is
// only a copy of what its URL serves, made again at its next sign-in.
func (t *tenantClients) created(id string) int64 {
	ts, _, _ := strings.Cut(strings.TrimPrefix(id, t.prefix()), ".")
	if ts == oauth.DocumentClientMarker {
		return 0
	}
	n, _ := strconv.ParseInt(ts, 36, 64)
	return n
}

// trust makes the tenant's client list id among its trusted peers, without the peers in drop.
func (t *tenantClients) trust(id string, drop []string) error {
	err := t.s.UpdateClient(t.tenantClient, func(old storage.Client) (storage.Client, error) {
		old.TrustedPeers = slices.DeleteFunc(old.TrustedPeers, func(p string) bool { return p == id || slices.Contains(drop, p) })
		old.TrustedPeers = append(old.TrustedPeers, id)
		return old, nil
	})
	if err != nil {
		return t.tenantErr(err)
	}
	return nil
}

// Client returns a client of this tenant, restoring the tenant's trust in it if that was lost.
func (t *tenantClients) Client(_ context.Context, id string) (oauth.Client, error) {
	if !strings.HasPrefix(id, t.prefix()) {
		return oauth.Client{}, oauth.ErrUnknownClient
	}
	c, err := t.s.GetClient(id)
	if errors.Is(err, storage.ErrNotFound) {
		return oauth.Client{}, oauth.ErrUnknownClient
	}
	if err != nil {
		return oauth.Client{}, fmt.Errorf("read client at Dex: %w", err)
	}
	tc, err := t.s.GetClient(t.tenantClient)
	if err != nil {
		return oauth.Client{}, t.tenantErr(err)
	}
	if !slices.Contains(tc.TrustedPeers, id) {
		if err := t.trust(id, nil); err != nil {
			return oauth.Client{}, err
		}
	}
	return oauth.Client{ID: c.ID, Public: c.Public, Name: c.Name, RedirectURIs: c.RedirectURIs}, nil
}

func (t *tenantClients) tenantErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("the tenant's client %q does not exist at Dex yet (the operator creates it)", t.tenantClient)
	}
	return fmt.Errorf("client %q at Dex: %w", t.tenantClient, err)
}
