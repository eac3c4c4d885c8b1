package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// OAuthClient is a confidential OAuth client in the authorization server. Its trusted peers are not
// here: the authorization server adds each MCP client registered for the tenant to them, and the
// operator leaves them alone.
type OAuthClient struct {
	ID           string
	Secret       string
	Name         string
	RedirectURIs []string
}

// OAuthClients manages OAuth clients in the authorization server, so the reconciler needs no
// knowledge of Dex's API.
type OAuthClients interface {
	// Ensure makes the client exist exactly as given and reports whether it had to write.
	Ensure(ctx context.Context, c OAuthClient) (changed bool, err error)
	// Delete removes the client; a client that does not exist is not an error.
	Delete(ctx context.Context, id string) error
}

// oauthTimeout bounds each call to the authorization server.
const oauthTimeout = 10 * time.Second

// reconcileOAuthClient keeps the tenant's client id and secret in a Secret (generating the secret
// once) and makes Dex's record of the client match it. It returns the Secret's data.
func (r *TenantReconciler) reconcileOAuthClient(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, base *url.URL, st *status) (map[string][]byte, error) {
	current := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: oauthSecretName(t)}, current); err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	secret := string(current.Data["client-secret"])
	if secret == "" {
		secret = randomSecret()
	}
	desired := desiredOAuthSecret(t, secret)
	if err := apply(ctx, r, st, &corev1.Secret{}, desired, corev1ac.ExtractSecret); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, oauthTimeout)
	defer cancel()
	client := desiredOAuthClient(t, base, secret)
	changed, err := r.OAuth.Ensure(ctx, client)
	if err != nil {
		st.set(tracekitv1alpha1.ConditionAuthClientReady, false, "DexUnreachable",
			"cannot register OAuth client %s in Dex: %v; check that Dex's gRPC API is up and reachable from the operator (retrying with backoff)", client.ID, err)
		return desired.Data, fmt.Errorf("tenant %s/%s: Dex: %w", t.Namespace, t.Name, err)
	}
	if changed {
		r.Recorder.Eventf(t, nil, corev1.EventTypeNormal, "OAuthClientRegistered", "Register",
			"Registered OAuth client %s in Dex with redirect URI %s", client.ID, client.RedirectURIs[0])
	}
	t.Status.OAuthClientID = client.ID
	st.set(tracekitv1alpha1.ConditionAuthClientReady, true, "ClientRegistered",
		"OAuth client %s is registered in Dex (secret in Secret %s)", client.ID, oauthSecretName(t))
	return desired.Data, nil
}

// desiredOAuthClient is the tenant's client: confidential, redirecting only to the tenant's own
// OAuth callback.
func desiredOAuthClient(t *tracekitv1alpha1.TraceKitTenant, base *url.URL, secret string) OAuthClient {
	return OAuthClient{
		ID:           oauthClientID(t),
		Secret:       secret,
		Name:         t.Spec.DisplayName,
		RedirectURIs: []string{base.String() + "/mcp/callback"},
	}
}

func desiredOAuthSecret(t *tracekitv1alpha1.TraceKitTenant, secret string) *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(oauthSecretName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithType(corev1.SecretTypeOpaque).
		WithData(map[string][]byte{
			"client-id":     []byte(oauthClientID(t)),
			"client-secret": []byte(secret),
		})
}

func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
