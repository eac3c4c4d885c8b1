package dexauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/dexidp/dex/storage"
	"sigs.k8s.io/yaml"

	"github.com/tracekit/tracekit/server/oauth"
)

// Provider is a company identity provider people sign in with, through one of Dex's own connectors.
// Which tenant each person may use, with which tools, is the tenant's access rules.
type Provider struct {
	// Type is the Dex connector: "oidc" (Okta, Entra ID, Keycloak, Google, another Dex…) or "ldap".
	Type string `json:"type"`
	// ID names the provider in Dex and in grants; changing it ends the sign-ins made through it.
	ID string `json:"id"`
	// Name is shown on the sign-in page: "Sign in with <Name>".
	Name string `json:"name"`
	// Config is the Dex connector's configuration (https://dexidp.io/docs/connectors/), with secrets
	// as $VAR (environment) or ${file:/path} references.
	Config json.RawMessage `json:"config"`
}

// Providers is the sign-in configuration of the platform (`tracekit auth --providers`).
type Providers struct {
	// APIKeys offers the API-key form; nil means yes. Without it the sign-in page offers only the
	// providers (agents still use API keys as bearer tokens).
	APIKeys *bool `json:"apiKeys,omitempty"`
	// Providers are the company identity providers.
	Providers []Provider `json:"providers"`
}

var providerID = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// LoadProviders reads the sign-in configuration (YAML or JSON) at path and resolves the secret
// references in the connectors' configurations.
func LoadProviders(path string) (Providers, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Providers{}, fmt.Errorf("sign-in providers: %w", err)
	}
	var p Providers
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		return Providers{}, fmt.Errorf("sign-in providers %s: %w", path, err)
	}
	for i := range p.Providers {
		pr := &p.Providers[i]
		var cfg any
		if err := json.Unmarshal(pr.Config, &cfg); err != nil {
			return Providers{}, fmt.Errorf("sign-in providers %s: provider %q: config: %w", path, pr.ID, err)
		}
		if cfg, err = expand(cfg); err != nil {
			return Providers{}, fmt.Errorf("sign-in providers %s: provider %q: %w", path, pr.ID, err)
		}
		pr.Config, _ = json.Marshal(cfg)
	}
	return p, nil
}

// expand replaces $VAR and ${VAR} in every string of a connector's configuration by the environment
// variable, and ${file:/path} by the file's content (a mounted Secret), so that no secret has to be
// written into the configuration itself. A reference to nothing is an error, not an empty secret.
func expand(v any) (any, error) {
	switch v := v.(type) {
	case string:
		var missing []string
		out := os.Expand(v, func(name string) string {
			if name == "$" { // os.Expand reads "$$" as the variable "$"
				return "$"
			}
			if path, ok := strings.CutPrefix(name, "file:"); ok {
				b, err := os.ReadFile(path)
				if err != nil {
					missing = append(missing, "file "+path)
				}
				return strings.TrimRight(string(b), "\r\n")
			}
			val, ok := os.LookupEnv(name)
			if !ok {
				missing = append(missing, "environment variable "+name)
			}
			return val
		})
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s is not set: mount the Secret holding it (or write $$ for a literal $)", strings.Join(missing, ", "))
		}
		return out, nil
	case []any:
		for i := range v {
			e, err := expand(v[i])
			if err != nil {
				return nil, err
			}
			v[i] = e
		}
	case map[string]any:
		for k := range v {
			e, err := expand(v[k])
			if err != nil {
				return nil, err
			}
			v[k] = e
		}
	}
	return v, nil
}

// connectors is what Dex's storage must hold for these providers: the API-key connector unless it is
// turned off, and one company connector per provider.
func (p Providers) connectors(issuer string) ([]storage.Connector, error) {
	var out []storage.Connector
	if p.APIKeys == nil || *p.APIKeys {
		config, _ := json.Marshal(connectorConfig{Issuer: issuer})
		out = append(out, storage.Connector{ID: oauth.DexConnectorID, Type: connectorType, Name: "an API key", Config: config})
	}
	seen := map[string]bool{oauth.DexConnectorID: true}
	for _, pr := range p.Providers {
		switch {
		case !providerID.MatchString(pr.ID):
			return nil, fmt.Errorf("identity provider id %q: use 1-32 lowercase letters, digits or '-'", pr.ID)
		case seen[pr.ID]:
			return nil, fmt.Errorf("identity provider id %q is used twice (%q is the API-key form's)", pr.ID, oauth.DexConnectorID)
		case pr.Type != "oidc" && pr.Type != "ldap":
			return nil, fmt.Errorf("identity provider %q: type %q: use oidc or ldap", pr.ID, pr.Type)
		case pr.Name == "":
			return nil, fmt.Errorf("identity provider %q: name is required: the sign-in page says \"Sign in with <name>\"", pr.ID)
		}
		seen[pr.ID] = true
		config := pr.Config
		if pr.Type == "oidc" {
			// Dex's OIDC connector must be told its callback; it can only be the issuer's.
			var c map[string]any
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, fmt.Errorf("identity provider %q: config: %w", pr.ID, err)
			}
			if c["redirectURI"] == nil {
				c["redirectURI"] = issuer + "/callback"
			}
			config, _ = json.Marshal(c)
		}
		stored, _ := json.Marshal(ssoConfig{Issuer: issuer, Name: pr.Name, Upstream: pr.Type, Config: config})
		out = append(out, storage.Connector{ID: pr.ID, Type: ssoType, Name: pr.Name, Config: stored})
	}
	if len(out) == 0 {
		return nil, errors.New("no way to sign in: with apiKeys: false, configure at least one identity provider")
	}
	return out, nil
}

// ensureConnectors makes Dex's storage hold exactly want; a changed connector gets a new resource
// version, which makes every replica open it again.
func ensureConnectors(ctx context.Context, st storage.Storage, want []storage.Connector) error {
	have, err := st.ListConnectors()
	if err != nil {
		return fmt.Errorf("list Dex's connectors: %w", err)
	}
	byID := map[string]storage.Connector{}
	for _, c := range have {
		byID[c.ID] = c
	}
	for _, w := range want {
		old, ok := byID[w.ID]
		delete(byID, w.ID)
		switch {
		case !ok:
			w.ResourceVersion = "1"
			err = st.CreateConnector(ctx, w)
		case old.Type != w.Type || old.Name != w.Name || string(old.Config) != string(w.Config):
			err = st.UpdateConnector(w.ID, func(old storage.Connector) (storage.Connector, error) {
				w.ResourceVersion = nextVersion(old.ResourceVersion)
				return w, nil
			})
		}
		if err != nil {
			return fmt.Errorf("store the sign-in connector %q in Dex: %w", w.ID, err)
		}
	}
	for id := range byID {
		if err := st.DeleteConnector(id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("remove the sign-in connector %q from Dex: %w", id, err)
		}
	}
	return nil
}
